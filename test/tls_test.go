package test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	paho3 "github.com/eclipse/paho.mqtt.golang"
	"github.com/go-stomp/stomp/v3"
	"github.com/gorilla/websocket"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/unifiedms/ums/config"
	"github.com/unifiedms/ums/core/auth"
	"github.com/unifiedms/ums/internal/testutil"
)

// testPKI is a CA with the files a broker and its clients need, written
// under a temporary directory.
type testPKI struct {
	t      *testing.T
	dir    string
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
	caFile string
	pool   *x509.CertPool
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "UMS test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	p := &testPKI{t: t, dir: t.TempDir(), ca: ca, caKey: key, pool: x509.NewCertPool()}
	p.pool.AddCert(ca)
	p.caFile = filepath.Join(p.dir, "ca.pem")
	p.write(p.caFile, "CERTIFICATE", der)
	return p
}

func (p *testPKI) write(path, kind string, der []byte) {
	p.t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		p.t.Fatal(err)
	}
}

// issue makes a certificate signed by the CA: a server certificate for
// 127.0.0.1 and localhost, or a client certificate named cn.
func (p *testPKI) issue(cn string, serial int64, server bool) (tls.Certificate, []byte, []byte) {
	p.t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		p.t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		tmpl.DNSNames = []string{"localhost"}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		p.t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		p.t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		p.t.Fatal(err)
	}
	return c, certPEM, keyPEM
}

// serverFiles writes a server certificate with serial to the files the
// broker reads, replacing them (key first, then the certificate, each by
// rename, as an operator's tooling would).
func (p *testPKI) serverFiles(serial int64) (certFile, keyFile string) {
	p.t.Helper()
	_, certPEM, keyPEM := p.issue("127.0.0.1", serial, true)
	certFile, keyFile = filepath.Join(p.dir, "server.pem"), filepath.Join(p.dir, "server.key")
	for _, f := range []struct {
		path string
		data []byte
	}{{keyFile, keyPEM}, {certFile, certPEM}} {
		tmp := f.path + ".tmp"
		if err := os.WriteFile(tmp, f.data, 0o600); err != nil {
			p.t.Fatal(err)
		}
		if err := os.Rename(tmp, f.path); err != nil {
			p.t.Fatal(err)
		}
	}
	return certFile, keyFile
}

// client is a client configuration trusting the CA, with cert when given.
func (p *testPKI) client(cert *tls.Certificate) *tls.Config {
	c := &tls.Config{RootCAs: p.pool, ServerName: "127.0.0.1"}
	if cert != nil {
		c.Certificates = []tls.Certificate{*cert}
	}
	return c
}

// startTLSBroker starts a broker with the named listeners and a server
// certificate of serial 1; verifyPeer requires client certificates.
func startTLSBroker(t *testing.T, p *testPKI, verifyPeer bool, listeners ...string) *testutil.Broker {
	t.Helper()
	certFile, keyFile := p.serverFiles(1)
	return testutil.StartBroker(t, testutil.WithProtocols(listeners...), testutil.WithConfig(func(c *config.Config) {
		c.TLSCertFile, c.TLSKeyFile, c.TLSCAFile, c.TLSVerifyPeer = certFile, keyFile, p.caFile, verifyPeer
	}))
}

