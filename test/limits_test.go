package test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	paho3 "github.com/eclipse/paho.mqtt.golang"
	"github.com/go-stomp/stomp/v3"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/unifiedms/ums/config"
	"github.com/unifiedms/ums/core/auth"
	"github.com/unifiedms/ums/internal/clock"
	"github.com/unifiedms/ums/internal/connlimit"
	"github.com/unifiedms/ums/internal/testutil"
	"github.com/unifiedms/ums/protocols/amqp/wire"
)

// Node protection limits: --max-connections (per listener),
// --max-connections-per-user, --amqp-channel-max,
// --max-consumers-per-queue and --login-failure-delay, each checked with
// the real clients of its protocols.

// startLimits starts a broker with the listeners named and edit applied.
func startLimits(t *testing.T, edit func(*config.Config), listeners ...string) *testutil.Broker {
	t.Helper()
	return testutil.StartBroker(t, testutil.WithProtocols(listeners...), testutil.WithConfig(edit))
}

// amqpURLAs is the broker's AMQP URL with another user.
func amqpURLAs(t testing.TB, b *testutil.Broker, user, pass string) string {
	t.Helper()
	u, err := url.Parse(b.AMQPURL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(user, pass)
	return u.String()
}

// amqpDialLimits connects with amqp091-go; the connection closes with the test.
func amqpDialLimits(t testing.TB, rawURL string) (*amqp.Connection, error) {
	t.Helper()
	c, err := amqp.DialConfig(rawURL, amqp.Config{Dial: amqp.DefaultDial(waitFor)})
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Close() })
	return c, nil
}

// expectAMQPRefused checks that err is the server's connection.close with
// code and a reply text containing text.
func expectAMQPRefused(t testing.TB, err error, code int, text string) {
	t.Helper()
	var ae *amqp.Error
	if !errors.As(err, &ae) || !ae.Server || ae.Code != code || !strings.Contains(ae.Reason, text) {
		t.Fatalf("got %v, want the server's %d with %q", err, code, text)
	}
}

// mqtt5As connects an MQTT 5 client to addr; on success it disconnects
// with the test. The CONNACK is returned also when the server refused.
func mqtt5As(t testing.TB, addr, clientID, user, pass string) (*paho.Client, *paho.Connack, error) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, waitFor)
	if err != nil {
		t.Fatal(err)
	}
	c := paho.NewClient(paho.ClientConfig{Conn: conn})
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	ca, err := c.Connect(ctx, &paho.Connect{ClientID: clientID, KeepAlive: 30, CleanStart: true,
		Username: user, UsernameFlag: true, Password: []byte(pass), PasswordFlag: true})
	if err != nil {
		conn.Close()
		return nil, ca, err
	}
	t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}) })
	return c, ca, nil
}

// expectConnack5 checks an MQTT 5 refusal's reason code.
func expectConnack5(t testing.TB, ca *paho.Connack, err error, code byte) {
	t.Helper()
	if err == nil || ca == nil || ca.ReasonCode != code {
		t.Fatalf("CONNACK %+v, err %v; want reason code %#x", ca, err, code)
	}
}

// mqtt3As connects an MQTT 3.1.1 client to brokerURL (tcp://, ws://,
// tls://, wss://, the secure ones with tlsConfig); rc is CONNACK's return
// code.
func mqtt3As(t testing.TB, brokerURL, clientID, user, pass string, tlsConfig ...*tls.Config) (paho3.Client, byte, error) {
	t.Helper()
	o := paho3.NewClientOptions().AddBroker(brokerURL).SetClientID(clientID).
		SetUsername(user).SetPassword(pass).SetProtocolVersion(4).
		SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(waitFor)
	if len(tlsConfig) > 0 {
		o.SetTLSConfig(tlsConfig[0])
	}
	c := paho3.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(2 * waitFor) {
		t.Fatal("MQTT 3 connect timed out")
	}
	if err := tok.Error(); err != nil {
		return nil, tok.(*paho3.ConnectToken).ReturnCode(), err
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c, 0, nil
}

// stompAs connects go-stomp's client to addr as user.
func stompAs(t testing.TB, addr, user, pass string) (*stomp.Conn, error) {
	t.Helper()
	c, err := stomp.Dial("tcp", addr, stomp.ConnOpt.Login(user, pass), stomp.ConnOpt.Host("/"),
		stomp.ConnOpt.Logger(quietLogger{}))
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { _ = c.MustDisconnect() })
	return c, nil
}

