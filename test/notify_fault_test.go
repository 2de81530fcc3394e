package test

import (
	"fmt"
	"net/http"
	"syscall"
	"testing"

	"github.com/unifiedms/ums/config"
	"github.com/unifiedms/ums/core/store"
	"github.com/unifiedms/ums/internal/testutil"
)

// When the disk fails, a submission is refused with 503 (nothing is
// claimed to be queued) and a template is not stored (500); what was
// accepted before is still there after a crash.
func TestNotifyStorageFailure(t *testing.T) {
	fsys := store.NewMemFS()
	hook := startHook(t)
	hook.setAnswer(func(int, []byte) (int, http.Header) { return http.StatusServiceUnavailable, nil })
	cfg := func(c *config.Config) {
		c.WebhookSecret, c.WebhookAllowHTTP, c.WebhookAllowPrivate = hookSecret, true, true
		c.NotifyBackoffBase, c.NotifyBackoffMax = 10e6, 20e6
		c.NotifyMaxAttempts = 1000
	}
	dir := t.TempDir()
	b := testutil.StartBroker(t, testutil.WithFS(fsys), testutil.WithDataDir(dir), testutil.WithProtocols(testutil.HTTP), testutil.WithConfig(cfg),
		testutil.IgnoreShutdownError())
	first := submit(t, b, webhookNote(hook.URL, nil), http.StatusAccepted, nil)
	hook.wait(t, 1)
	fsys.FailWrite(fmt.Errorf("injected: %w", syscall.EIO))
	submit(t, b, webhookNote(hook.URL+"/second", nil), http.StatusServiceUnavailable, nil)
	var out struct {
		Results []struct {
			Code int    `json:"code"`
			ID   string `json:"id"`
		} `json:"results"`
	}
	batch := map[string]any{"notifications": []any{webhookNote(hook.URL+"/batch1", nil), webhookNote(hook.URL+"/batch2", nil)}}
	if got := apiCall(t, b, "POST", "/api/v1/notifications/batch", batch, nil, &out); got != http.StatusOK || len(out.Results) != 2 ||
		out.Results[0].Code != http.StatusServiceUnavailable || out.Results[1].Code != http.StatusServiceUnavailable {
		t.Fatalf("batch on a failing disk: %d %+v", got, out)
	}
	if got := apiCall(t, b, "PUT", "/api/v1/templates/t", map[string]any{"locales": map[string]any{"en": map[string]any{"text": "x"}}}, nil, nil); got != http.StatusInternalServerError {
		t.Fatalf("template PUT on a failing disk: %d", got)
	}
	b.Stop()

	hook.setAnswer(nil)
	b2 := testutil.StartBroker(t, testutil.WithFS(fsys.Crash()), testutil.WithDataDir(dir), testutil.WithProtocols(testutil.HTTP), testutil.WithConfig(cfg))
	marker := submit(t, b2, webhookNote(hook.URL+"/marker", nil), http.StatusAccepted, nil)
	waitStatus(t, b2, marker.ID, "sent")
	waitStatus(t, b2, first.ID, "sent")
	for _, c := range hook.received() {
		if c.Header.Get("X-UMS-Id") != first.ID && c.Header.Get("X-UMS-Id") != marker.ID {
			t.Fatalf("a call for %s, which was refused", c.Header.Get("X-UMS-Id"))
		}
	}
	if got := apiCall(t, b2, "GET", "/api/v1/templates/t", nil, nil, nil); got != http.StatusNotFound {
		t.Fatalf("the refused template exists after the crash: %d", got)
	}
}
