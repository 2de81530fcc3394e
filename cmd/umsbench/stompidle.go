package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// runStompIdle opens o.idle idle STOMP 1.2 connections (heart-beats off),
// o.parallel at a time, and holds them (see holdIdle;
// scripts/bench-mqtt-idle.sh with PROTO=stomp).
func runStompIdle(o stompOptions, stdout io.Writer) error {
	return holdIdle("stomp", o.idle, o.parallel, o.hold, &o.common, stdout, func(int) (net.Conn, error) {
		return stompConnectRaw(o)
	}, func(c net.Conn) {
		c.Write([]byte("DISCONNECT\n\n\x00"))
		c.Close()
	})
}

// stompConnectRaw opens one STOMP 1.2 session with heart-beats off and
// waits for CONNECTED.
func stompConnectRaw(o stompOptions) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", o.addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	frame := "CONNECT\naccept-version:1.2\nhost:" + o.host + "\nlogin:" + o.login + "\npasscode:" + o.passcode +
		"\nheart-beat:0,0\n\n\x00"
	if _, err := c.Write([]byte(frame)); err != nil {
		c.Close()
		return nil, err
	}
	reply, err := bufio.NewReader(c).ReadString(0)
	if err != nil {
		c.Close()
		return nil, err
	}
	if !strings.HasPrefix(reply, "CONNECTED\n") {
		c.Close()
		return nil, fmt.Errorf("stomp: %q", strings.SplitN(reply, "\n\n", 2)[0])
	}
	c.SetDeadline(time.Time{})
	return c, nil
}