// expectStompError checks that err is the server's ERROR frame with the
// message header and a body containing text.
func expectStompError(t testing.TB, err error, message, text string) {
	t.Helper()
	var se stomp.Error
	if !errors.As(err, &se) || se.Frame == nil || se.Message != message || !strings.Contains(string(se.Frame.Body), text) {
		t.Fatalf("got %v, want an ERROR frame %q about %q", err, message, text)
	}
}

// addUser creates a user with every permission on vhost "/".
func addUser(t testing.TB, users *auth.Store, name, pass string) {
	t.Helper()
	if err := users.PutUser(name, pass, nil); err != nil {
		t.Fatal(err)
	}
	if err := users.SetPermission(name, "/", auth.Permission{Configure: ".*", Write: ".*", Read: ".*"}); err != nil {
		t.Fatal(err)
	}
}

// waitListenerFree waits until the listener has no connection open.
func waitListenerFree(t testing.TB, b *testutil.Broker, name string) {
	t.Helper()
	eventually(t, name+" has no connection open", func() bool {
		live, refusing, ok := b.ListenerConnections(name)
		if !ok {
			t.Fatalf("listener %s has no connection limit", name)
		}
		return live == 0 && refusing == 0
	})
}

func TestLimitsMaxConnectionsPerListener(t *testing.T) {
	b := startLimits(t, func(c *config.Config) { c.MaxConnections = 1 },
		testutil.AMQP, testutil.MQTT, testutil.MQTTWS, testutil.STOMP)

	t.Run("AMQP", func(t *testing.T) {
		first, err := amqpDialLimits(t, b.AMQPURL)
		if err != nil {
			t.Fatal(err)
		}
		_, err = amqpDialLimits(t, b.AMQPURL)
		expectAMQPRefused(t, err, amqp.NotAllowed, "connection limit (1)")
		// The connection within the limit is unaffected.
		ch := newChannel(t, first)
		declareQueue(t, ch, uniq("limits"))
		if err := first.Close(); err != nil {
			t.Fatal(err)
		}
		waitListenerFree(t, b, testutil.AMQP)
		if _, err := amqpDialLimits(t, b.AMQPURL); err != nil {
			t.Fatalf("connection after the first closed: %v", err)
		}
	})

	t.Run("MQTT", func(t *testing.T) {
		first, _, err := mqtt5As(t, b.MQTTAddr, "first", "guest", "guest")
		if err != nil {
			t.Fatal(err)
		}
		_, ca, err := mqtt5As(t, b.MQTTAddr, "second", "guest", "guest")
		expectConnack5(t, ca, err, 0x97) // quota exceeded
		_, rc, err := mqtt3As(t, "tcp://"+b.MQTTAddr, "third", "guest", "guest")
		if err == nil || rc != 0x03 { // server unavailable
			t.Fatalf("MQTT 3.1.1 beyond the limit: rc %#x, err %v; want 0x03", rc, err)
		}
		// The WebSocket listener is a listener of its own, with its own
		// limit.
		if _, _, err := mqtt3As(t, "ws://"+b.MQTTWSAddr+"/ws", "over-ws", "guest", "guest"); err != nil {
			t.Fatalf("MQTT over WebSocket refused while the TCP listener is full: %v", err)
		}
		if _, rc, err := mqtt3As(t, "ws://"+b.MQTTWSAddr+"/ws", "over-ws-2", "guest", "guest"); err == nil || rc != 0x03 {
			t.Fatalf("MQTT over WebSocket beyond the limit: rc %#x, err %v; want 0x03", rc, err)
		}
		// The connection within the limit is unaffected.
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		if _, err := first.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "limits/#", QoS: 1}}}); err != nil {
			t.Fatalf("subscribe on the first connection: %v", err)
		}
		if err := first.Disconnect(&paho.Disconnect{}); err != nil {
			t.Fatal(err)
		}
		waitListenerFree(t, b, testutil.MQTT)
		if _, _, err := mqtt5As(t, b.MQTTAddr, "again", "guest", "guest"); err != nil {
			t.Fatalf("connection after the first closed: %v", err)
		}
	})

	t.Run("STOMP", func(t *testing.T) {
		first, err := stompAs(t, b.STOMPAddr, "guest", "guest")
		if err != nil {
			t.Fatal(err)
		}
		_, err = stompAs(t, b.STOMPAddr, "guest", "guest")
		expectStompError(t, err, "not_allowed", "connection limit (1)")
		stompSync(t, first) // the connection within the limit is unaffected
		if err := first.Disconnect(); err != nil {
			t.Fatal(err)
		}
		waitListenerFree(t, b, testutil.STOMP)
		if _, err := stompAs(t, b.STOMPAddr, "guest", "guest"); err != nil {
			t.Fatalf("connection after the first closed: %v", err)
		}
	})
}

