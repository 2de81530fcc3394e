package mqtt_test

import (
	"errors"
	"net"
	"testing"

	paho3 "github.com/eclipse/paho.mqtt.golang"

	"github.com/unifiedms/ums/protocols/mqtt"
)

// remoteListener hands out loopback connections that claim to come from
// another host, so the adapter's loopback rule can be tested while the
// traffic stays on loopback.
type remoteListener struct{ net.Listener }

func (l remoteListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return remoteConn{c}, nil
}

type remoteConn struct{ net.Conn }

func (remoteConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 40000}
}

// serveRemote runs a second adapter over ts's core whose clients all look
// remote, and returns its address.
func (ts *testServer) serveRemote(t *testing.T) string {
	t.Helper()
	srv := &mqtt.Server{Broker: ts.broker, Users: ts.users, Logger: testLogger(), Store: &mqtt.MemoryStore{}, AllowAnonymous: true}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(remoteListener{l}); !errors.Is(err, mqtt.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	}()
	t.Cleanup(func() {
		(&testServer{Server: srv}).stop(t)
		<-done
	})
	return l.Addr().String()
}

// Anonymous clients get guest's rights, and so its loopback-only rule: from
// another host they are refused (MQTT 5 0x87, MQTT 3.1.1 return code 5).
func TestAnonymousFromAnotherHostRefused(t *testing.T) {
	ts := startMQTT(t, func(ts *testServer) { ts.anon = true })
	if err := ts.users.SetLoopbackOnly("guest", true); err != nil { // as the server's default user
		t.Fatal(err)
	}
	addr := ts.serveRemote(t)
	remote := &testServer{addr: addr, anon: true}
	_, _, ca, err := remote.dialV5(t, "far5", v5opts{clean: true})
	if err == nil || ca == nil || ca.ReasonCode != 0x87 {
		t.Fatalf("CONNACK %+v err %v, want 0x87 (not authorized)", ca, err)
	}
	o := paho3.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("far3").
		SetProtocolVersion(4).SetAutoReconnect(false)
	tok := paho3.NewClient(o).Connect()
	tok.WaitTimeout(waitFor)
	if !errors.Is(tok.Error(), packetsErr(5)) {
		t.Fatalf("err %v, want return code 5 (not authorized)", tok.Error())
	}
	// The same anonymous clients are welcome on loopback.
	ts.v5(t, "near5")
	ts.v3(t, "near3", true)
}

// With anonymous clients not allowed, a CONNECT without a user name is
// refused.
func TestAnonymousNotAllowed(t *testing.T) {
	ts := startMQTT(t) // AllowAnonymous false
	anon := &testServer{addr: ts.addr, anon: true}
	_, _, ca, err := anon.dialV5(t, "anon5", v5opts{clean: true})
	if err == nil || ca == nil || ca.ReasonCode != 0x87 {
		t.Fatalf("CONNACK %+v err %v, want 0x87 (not authorized)", ca, err)
	}
	o := paho3.NewClientOptions().AddBroker("tcp://" + ts.addr).SetClientID("anon3").
		SetProtocolVersion(4).SetAutoReconnect(false)
	tok := paho3.NewClient(o).Connect()
	tok.WaitTimeout(waitFor)
	if !errors.Is(tok.Error(), packetsErr(5)) {
		t.Fatalf("err %v, want return code 5 (not authorized)", tok.Error())
	}
}
