package test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/unifiedms/ums/config"
	"github.com/unifiedms/ums/internal/broker"
	"github.com/unifiedms/ums/internal/testutil"
)

func TestMgmtAPIHealth(t *testing.T) {
	s, base := startMgmt(t)
	const g = "guest"
	// Probes need no login.
	apiWant(t, http.StatusOK, "GET", base+"/healthz", "", "", "")
	apiWant(t, http.StatusOK, "GET", base+"/readyz", "", "", "")

	s.Core.SetAlarm("memory", "memory above the high watermark", true)
	data := apiWant(t, http.StatusServiceUnavailable, "GET", base+"/readyz", "", "", "")
	if !strings.Contains(string(data), "memory above the high watermark") {
		t.Fatalf("readyz during an alarm: %s", data)
	}
	apiWant(t, http.StatusOK, "GET", base+"/healthz", "", "", "")
	s.Core.SetAlarm("memory", "", false)
	apiWant(t, http.StatusOK, "GET", base+"/readyz", "", "", "")

	// The aliveness test, twice (the queue stays, as in RabbitMQ).
	for range 2 {
		var st struct{ Status string }
		decodeInto(t, apiWant(t, http.StatusOK, "GET", base+"/api/aliveness-test/%2F", g, g, ""), &st)
		if st.Status != "ok" {
			t.Fatalf("aliveness: %+v", st)
		}
	}
	apiWant(t, http.StatusOK, "GET", base+"/api/queues/%2F/aliveness-test", g, g, "")
	apiError(t, http.StatusUnauthorized, "", "GET", base+"/api/aliveness-test/%2F", "", "", "")
	apiError(t, http.StatusNotFound, "", "GET", base+"/api/aliveness-test/nowhere", g, g, "")
	apiWant(t, http.StatusCreated, "PUT", base+"/api/users/mon", g, g, `{"password":"pw","tags":"monitoring"}`)
	apiError(t, http.StatusUnauthorized, "virtual host", "GET", base+"/api/aliveness-test/%2F", "mon", "pw", "")
	apiWant(t, http.StatusCreated, "PUT", base+"/api/permissions/%2F/mon", g, g, `{"configure":"^aliveness-test$","write":"^amq\\.default$","read":"^aliveness-test$"}`)
	apiWant(t, http.StatusOK, "GET", base+"/api/aliveness-test/%2F", "mon", "pw", "")
}

// TestMgmtAPIReadiness checks what /readyz reports before Start and once
// Shutdown has begun (the HTTP listener is closed by then, so the
// broker's own report is checked).
func TestMgmtAPIReadiness(t *testing.T) {
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.AMQPListen, cfg.MQTTListen, cfg.MQTTWSListen, cfg.STOMPListen, cfg.STOMPWSListen = config.Off, config.Off, config.Off, config.Off, config.Off
	cfg.HTTPListen = "127.0.0.1:0"
	b, err := broker.NewWith(cfg, testutil.Logger(), broker.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Ready(); err == nil || !strings.Contains(err.Error(), "starting") {
		t.Fatalf("before Start: %v", err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	if err := b.Ready(); err != nil {
		t.Fatalf("serving: %v", err)
	}
	apiWant(t, http.StatusOK, "GET", "http://"+b.Addr("http").String()+"/readyz", "", "", "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Ready(); err == nil || !strings.Contains(err.Error(), "shutting down") {
		t.Fatalf("after Shutdown: %v", err)
	}
}