// TestLimitsMaxConnectionsTLS checks the limit on the TLS listeners,
// where the counted socket is under TLS (and WebSocket).
func TestLimitsMaxConnectionsTLS(t *testing.T) {
	p := newTestPKI(t)
	certFile, keyFile := p.serverFiles(1)
	b := startLimits(t, func(c *config.Config) {
		c.TLSCertFile, c.TLSKeyFile, c.TLSCAFile = certFile, keyFile, p.caFile
		c.MaxConnections = 1
	}, testutil.AMQPS, testutil.MQTTWSS, testutil.STOMPS)

	t.Run("AMQPS", func(t *testing.T) {
		first, err := amqp.DialTLS(b.AMQPSURL, p.client(nil))
		if err != nil {
			t.Fatal(err)
		}
		defer first.Close()
		_, err = amqp.DialTLS(b.AMQPSURL, p.client(nil))
		expectAMQPRefused(t, err, amqp.NotAllowed, "connection limit (1)")
		amqpRoundTrip(t, first, uniq("limits"), "within the limit")
	})
	t.Run("MQTT over secure WebSocket", func(t *testing.T) {
		url := "wss://" + b.MQTTWSSAddr + "/ws"
		if _, _, err := mqtt3As(t, url, "first", "guest", "guest", p.client(nil)); err != nil {
			t.Fatal(err)
		}
		if _, rc, err := mqtt3As(t, url, "second", "guest", "guest", p.client(nil)); err == nil || rc != 0x03 {
			t.Fatalf("beyond the limit: rc %#x, err %v; want 0x03", rc, err)
		}
	})
	t.Run("STOMPS", func(t *testing.T) {
		dial := func() (*stomp.Conn, error) {
			nc, err := tls.Dial("tcp", b.STOMPSAddr, p.client(nil))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { nc.Close() })
			return stomp.Connect(nc, stomp.ConnOpt.Login("guest", "guest"), stomp.ConnOpt.Host("/"), stomp.ConnOpt.Logger(quietLogger{}))
		}
		first, err := dial()
		if err != nil {
			t.Fatal(err)
		}
		defer first.MustDisconnect()
		_, err = dial()
		expectStompError(t, err, "not_allowed", "connection limit (1)")
		stompSync(t, first)
	})
}

