package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// runIdle opens o.idle idle MQTT 3.1.1 clean sessions (keep-alive off),
// o.parallel at a time, and holds them (see holdIdle). A process may open
// only as many sockets as its file limit allows;
// scripts/bench-mqtt-idle.sh spreads the connections over several
// processes with distinct -prefix values.
func runIdle(o mqttOptions, stdout io.Writer) error {
	prefix := o.prefix
	if prefix == "" {
		prefix = runID()
	}
	return holdIdle("mqtt", o.idle, o.parallel, o.hold, stdout, func(i int) (net.Conn, error) {
		return rawConnect(o.addr, fmt.Sprintf("idle-%s-%d", prefix, i), o.user, o.pass, connectClean)
	}, rawDisconnect)
}

// holdIdle opens n connections with dial, parallel at a time, reports the
// connect rate, prints "READY <open>" and holds them for hold (or until
// SIGINT or SIGTERM), so that the broker's memory per connection can be
// read; then it closes each with bye.
func holdIdle(mode string, n, parallel int, hold time.Duration, stdout io.Writer,
	dial func(i int) (net.Conn, error), bye func(net.Conn)) error {
	ctx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stopSignals()
	conns := make([]net.Conn, n)
	defer func() {
		for _, c := range conns {
			if c != nil {
				bye(c)
			}
		}
	}()
	var next, failures atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for range max(parallel, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				c, err := dial(i)
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
	var open int64
	for _, c := range conns {
		if c != nil {
			open++
		}
	}
	fmt.Fprintf(stdout, "%s idle: %d connections in %v (%.0f connects/s), %d failed; holding for %v\n",
		mode, open, elapsed.Round(time.Millisecond), perSecond(open, elapsed), failed, hold)
	if err, ok := firstErr.Load().(error); ok {
		fmt.Fprintf(stdout, "first failure: %v\n", err)
	}
	printJSON(stdout, struct {
		Mode        string  `json:"mode"`
		Connections int64   `json:"connections"`
		Failed      int64   `json:"failed"`
		Seconds     float64 `json:"seconds"`
		ConnectRate float64 `json:"connects_per_s"`
	}{mode + "-idle", open, failed, elapsed.Seconds(), perSecond(open, elapsed)})
	fmt.Fprintf(stdout, "READY %d\n", open)
	select {
	case <-time.After(hold):
	case <-ctx.Done():
	}
	return nil
}
