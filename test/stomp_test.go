package test

import (
	"bytes"
	"testing"

	"github.com/go-stomp/stomp/v3"
)

// go-stomp connects with each version; CONNECTED names the version, the
// server and the session.
func TestStompConnectVersions(t *testing.T) {
	b := startStomp(t)
	for _, v := range []stomp.Version{stomp.V10, stomp.V11, stomp.V12} {
		t.Run(string(v), func(t *testing.T) {
			c := stompDial(t, b.STOMPAddr, stomp.ConnOpt.AcceptVersion(v))
			if c.Version() != v {
				t.Fatalf("version %s, want %s", c.Version(), v)
			}
			if c.Session() == "" || c.Server() == "" {
				t.Fatalf("session %q server %q", c.Session(), c.Server())
			}
			s := stompSubscribe(t, c, "/queue/v"+string(v), stomp.AckClientIndividual)
			body := []byte("bin\x00ary\nbody")
			if err := c.Send("/queue/v"+string(v), "application/octet-stream", body, stomp.SendOpt.Receipt,
				stomp.SendOpt.Header("colour", "a:b\\c")); err != nil {
				t.Fatal(err)
			}
			m := stompRecv(t, s)
			if !bytes.Equal(m.Body, body) || m.ContentType != "application/octet-stream" {
				t.Fatalf("body %q type %q", m.Body, m.ContentType)
			}
			// Escaped both ways in 1.1 and 1.2; in 1.0 the server keeps
			// the bytes go-stomp escapes anyway, and go-stomp unescapes them.
			want := "a:b\\c"
			if got := m.Header.Get("colour"); got != want {
				t.Fatalf("header %q, want %q", got, want)
			}
			if v != stomp.V10 {
				if err := c.Ack(m); err != nil {
					t.Fatal(err)
				}
			}
			if err := c.Disconnect(); err != nil {
				t.Fatal(err)
			}
		})
	}
}