// TestLimitsMaxConnectionsFlood opens far more connections than the limit
// and its spare places: connlimit.Spare of them are held to be refused the
// protocol's way, the others are closed at once, and the listener is
// usable again once they are gone.
func TestLimitsMaxConnectionsFlood(t *testing.T) {
	b := startLimits(t, func(c *config.Config) { c.MaxConnections = 1 }, testutil.AMQP)
	first, err := amqpDialLimits(t, b.AMQPURL)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(b.AMQPURL)
	if err != nil {
		t.Fatal(err)
	}
	const flood = 100
	var socks []net.Conn
	for range flood {
		nc, err := net.DialTimeout("tcp", u.Host, waitFor)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		socks = append(socks, nc)
	}
	// Each says hello: a held one gets connection.start, a closed one EOF.
	started, closed := 0, 0
	for _, nc := range socks {
		nc.SetDeadline(time.Now().Add(waitFor))
		if _, err := nc.Write(wire.ProtocolHeader[:]); err != nil {
			closed++ // reset before the write
			continue
		}
		if _, err := wire.NewReader(nc).ReadFrame(); err == nil {
			started++
		} else {
			closed++
		}
	}
	if started != connlimit.Spare || closed != flood-connlimit.Spare {
		t.Fatalf("%d connections held and %d closed, want %d and %d", started, closed, connlimit.Spare, flood-connlimit.Spare)
	}
	if live, refusing, _ := b.ListenerConnections(testutil.AMQP); live != 1 || refusing > connlimit.Spare {
		t.Fatalf("listener holds %d connections and %d refusals", live, refusing)
	}
	for _, nc := range socks {
		nc.Close()
	}
	// The connection within the limit is unaffected.
	declareQueue(t, newChannel(t, first), uniq("limits"))
	first.Close()
	waitListenerFree(t, b, testutil.AMQP)
	if _, err := amqpDialLimits(t, b.AMQPURL); err != nil {
		t.Fatalf("connection after the flood: %v", err)
	}
}

func TestLimitsMaxConnectionsPerUser(t *testing.T) {
	b := startLimits(t, func(c *config.Config) { c.MaxConnectionsPerUser = 2 },
		testutil.AMQP, testutil.MQTT, testutil.STOMP)
	addUser(t, b.Users, "other", "pw")

	// Two connections of guest in two protocols fill its quota.
	amqpConn, err := amqpDialLimits(t, b.AMQPURL)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := mqtt5As(t, b.MQTTAddr, "guest-1", "guest", "guest"); err != nil {
		t.Fatal(err)
	}
	const text = "User connection limit (2) is reached"
	_, err = amqpDialLimits(t, b.AMQPURL)
	expectAMQPRefused(t, err, amqp.NotAllowed, text)
	_, ca, err := mqtt5As(t, b.MQTTAddr, "guest-2", "guest", "guest")
	expectConnack5(t, ca, err, 0x97)
	if _, rc, err := mqtt3As(t, "tcp://"+b.MQTTAddr, "guest-3", "guest", "guest"); err == nil || rc != 0x03 {
		t.Fatalf("MQTT 3.1.1 beyond the user's limit: rc %#x, err %v; want 0x03", rc, err)
	}
	_, err = stompAs(t, b.STOMPAddr, "guest", "guest")
	expectStompError(t, err, "not_allowed", text)

	// Another user is not limited by guest's connections.
	if _, err := amqpDialLimits(t, amqpURLAs(t, b, "other", "pw")); err != nil {
		t.Fatalf("other user: %v", err)
	}
	if _, err := stompAs(t, b.STOMPAddr, "other", "pw"); err != nil {
		t.Fatalf("other user: %v", err)
	}
	if got := b.Core.UserConnections("guest"); got != 2 {
		t.Fatalf("guest has %d connections counted, want 2 (refusals are not counted)", got)
	}

	// guest's AMQP connection is unaffected; once it closes, guest may
	// connect again, in any protocol.
	declareQueue(t, newChannel(t, amqpConn), uniq("limits"))
	if err := amqpConn.Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "guest's AMQP connection is gone", func() bool { return b.Core.UserConnections("guest") == 1 })
	if _, err := stompAs(t, b.STOMPAddr, "guest", "guest"); err != nil {
		t.Fatalf("STOMP after a connection of guest closed: %v", err)
	}
}

