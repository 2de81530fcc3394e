package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// runStompIdle opens o.idle idle STOMP 1.2 connections (heart-beats off),
// o.parallel at a time, reports the connect rate, prints "READY <n>" and
// holds them for o.hold, so that the broker's memory per connection can
// be read (scripts/bench-mqtt-idle.sh with PROTO=stomp).
func runStompIdle(o stompOptions, stdout io.Writer) error {
	ctx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stopSignals()
	conns := make([]net.Conn, o.idle)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Write([]byte("DISCONNECT\n\n\x00"))
				c.Close()
			}
		}
	}()
	var next, failures atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for range max(o.parallel, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= o.idle {
					return
				}
				c, err := stompConnectRaw(o)
				if err != nil {
					failures.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				conns[i] = c
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	failed := failures.Load()
	open := int64(0)
	for _, c := range conns {
		if c != nil {
			open++
		}
	}
	fmt.Fprintf(stdout, "stomp idle: %d connections in %v (%.0f connects/s), %d failed; holding for %v\n",
		open, elapsed.Round(time.Millisecond), perSecond(open, elapsed), failed, o.hold)
	if err, ok := firstErr.Load().(error); ok {
		fmt.Fprintf(stdout, "first failure: %v\n", err)
	}
	printJSON(stdout, struct {
		Mode        string  `json:"mode"`
		Connections int64   `json:"connections"`
		Failed      int64   `json:"failed"`
		Seconds     float64 `json:"seconds"`
		ConnectRate float64 `json:"connects_per_s"`
	}{"stomp-idle", open, failed, elapsed.Seconds(), perSecond(open, elapsed)})
	fmt.Fprintf(stdout, "READY %d\n", open)
	select {
	case <-time.After(o.hold):
	case <-ctx.Done():
	}
	return nil
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
