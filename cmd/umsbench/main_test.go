package main

import (
	"bytes"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// The tally counts every arrival, and a message that arrives twice once
// as distinct.
func TestTallyCountsDuplicates(t *testing.T) {
	g := newTally()
	now := time.Now().UnixNano()
	body := func(sender, seq uint32) []byte {
		b := make([]byte, stampFull)
		putStamp(b, now-int64(time.Millisecond), sender, seq)
		return b
	}
	for _, m := range []struct{ sender, seq uint32 }{{1, 0}, {1, 1}, {2, 0}, {1, 1}, {1, 500}, {2, 0}} {
		g.add(body(m.sender, m.seq), now)
	}
	g.add(make([]byte, stampTime), now) // no identity: counts as new
	received, distinct := g.counts()
	if received != 7 || distinct != 5 {
		t.Fatalf("received %d, distinct %d; want 7 and 5", received, distinct)
	}
	if l := g.latencies(); len(l) != 7 || l.pct(0.5) < time.Millisecond {
		t.Fatalf("latencies %v", l)
	}
}

func TestModes(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"bogus"}, 2, "unknown mode"},
		{[]string{"mqtt", "-qos", "3"}, 1, "want 0, 1 or 2"},
		{[]string{"mqtt", "-client", "x"}, 1, "want raw or paho"},
		{[]string{"mqtt", "-nosuchflag"}, 2, "flag provided but not defined"},
		{[]string{"-h"}, 0, "umsbench amqp"},
		{[]string{"amqp", "extra"}, 2, "unexpected arguments"},
		{[]string{"notify", "-via", "smtp"}, 1, "want http or amqp"},
		{[]string{"notify", "-via", "amqp", "-batch", "10"}, 1, "-batch is for -via http"},
		{[]string{"notify", "-batch", "1001"}, 1, "want 0 to 1000"},
		{[]string{"help"}, 0, "notify"},
		{[]string{"stomp", "-ack", "never"}, 1, "want auto, client or client-individual"},
		{[]string{"floor", "-size", "4"}, 2, "-size at least 8"},
		{[]string{"floor", "-via-pub", "127.0.0.1:1"}, 2, "go together"},
	} {
		var out bytes.Buffer
		if code := run(c.args, &out, &out); code != c.code || !strings.Contains(out.String(), c.out) {
			t.Errorf("%q: exit %d, output %q; want %d and %q", c.args, code, out.String(), c.code, c.out)
		}
	}
}

// The floor mode's stream goes through its relay and every message is
// measured.
func TestFloorThroughRelay(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	go func() { _ = runRelay(addr) }()
	time.Sleep(50 * time.Millisecond)
	var out bytes.Buffer
	if code := run([]string{"floor", "-rate", "2000", "-duration", "100ms", "-via-pub", addr, "-via-sub", addr}, &out, &out); code != 0 {
		t.Fatalf("exit %d: %s", code, out.String())
	}
	if want := fmt.Sprintf("floor: %d messages of 1024 B at 2000 msg/s", 200); !strings.Contains(out.String(), want) || !strings.Contains(out.String(), "p99") {
		t.Fatalf("output %q, want %q and the latencies", out.String(), want)
	}
}
