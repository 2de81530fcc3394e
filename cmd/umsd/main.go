// Command umsd is the UMS server: AMQP 0-9-1 and MQTT today, STOMP and
// notification delivery on the same core as they land.
//
// Run it with no flags for the embedded defaults; `umsd --help` lists every
// flag with its environment variable and default. `umsd --check-config`
// (with --config FILE, the environment and flags as for a start) loads and
// checks the configuration without opening anything, prints
// "configuration OK" or the error (with the file and line where it has
// one), and exits 0 or 1.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/unifiedms/ums/config"
	"github.com/unifiedms/ums/internal/broker"
	"github.com/unifiedms/ums/internal/procs"
)

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cfg, err := config.Load(args, getenv, stderr)
	if errors.Is(err, config.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "umsd:", err)
		if checking(args, getenv) {
			return 1
		}
		return 2
	}
	if cfg.CheckConfig {
		if err := broker.Check(cfg); err != nil {
			fmt.Fprintln(stderr, "umsd:", err)
			return 1
		}
		fmt.Fprintln(stdout, "configuration OK")
		return 0
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level(cfg.LogLevel)}))
	slog.SetDefault(log)
	b, err := broker.New(cfg, log)
	if err != nil {
		log.Error("startup failed", "err", err)
		return 1
	}
	if err := b.Start(); err != nil {
		log.Error("startup failed", "err", err)
		b.Shutdown(context.Background())
		return 1
	}
	log.Info("UMS started", "data_dir", cfg.DataDir)
	if cfg.AdaptiveProcs && getenv("GOMAXPROCS") == "" {
		stop := make(chan struct{})
		done := make(chan struct{})
		g := procs.New(log)
		g.Batches = b.Metrics.SyncTotals
		go func() { defer close(done); g.Run(stop) }()
		defer func() { close(stop); <-done }()
	}
	sig := make(chan os.Signal, 1)
	// SIGHUP reloads the TLS files (the broker listens for it when TLS is
	// on); it must not end the server either way.
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	s := <-sig
	for s == syscall.SIGHUP {
		s = <-sig
	}
	log.Info("shutting down", "signal", s.String())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Shutdown(ctx); err != nil {
		log.Warn("shutdown incomplete", "err", err)
		return 1
	}
	return 0
}

// checking tells whether --check-config (or UMS_CHECK_CONFIG) was asked
// for, when the configuration could not be loaded to say so.
func checking(args []string, getenv func(string) string) bool {
	on := func(v string) bool { b, err := strconv.ParseBool(v); return err == nil && b }
	ask := on(getenv("UMS_CHECK_CONFIG"))
	for _, a := range args {
		if a == "--" {
			break
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if strings.HasPrefix(a, "-") && name == "check-config" {
			ask = !hasVal || on(val)
		}
	}
	return ask
}

func level(s string) slog.Level {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug
	case "warn", "warning":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}
