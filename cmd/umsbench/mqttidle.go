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

	"github.com/unifiedms/ums/internal/mqttraw"
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
	dialers := []*net.Dialer{{KeepAlive: -1}}
	if o.spread > 0 {
		var err error
		if dialers, err = spreadDialers(o.addr, o.spread); err != nil {
			return err
		}
	}
	return holdIdle("mqtt", o.idle, o.parallel, o.hold, &o.common, stdout, func(i int) (net.Conn, error) {
		return mqttraw.ConnectWith(dialers[i%len(dialers)], o.addr, fmt.Sprintf("idle-%s-%d", prefix, i), o.user, o.pass, connectClean)
	}, rawDisconnect)
}

// spreadDialers returns n dialers from the loopback source addresses
// 127.0.0.2 on, for a broker at a loopback addr. Every connection to one
// broker port from one source address needs its own ephemeral port, and
// the kernel looks for a free one by trying ports in turn: with 19,000
// connections open that search was most of this client's CPU (300 µs per
// connect), so the client, not the broker, set the connect rate. The
// source port is left to connect (IP_BIND_ADDRESS_NO_PORT), where only
// the address pair's own connections conflict. TCP keep-alive is off
// (MQTT's own keep-alive is too): turning it on takes three setsockopt
// calls per connect, a tenth of this client's CPU.
func spreadDialers(addr string, n int) ([]*net.Dialer, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if ip := net.ParseIP(host); ip == nil || ip.To4() == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("-spread: %s is not an IPv4 loopback address", host)
	}
	if n > 250 {
		return nil, fmt.Errorf("-spread %d: at most 250", n)
	}
	ds := make([]*net.Dialer, n)
	for i := range ds {
		ds[i] = &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i))}, Control: bindNoPort, KeepAlive: -1}
	}
	return ds, nil
}

// holdIdle opens n connections with dial, parallel at a time, reports the
// connect rate, prints "READY <open>" and holds them for hold (or until
// SIGINT or SIGTERM), so that the broker's memory per connection can be
// read; then it prints the JSON line and closes each with bye. With
// -broker-pid it reads the broker's RSS before the connections and a
// settling time after them (a third of hold, at most 5s), and its CPU use
// over the rest of hold.
func holdIdle(mode string, n, parallel int, hold time.Duration, common *commonOptions, stdout io.Writer,
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
	fmt.Fprintf(stdout, "READY %d\n", open)
	out := struct {
		Mode           string   `json:"mode"`
		Connections    int64    `json:"connections"`
		Failed         int64    `json:"failed"`
		Seconds        float64  `json:"seconds"`
		ConnectRate    float64  `json:"connects_per_s"`
		RSSBeforeMiB   *float64 `json:"rss_before_mib,omitempty"`
		RSSHeldMiB     *float64 `json:"rss_held_mib,omitempty"`
		BytesPerConn   *float64 `json:"broker_bytes_per_conn,omitempty"`
		IdleCPUPercent *float64 `json:"idle_cpu_percent,omitempty"`
	}{Mode: mode + "-idle", Connections: open, Failed: failed, Seconds: elapsed.Seconds(), ConnectRate: perSecond(open, elapsed)}
	holdStart := time.Now()
	if common.brokerPID > 0 {
		select {
		case <-time.After(min(hold/3, 5*time.Second)):
		case <-ctx.Done():
		}
		held, err := readProc(common.brokerPID)
		if err != nil {
			return fmt.Errorf("-broker-pid: %w", err)
		}
		before, heldMiB := mib(common.before.rss), mib(held.rss)
		per := float64(held.rss-common.before.rss) / float64(max(open, 1))
		out.RSSBeforeMiB, out.RSSHeldMiB, out.BytesPerConn = &before, &heldMiB, &per
		cpuStart := time.Now()
		select {
		case <-time.After(hold - time.Since(holdStart)):
		case <-ctx.Done():
		}
		if after, err := readProc(common.brokerPID); err == nil {
			pct := 100 * (after.cpu - held.cpu).Seconds() / time.Since(cpuStart).Seconds()
			out.IdleCPUPercent = &pct
		}
		fmt.Fprintf(stdout, "broker RSS %.1f MiB before, %.1f MiB with %d connections: %.0f B per connection; idle CPU %.2f%%\n",
			before, heldMiB, open, per, ptrOr(out.IdleCPUPercent))
	} else {
		select {
		case <-time.After(hold):
		case <-ctx.Done():
		}
	}
	return common.emit(stdout, out, 0)
}

func ptrOr(p *float64) float64 {
	if p == nil {
		return 0
	}
	return *p
}
