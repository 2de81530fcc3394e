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
// o.parallel at a time, reports the connect rate, prints "READY <n>" (n
// connections open) and holds them for o.hold, so that the broker's memory
// per connection can be read. A process may open only as many sockets as
// its file limit allows; scripts/bench-mqtt-idle.sh spreads the
// connections over several processes with distinct -prefix values.
func runIdle(o mqttOptions, stdout io.Writer) error {
	prefix := o.prefix
	if prefix == "" {
		prefix = runID()
	}
	ctx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stopSignals()

	conns := make([]net.Conn, o.idle)
	defer func() {
		for _, c := range conns {
			if c != nil {
				rawDisconnect(c)
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
				c, err := rawConnect(o.addr, fmt.Sprintf("idle-%s-%d", prefix, i), o.user, o.pass, connectClean)
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
	open := int64(o.idle) - failed
	if ctx.Err() != nil {
		open = 0
		for _, c := range conns {
			if c != nil {
				open++
			}
		}
	}
	fmt.Fprintf(stdout, "mqtt idle: %d connections in %v (%.0f connects/s), %d failed; holding for %v\n",
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
	}{"mqtt-idle", open, failed, elapsed.Seconds(), perSecond(open, elapsed)})
	fmt.Fprintf(stdout, "READY %d\n", open)
	select {
	case <-time.After(o.hold):
	case <-ctx.Done():
	}
	return nil
}
