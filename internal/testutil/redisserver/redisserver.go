// Package redisserver starts a real redis-server for tests: on a free
// loopback port, without persistence, in a temporary directory, killed
// when the test ends. Tests skip (saying why) when the binary is missing;
// scripts/test.sh installs Debian's redis-server.
package redisserver

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

// startTimeout bounds the wait for the first PONG.
const startTimeout = 10 * time.Second

// Server is a running (or stopped) redis-server.
type Server struct {
	Addr string // 127.0.0.1:port, kept across Stop and Start

	tb  testing.TB
	bin string
	dir string

	mu  sync.Mutex
	cmd *exec.Cmd
	log *bytes.Buffer
}

// Start starts a redis-server, or skips the test when there is none.
func Start(tb testing.TB) *Server {
	tb.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		tb.Skipf("redis-server is not installed (apt-get install -y redis-server): %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	s := &Server{Addr: addr, tb: tb, bin: bin, dir: tb.TempDir()}
	tb.Cleanup(s.Stop)
	s.Restart()
	return s
}

// Restart starts the server again on the same port after Stop (its data
// is gone: nothing is persisted).
func (s *Server) Restart() {
	s.tb.Helper()
	_, port, _ := net.SplitHostPort(s.Addr)
	s.mu.Lock()
	if s.cmd != nil {
		s.mu.Unlock()
		s.tb.Fatal("redisserver: already running")
	}
	log := &bytes.Buffer{}
	cmd := exec.Command(s.bin, "--port", port, "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", s.dir,
		"--logfile", filepath.Join(s.dir, "redis.log"))
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		s.mu.Unlock()
		s.tb.Fatalf("redisserver: %v", err)
	}
	s.cmd, s.log = cmd, log
	s.mu.Unlock()

	deadline := time.Now().Add(startTimeout)
	for {
		err := ping(s.Addr)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			out, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
			s.Stop()
			s.tb.Fatalf("redisserver: no PONG from %s after %v: %v\n%s%s", s.Addr, startTimeout, err, log, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop kills the server and waits for it to exit. Stopping a stopped
// server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd := s.cmd
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Kill()
	cmd.Wait()
}

// ping sends PING in the inline protocol and expects +PONG.
func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("answer %s", strconv.Quote(line))
	}
	return nil
}