func TestLimitsChannelMax(t *testing.T) {
	b := startLimits(t, func(c *config.Config) { c.AMQPChannelMax = 2 }, testutil.AMQP)
	s := newServer(b)

	// amqp091-go keeps within the negotiated channel_max itself.
	conn, err := amqpDialLimits(t, b.AMQPURL)
	if err != nil {
		t.Fatal(err)
	}
	if conn.Config.ChannelMax != 2 {
		t.Fatalf("negotiated channel_max %d, want 2", conn.Config.ChannelMax)
	}

	// A client that opens a channel beyond it loses the connection: 530
	// NOT_ALLOWED, as RabbitMQ answers.
	raw := dialRaw(t, s)
	raw.handshake()
	for id := uint16(1); id <= 2; id++ {
		raw.sendMethod(id, &wire.ChannelOpen{})
		if _, m := raw.readMethod(); m.Name() != "channel.open-ok" {
			t.Fatalf("channel %d: got %s, want channel.open-ok", id, m.Name())
		}
	}
	raw.sendMethod(3, &wire.ChannelOpen{})
	_, m := raw.readMethod()
	cc, ok := m.(*wire.ConnectionClose)
	if !ok || cc.ReplyCode != wire.NotAllowed || !strings.Contains(cc.ReplyText, "channel_max 2") {
		t.Fatalf("got %s %+v, want connection.close 530 about channel_max", m.Name(), m)
	}

	// Other connections are unaffected.
	declareQueue(t, newChannel(t, conn), uniq("limits"))
}

func TestLimitsMaxConsumersPerQueue(t *testing.T) {
	b := startLimits(t, func(c *config.Config) { c.MaxConsumersPerQueue = 1 },
		testutil.AMQP, testutil.MQTT, testutil.STOMP)
	q := uniq("limits")

	owner, err := amqpDialLimits(t, b.AMQPURL)
	if err != nil {
		t.Fatal(err)
	}
	ownerCh := newChannel(t, owner)
	declareQueue(t, ownerCh, q)
	only, err := ownerCh.Consume(q, "only", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("AMQP", func(t *testing.T) {
		conn, err := amqpDialLimits(t, b.AMQPURL)
		if err != nil {
			t.Fatal(err)
		}
		ch := newChannel(t, conn)
		// Another queue takes consumers.
		other := declareQueue(t, ch, uniq("limits"))
		consume(t, ch, other, true)
		_, err = ch.Consume(q, "", false, false, false, false, nil)
		expectAMQPRefused(t, err, amqp.NotAllowed, "reached maximum (1) of consumers on queue '"+q+"'")
	})

	t.Run("STOMP", func(t *testing.T) {
		raw := dialRawStomp(t, b.STOMPAddr)
		raw.connect("accept-version:1.2")
		raw.write("SUBSCRIBE\nid:0\ndestination:/amq/queue/" + q + "\nreceipt:r1\n\n\x00")
		f := raw.expectError("not_allowed")
		if !strings.Contains(string(f.Body), "reached maximum (1) of consumers") || f.Header.Get("receipt-id") != "r1" {
			t.Fatalf("ERROR %v %q", headers(f), f.Body)
		}
	})

	t.Run("MQTT shared subscription", func(t *testing.T) {
		const filter = "$share/group/limits/shared"
		first, _, err := mqtt5As(t, b.MQTTAddr, "member-1", "guest", "guest")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		if _, err := first.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}}}); err != nil {
			t.Fatal(err)
		}
		second, _, err := mqtt5As(t, b.MQTTAddr, "member-2", "guest", "guest")
		if err != nil {
			t.Fatal(err)
		}
		sa, err := second.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}}})
		if sa == nil || len(sa.Reasons) != 1 || sa.Reasons[0] != 0x97 {
			t.Fatalf("SUBACK %+v, err %v; want 0x97 quota exceeded", sa, err)
		}
		third, _, err := mqtt3As(t, "tcp://"+b.MQTTAddr, "member-3", "guest", "guest")
		if err != nil {
			t.Fatal(err)
		}
		tok := third.Subscribe(filter, 1, nil)
		if !tok.WaitTimeout(waitFor) {
			t.Fatal("MQTT 3 subscribe timed out")
		}
		// paho keys the result by the filter without its $share/group/.
		if res := tok.(*paho3.SubscribeToken).Result(); len(res) != 1 || res["limits/shared"] != 0x80 {
			t.Fatalf("MQTT 3.1.1 SUBACK %v, want 0x80", res)
		}
		// The member within the limit still subscribes to others.
		if _, err := first.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "limits/plain", QoS: 1}}}); err != nil {
			t.Fatal(err)
		}
	})

	// The consumer within the limit is unaffected; once it is cancelled,
	// another takes its place.
	publish(t, ownerCh, "", q, "still here")
	if m := recvN(t, only, 1)[0]; string(m.Body) != "still here" {
		t.Fatalf("got %q", m.Body)
	}
	if err := ownerCh.Cancel("only", false); err != nil {
		t.Fatal(err)
	}
	conn, err := amqpDialLimits(t, b.AMQPURL)
	if err != nil {
		t.Fatal(err)
	}
	ch := newChannel(t, conn)
	d := consume(t, ch, q, true)
	publish(t, ownerCh, "", q, "next")
	if m := recvN(t, d, 1)[0]; string(m.Body) != "next" {
		t.Fatalf("got %q", m.Body)
	}
}