// amqpRoundTrip declares a queue, publishes to it and gets the message back.
func amqpRoundTrip(t *testing.T, conn *amqp.Connection, queue, body string) {
	t.Helper()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	if _, err := ch.QueueDeclare(queue, false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ch.PublishWithContext(ctx, "", queue, false, false, amqp.Publishing{Body: []byte(body)}); err != nil {
		t.Fatal(err)
	}
	msgs, err := ch.Consume(queue, "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-msgs:
		if string(m.Body) != body {
			t.Fatalf("got %q, want %q", m.Body, body)
		}
	case <-ctx.Done():
		t.Fatal("timed out waiting for the AMQP message")
	}
}

// Every protocol over TLS: AMQPS, MQTTS, STOMP over TLS, HTTPS and the
// secure WebSocket listeners, with TLS 1.2 as the oldest version.
func TestTLSListeners(t *testing.T) {
	p := newTestPKI(t)
	b := startTLSBroker(t, p, false, testutil.AMQP, testutil.AMQPS, testutil.MQTTS, testutil.MQTTWSS,
		testutil.STOMPS, testutil.STOMPWSS, testutil.HTTPS)
	if b.AMQPSURL == "" || b.MQTTSAddr == "" || b.STOMPSAddr == "" || b.HTTPSURL == "" || b.MQTTWSSAddr == "" || b.STOMPWSSAddr == "" {
		t.Fatalf("TLS listeners missing: %+v", b)
	}

	t.Run("amqps", func(t *testing.T) {
		conn, err := amqp.DialTLS(b.AMQPSURL, p.client(nil))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if v := conn.ConnectionState().Version; v < tls.VersionTLS12 {
			t.Fatalf("TLS version %x", v)
		}
		amqpRoundTrip(t, conn, "tls.amqps", "over amqps")
	})

	t.Run("mqtts and wss", func(t *testing.T) {
		for _, url := range []string{"tls://" + b.MQTTSAddr, "wss://" + b.MQTTWSSAddr + "/ws"} {
			got := make(chan paho3.Message, 10)
			o := paho3.NewClientOptions().AddBroker(url).SetClientID("tls-client").
				SetUsername("guest").SetPassword("guest").SetTLSConfig(p.client(nil)).SetAutoReconnect(false).
				SetDefaultPublishHandler(func(_ paho3.Client, m paho3.Message) { got <- m })
			c := paho3.NewClient(o)
			mqttWait3(t, c.Connect())
			mqttWait3(t, c.Subscribe("tls/t", 1, nil))
			mqttWait3(t, c.Publish("tls/t", 1, false, "over "+url))
			if m := mqttRecv3(t, got); string(m.Payload()) != "over "+url {
				t.Fatalf("got %q", m.Payload())
			}
			c.Disconnect(100)
		}
	})

	t.Run("stomp over tls", func(t *testing.T) {
		nc, err := tls.Dial("tcp", b.STOMPSAddr, p.client(nil))
		if err != nil {
			t.Fatal(err)
		}
		c, err := stomp.Connect(nc, stomp.ConnOpt.Login("guest", "guest"), stomp.ConnOpt.Host("/"), stomp.ConnOpt.Logger(quietLogger{}))
		if err != nil {
			t.Fatal(err)
		}
		defer c.MustDisconnect()
		s := stompSubscribe(t, c, "/queue/tls.stomps", stomp.AckAuto)
		stompSend(t, c, "/queue/tls.stomps", "over stomps", stomp.SendOpt.Receipt)
		if m := stompRecv(t, s); string(m.Body) != "over stomps" {
			t.Fatalf("got %q", m.Body)
		}
	})

	t.Run("https", func(t *testing.T) {
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: p.client(nil)}, Timeout: 5 * time.Second}
		req, err := http.NewRequest("GET", b.HTTPSURL+"/api/overview", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.SetBasicAuth("guest", "guest")
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /api/overview: %s", resp.Status)
		}
		// The STOMP secure WebSocket listener answers HTTP over TLS too
		// (a plain GET is no upgrade, so it is refused, but over TLS).
		resp, err = hc.Get("https://" + b.STOMPWSSAddr + "/ws")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.TLS == nil {
			t.Fatal("STOMP WebSocket answer not over TLS")
		}
	})

	t.Run("old versions refused", func(t *testing.T) {
		c := p.client(nil)
		c.MaxVersion = tls.VersionTLS11
		c.MinVersion = tls.VersionTLS10
		if nc, err := tls.Dial("tcp", b.Addr(testutil.AMQPS).String(), c); err == nil {
			nc.Close()
			t.Fatal("TLS 1.1 handshake accepted")
		}
	})

	t.Run("plain listener unchanged", func(t *testing.T) {
		conn, err := amqp.Dial(b.AMQPURL)
		if err != nil {
			t.Fatal(err)
		}
		conn.Close()
	})
}

