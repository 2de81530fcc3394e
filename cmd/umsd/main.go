// Command umsd is the UMS server: AMQP 0-9-1 and MQTT today, STOMP and
// notification delivery on the same core as they land.
//
// Run it with no flags for the embedded defaults; `umsd --help` lists every
// flag with its environment variable and default.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/unifiedms/ums/config"
	"github.com/unifiedms/ums/internal/broker"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	cfg, err := config.Load(args, os.Getenv, os.Stderr)
	if errors.Is(err, config.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "umsd:", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level(cfg.LogLevel)}))
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
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	s := <-sig
	log.Info("shutting down", "signal", s.String())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Shutdown(ctx); err != nil {
		log.Warn("shutdown incomplete", "err", err)
		return 1
	}
	return 0
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