// TestLoginFailureDelay checks that every way in answers a failed login
// no earlier than --login-failure-delay, and a good one at once.
func TestLoginFailureDelay(t *testing.T) {
	const delay = 200 * time.Millisecond
	b := startLimits(t, func(c *config.Config) { c.LoginFailureDelay = delay },
		testutil.AMQP, testutil.MQTT, testutil.STOMP, testutil.HTTP)
	atLeast := func(t *testing.T, start time.Time) {
		t.Helper()
		if took := time.Since(start); took < delay {
			t.Fatalf("refusal after %v, want at least %v", took, delay)
		}
	}

	t.Run("AMQP", func(t *testing.T) {
		start := time.Now()
		_, err := amqpDialLimits(t, amqpURLAs(t, b, "guest", "wrong"))
		if err == nil {
			t.Fatal("login with a wrong password succeeded")
		}
		var ae *amqp.Error
		if !errors.Is(err, amqp.ErrCredentials) && !(errors.As(err, &ae) && ae.Code == amqp.AccessRefused) {
			t.Fatalf("got %v, want a refused login", err)
		}
		atLeast(t, start)
	})
	t.Run("MQTT", func(t *testing.T) {
		start := time.Now()
		_, ca, err := mqtt5As(t, b.MQTTAddr, "bad", "guest", "wrong")
		expectConnack5(t, ca, err, 0x86) // bad user name or password
		atLeast(t, start)
		start = time.Now()
		if _, rc, err := mqtt3As(t, "tcp://"+b.MQTTAddr, "bad3", "guest", "wrong"); err == nil || rc != 0x04 {
			t.Fatalf("MQTT 3.1.1: rc %#x, err %v; want 0x04", rc, err)
		}
		atLeast(t, start)
	})
	t.Run("STOMP", func(t *testing.T) {
		start := time.Now()
		_, err := stompAs(t, b.STOMPAddr, "guest", "wrong")
		expectStompError(t, err, "Access refused", "login failed")
		atLeast(t, start)
	})
	for _, path := range []string{"/api/overview", "/api/v1/notifications"} {
		t.Run("HTTP "+path, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodGet, b.HTTPURL+path, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.SetBasicAuth("guest", "wrong")
			start := time.Now()
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401", resp.StatusCode)
			}
			atLeast(t, start)
		})
	}
	t.Run("web console", func(t *testing.T) {
		start := time.Now()
		resp, err := http.PostForm(b.HTTPURL+"/login", url.Values{"username": {"guest"}, "password": {"wrong"}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("status %d, want 401", resp.StatusCode)
		}
		atLeast(t, start)
	})
}

