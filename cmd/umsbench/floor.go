package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"time"
)

// The floor mode measures what a fixed-rate latency test can show on this
// machine at all: the same stream as "umsbench amqp -rate R -size S", with
// a send time in each message, through a relay process that does nothing
// but copy bytes from the publisher's connection to the consumer's. The
// relay runs as a process of its own, as a broker does, so the figures
// include what the kernel's scheduling and wake-ups add between processes.
// A broker's latency cannot be lower than this floor; how far above it
// the broker is, is the broker's own cost.
//
//	umsbench floor -rate 5000 -size 1024 -duration 8s

func floorMain(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("umsbench floor", flag.ContinueOnError)
	rate := fs.Int("rate", 5000, "messages per second")
	size := fs.Int("size", 1024, "message size in bytes (at least 8)")
	duration := fs.Duration("duration", 8*time.Second, "how long to send")
	relayAt := fs.String("relay", "", "run only the relay, listening on this address (used by the mode itself)")
	viaPub := fs.String("via-pub", "", "use a relay that is already running instead: the publisher connects here ...")
	viaSub := fs.String("via-sub", "", "... and the consumer here (e.g. socat TCP-LISTEN:9001 TCP-LISTEN:9002)")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if *relayAt != "" {
		return runRelay(*relayAt)
	}
	if *rate <= 0 || *size < 8 || *duration <= 0 {
		fmt.Fprintln(stderr, "umsbench floor: -rate and -duration must be positive and -size at least 8")
		return errUsage
	}
	pubAddr, subAddr := *viaPub, *viaSub
	if (pubAddr == "") != (subAddr == "") {
		fmt.Fprintln(stderr, "umsbench floor: -via-pub and -via-sub go together")
		return errUsage
	}
	if pubAddr == "" {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		pubAddr = ln.Addr().String()
		subAddr = pubAddr
		ln.Close() // the relay process listens there
		self, err := os.Executable()
		if err != nil {
			return err
		}
		relay := exec.Command(self, "floor", "-relay", pubAddr)
		relay.Stderr = stderr
		if err := relay.Start(); err != nil {
			return err
		}
		defer func() {
			_ = relay.Process.Kill()
			_ = relay.Wait()
		}()
	}
	var pub, sub net.Conn
	var err error
	for deadline := time.Now().Add(5 * time.Second); ; {
		if pub, err = net.Dial("tcp", pubAddr); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("relay did not start: %w", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	defer pub.Close()
	// The relay takes the publisher first: write a byte so that it has
	// accepted before the consumer connects.
	if _, err := pub.Write([]byte{0}); err != nil {
		return err
	}
	time.Sleep(50 * time.Millisecond)
	if sub, err = net.Dial("tcp", subAddr); err != nil {
		return err
	}
	defer sub.Close()
	if _, err := io.ReadFull(sub, make([]byte, 1)); err != nil {
		return err
	}

	every := time.Second / time.Duration(*rate)
	n := int(*duration / every)
	var h histogram
	got := make(chan error, 1)
	go func() {
		msg := make([]byte, *size)
		for range n {
			if _, err := io.ReadFull(sub, msg); err != nil {
				got <- err
				return
			}
			h.record(time.Duration(time.Now().UnixNano() - int64(binary.LittleEndian.Uint64(msg))))
		}
		got <- nil
	}()
	msg := make([]byte, *size)
	start := time.Now()
	for i := range n {
		if d := time.Until(start.Add(time.Duration(i) * every)); d > 0 {
			time.Sleep(d)
		}
		binary.LittleEndian.PutUint64(msg, uint64(time.Now().UnixNano()))
		if _, err := pub.Write(msg); err != nil {
			return err
		}
	}
	if err := <-got; err != nil {
		return err
	}
	fmt.Fprintf(stdout, "floor: %d messages of %d B at %d msg/s through a relay: latency p50 %v p99 %v p99.9 %v max %v\n",
		n, *size, *rate, h.quantile(0.5), h.quantile(0.99), h.quantile(0.999), h.max)
	return nil
}

// runRelay accepts two connections and copies the first's bytes to the
// second until either ends.
func runRelay(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	defer ln.Close()
	a, err := ln.Accept()
	if err != nil {
		return err
	}
	b, err := ln.Accept()
	if err != nil {
		return err
	}
	buf := make([]byte, 64<<10)
	for {
		n, err := a.Read(buf)
		if n > 0 {
			if _, werr := b.Write(buf[:n]); werr != nil {
				return nil
			}
		}
		if err != nil {
			return nil
		}
	}
}