// Without a certificate no TLS listener opens, whatever the addresses say.
func TestTLSOffWithoutCertificate(t *testing.T) {
	b := testutil.StartBroker(t, testutil.WithProtocols(testutil.AMQP, testutil.AMQPS, testutil.HTTPS, testutil.MQTTS, testutil.STOMPS))
	if b.AMQPSURL != "" || b.HTTPSURL != "" || b.MQTTSAddr != "" || b.STOMPSAddr != "" {
		t.Fatalf("a TLS listener opened without a certificate: %+v", b)
	}
}

// With --tls-verify-peer a client needs a certificate from the CA, and
// its common name logs in: AMQP's EXTERNAL mechanism, and MQTT and STOMP
// clients that give no user name.
func TestTLSClientCertificateExternal(t *testing.T) {
	p := newTestPKI(t)
	b := startTLSBroker(t, p, true, testutil.AMQPS, testutil.MQTTS, testutil.STOMPS, testutil.MQTTWSS, testutil.STOMPWSS)
	if err := b.Users.PutUser("alice", "", nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Users.SetPermission("alice", "/", auth.Permission{Configure: ".*", Write: ".*", Read: ".*"}); err != nil {
		t.Fatal(err)
	}
	alice, _, _ := p.issue("alice", 10, false)
	url := "amqps://" + b.Addr(testutil.AMQPS).String() + "/"

	conn, err := amqp.DialTLS_ExternalAuth(url, p.client(&alice))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	amqpRoundTrip(t, conn, "tls.external", "as alice")

	// MQTT without a user name logs in as the certificate's user.
	// (over TLS and over a secure WebSocket).
	for i, url := range []string{"tls://" + b.MQTTSAddr, "wss://" + b.MQTTWSSAddr + "/ws"} {
		got := make(chan paho3.Message, 10)
		mc := paho3.NewClient(paho3.NewClientOptions().AddBroker(url).SetClientID(fmt.Sprintf("alice-device-%d", i)).
			SetTLSConfig(p.client(&alice)).SetAutoReconnect(false).
			SetDefaultPublishHandler(func(_ paho3.Client, m paho3.Message) { got <- m }))
		mqttWait3(t, mc.Connect())
		defer mc.Disconnect(100)
		mqttWait3(t, mc.Subscribe("alice/t", 1, nil))
		mqttWait3(t, mc.Publish("alice/t", 1, false, "mqtt as alice via "+url))
		if m := mqttRecv3(t, got); string(m.Payload()) != "mqtt as alice via "+url {
			t.Fatalf("got %q", m.Payload())
		}
	}

	// So does STOMP without a login header.
	nc, err := tls.Dial("tcp", b.STOMPSAddr, p.client(&alice))
	if err != nil {
		t.Fatal(err)
	}
	sc, err := stomp.Connect(nc, stomp.ConnOpt.Host("/"), stomp.ConnOpt.Logger(quietLogger{}))
	if err != nil {
		t.Fatal(err)
	}
	defer sc.MustDisconnect()
	sub := stompSubscribe(t, sc, "/queue/tls.alice", stomp.AckAuto)
	stompSend(t, sc, "/queue/tls.alice", "stomp as alice", stomp.SendOpt.Receipt)
	if m := stompRecv(t, sub); string(m.Body) != "stomp as alice" {
		t.Fatalf("got %q", m.Body)
	}

	// And STOMP over a secure WebSocket.
	d := websocket.Dialer{Subprotocols: []string{"v12.stomp"}, HandshakeTimeout: waitFor, TLSClientConfig: p.client(&alice)}
	ws, resp, err := d.Dial("wss://"+b.STOMPWSSAddr+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	wc, err := stomp.Connect(&wsStream{ws: ws}, stomp.ConnOpt.Host("/"), stomp.ConnOpt.Logger(quietLogger{}))
	if err != nil {
		t.Fatal(err)
	}
	defer wc.MustDisconnect()
	stompSend(t, wc, "/queue/tls.alice", "stomp as alice via wss", stomp.SendOpt.Receipt)
	if m := stompRecv(t, sub); string(m.Body) != "stomp as alice via wss" {
		t.Fatalf("got %q", m.Body)
	}

	users := map[string]int{}
	for _, c := range b.Core.Connections() {
		users[c.User]++
	}
	if users["alice"] != 5 {
		t.Fatalf("connections per user %v, want alice's AMQP, 2 MQTT and 2 STOMP ones", users)
	}

	// A certificate naming no user is refused.
	mallory, _, _ := p.issue("mallory", 11, false)
	if c, err := amqp.DialTLS_ExternalAuth(url, p.client(&mallory)); err == nil {
		c.Close()
		t.Fatal("EXTERNAL login of an unknown user accepted")
	}
	// No certificate, no connection.
	if c, err := amqp.DialTLS(b.AMQPSURL, p.client(nil)); err == nil {
		c.Close()
		t.Fatal("connection without a client certificate accepted")
	}
	// Password logins still work over a verified connection.
	c, err := amqp.DialTLS(b.AMQPSURL, p.client(&alice))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

// EXTERNAL is not offered without a verified certificate.
func TestTLSExternalNeedsCertificate(t *testing.T) {
	p := newTestPKI(t)
	b := startTLSBroker(t, p, false, testutil.AMQPS)
	if c, err := amqp.DialTLS_ExternalAuth("amqps://"+b.Addr(testutil.AMQPS).String()+"/", p.client(nil)); err == nil {
		c.Close()
		t.Fatal("EXTERNAL login without a certificate accepted")
	}
}

// serverSerial is the serial of the certificate a new connection gets.
func serverSerial(t *testing.T, addr string, p *testPKI) int64 {
	t.Helper()
	nc, err := tls.Dial("tcp", addr, p.client(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	return nc.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}

// waitSerial waits until new connections get the certificate with serial.
func waitSerial(t *testing.T, addr string, p *testPKI, serial int64, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		got := serverSerial(t, addr, p)
		if got == serial {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("server certificate serial %d, want %d", got, serial)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A new certificate is picked up on SIGHUP and when the files change,
// while a connection made with the old one stays open and working.
func TestTLSCertificateReload(t *testing.T) {
	p := newTestPKI(t)
	b := startTLSBroker(t, p, false, testutil.AMQPS)
	addr := b.Addr(testutil.AMQPS).String()
	conn, err := amqp.DialTLS(b.AMQPSURL, p.client(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if s := conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64(); s != 1 {
		t.Fatalf("serial %d, want 1", s)
	}

	p.serverFiles(2)
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitSerial(t, addr, p, 2, 2*time.Second)
	amqpRoundTrip(t, conn, "tls.reload.hup", "still here after SIGHUP")

	// Without a signal the files are polled.
	p.serverFiles(3)
	waitSerial(t, addr, p, 3, 15*time.Second)
	amqpRoundTrip(t, conn, "tls.reload.poll", "still here after the file change")

	// ReloadTLS does the same on demand; a broken file keeps the old one.
	if err := os.WriteFile(filepath.Join(p.dir, "server.pem"), []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := b.ReloadTLS(); err == nil {
		t.Fatal("reload of a broken certificate succeeded")
	}
	if s := serverSerial(t, addr, p); s != 3 {
		t.Fatalf("serial %d after a failed reload, want 3", s)
	}
	if conn.IsClosed() {
		t.Fatal("the connection made before the reloads closed")
	}
}