// TestLoginFailureDelayBlocksNoOne holds failed logins of every protocol
// on the broker's (fake) clock and checks that good logins go through
// meanwhile, and that the failed ones are answered once the delay passes.
func TestLoginFailureDelayBlocksNoOne(t *testing.T) {
	clk := clock.NewFake(time.Now())
	b := testutil.StartBroker(t, testutil.WithClock(clk),
		testutil.WithProtocols(testutil.AMQP, testutil.MQTT, testutil.STOMP),
		testutil.WithConfig(func(c *config.Config) { c.LoginFailureDelay = 3 * time.Second }))
	timers := clk.Pending()

	failed := make(chan string, 3)
	badURL := amqpURLAs(t, b, "guest", "wrong")
	go func() {
		_, err := amqp.DialConfig(badURL, amqp.Config{Dial: amqp.DefaultDial(waitFor)})
		failed <- fmt.Sprintf("AMQP: %v", err)
	}()
	go func() {
		conn, err := net.DialTimeout("tcp", b.MQTTAddr, waitFor)
		if err != nil {
			failed <- err.Error()
			return
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 3*waitFor)
		defer cancel()
		ca, err := paho.NewClient(paho.ClientConfig{Conn: conn}).Connect(ctx, &paho.Connect{ClientID: "bad", CleanStart: true,
			Username: "guest", UsernameFlag: true, Password: []byte("wrong"), PasswordFlag: true})
		code := -1
		if ca != nil {
			code = int(ca.ReasonCode)
		}
		failed <- fmt.Sprintf("MQTT: %d %v", code, err)
	}()
	go func() {
		_, err := stomp.Dial("tcp", b.STOMPAddr, stomp.ConnOpt.Login("guest", "wrong"), stomp.ConnOpt.Logger(quietLogger{}))
		failed <- fmt.Sprintf("STOMP: %v", err)
	}()
	eventually(t, "three failed logins wait", func() bool { return clk.Pending() >= timers+3 })

	// Good logins are not held up by the waiting ones.
	if _, err := amqpDialLimits(t, b.AMQPURL); err != nil {
		t.Fatal(err)
	}
	if _, _, err := mqtt5As(t, b.MQTTAddr, "good", "guest", "guest"); err != nil {
		t.Fatal(err)
	}
	if _, err := stompAs(t, b.STOMPAddr, "guest", "guest"); err != nil {
		t.Fatal(err)
	}
	select {
	case f := <-failed:
		t.Fatalf("failed login answered before its delay: %s", f)
	default:
	}

	// Advance the clock past the delay, again while an answer is missing:
	// a failed login the wait above counted too early (another timer of
	// the broker's) may arm its timer only now.
	deadline := time.Now().Add(2 * waitFor)
	for answered := 0; answered < 3; {
		clk.Advance(3 * time.Second)
		select {
		case f := <-failed:
			answered++
			if strings.HasSuffix(f, "<nil>") {
				t.Fatalf("failed login succeeded: %s", f)
			}
		case <-time.After(100 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatal("failed logins not answered after the delay")
			}
		}
	}
}

func TestLimitsInOverview(t *testing.T) {
	b := startLimits(t, func(c *config.Config) {
		c.MaxConnections, c.MaxConnectionsPerUser, c.MaxConsumersPerQueue = 100, 10, 5
		c.AMQPChannelMax, c.LoginFailureDelay = 64, 250*time.Millisecond
	}, testutil.AMQP, testutil.HTTP)
	resp := httpDo(t, http.MethodGet, b.HTTPURL+"/api/overview", "guest", "guest")
	defer resp.Body.Close()
	var got struct {
		Limits map[string]int64 `json:"limits"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"max_connections": 100, "max_connections_per_user": 10, "max_consumers_per_queue": 5,
		"channel_max": 64, "login_failure_delay_ms": 250}
	if !maps.Equal(got.Limits, want) {
		t.Fatalf("overview limits %v, want %v", got.Limits, want)
	}
}
