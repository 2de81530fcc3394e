package test

import (
	"testing"

	"github.com/go-stomp/stomp/v3"

	"github.com/unifiedms/ums/core/auth"
)

// STOMP users are the broker's users: login and passcode, the host header
// as vhost, and the core's permissions on every destination.
func TestStompAuthorization(t *testing.T) {
	b := startStomp(t)
	users := b.Users
	if err := users.PutUser("clerk", "pw", nil); err != nil {
		t.Fatal(err)
	}
	if err := users.SetPermission("clerk", "/", auth.Permission{Configure: "^clerk-.*", Write: "^(clerk-.*|amq.default)$", Read: "^clerk-.*"}); err != nil {
		t.Fatal(err)
	}
	b.Core.AddVhost("other")
	if err := users.SetPermission("guest", "other", auth.Permission{Configure: ".*", Write: ".*", Read: ".*"}); err != nil {
		t.Fatal(err)
	}

	// The host header selects the vhost.
	c := stompDial(t, b.STOMPAddr, stomp.ConnOpt.Host("other"))
	stompSend(t, c, "/queue/in-other", "x", stomp.SendOpt.Receipt)
	if v, _ := b.Core.Vhost("other"); func() bool {
		_, err := v.Queue(nil, "in-other")
		return err != nil
	}() {
		t.Fatal("no queue in-other in vhost other")
	}

	// clerk may use clerk-* queues only.
	clerk, err := stomp.Dial("tcp", b.STOMPAddr, stomp.ConnOpt.Login("clerk", "pw"), stomp.ConnOpt.Host("/"), stomp.ConnOpt.Logger(quietLogger{}))
	if err != nil {
		t.Fatal(err)
	}
	defer clerk.MustDisconnect()
	s := stompSubscribe(t, clerk, "/queue/clerk-jobs", stomp.AckAuto)
	stompSend(t, clerk, "/queue/clerk-jobs", "mine", stomp.SendOpt.Receipt)
	if m := stompRecv(t, s); string(m.Body) != "mine" {
		t.Fatalf("%q", m.Body)
	}

	for _, c := range []struct{ name, frame, message string }{
		{"declare", "SEND\ndestination:/queue/boss\n\nx\x00", "access_refused"},
		{"publish to a topic", "SEND\ndestination:/topic/news\n\nx\x00", "access_refused"},
		{"read", "SUBSCRIBE\nid:1\ndestination:/amq/queue/in-other\n\n\x00", "access_refused"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := dialRawStomp(t, b.STOMPAddr)
			r.write("CONNECT\naccept-version:1.2\nlogin:clerk\npasscode:pw\nhost:/\n\n\x00")
			r.expect("CONNECTED")
			r.write(c.frame)
			r.expectError(c.message)
		})
	}
	// No vhost access at all.
	r := dialRawStomp(t, b.STOMPAddr)
	r.write("CONNECT\naccept-version:1.2\nlogin:clerk\npasscode:pw\nhost:other\n\n\x00")
	r.expectError("Access refused")

	// Without a login, the default user (guest, from loopback) is used,
	// as RabbitMQ's STOMP plugin does.
	r = dialRawStomp(t, b.STOMPAddr)
	r.write("CONNECT\naccept-version:1.2\nhost:/\n\n\x00")
	r.expect("CONNECTED")
}
