package test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"
)

// Every notification answered 202 survives a SIGKILL: submitted while the
// webhook fails (so they sit in the queues and the retry schedule), umsd
// killed mid-run, restarted, and each is then sent.
func TestCrashAcceptedNotificationsSurviveSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the crash test builds and runs umsd")
	}
	hook := startHook(t)
	var down sync.Mutex
	failing := true
	hook.setAnswer(func(int, []byte) (int, http.Header) {
		down.Lock()
		defer down.Unlock()
		if failing {
			return http.StatusServiceUnavailable, nil
		}
		return http.StatusOK, nil
	})
	dir := t.TempDir()
	flags := []string{"--http-listen", "127.0.0.1:0", "--webhook-secret", hookSecret, "--webhook-allow-http",
		"--webhook-allow-private", "--notify-backoff-base", "20ms", "--notify-backoff-max", "100ms",
		"--notify-max-attempts", "1000"}
	p := startProc(t, dir, flags...)
	base := p.http(t)
	ok202 := map[string]bool{}
	post := func(i int) (string, bool) {
		body, _ := json.Marshal(webhookNote(hook.URL, map[string]any{"content": map[string]any{"text": fmt.Sprint(i)}}))
		req, _ := http.NewRequest("POST", base+"/api/v1/notifications", bytes.NewReader(body))
		req.SetBasicAuth("guest", "guest")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return "", false // the server died under it: not accepted
		}
		defer resp.Body.Close()
		var a accepted
		data, _ := io.ReadAll(resp.Body)
		json.Unmarshal(data, &a)
		return a.ID, resp.StatusCode == http.StatusAccepted
	}
	killed := make(chan struct{})
	go func() {
		time.Sleep(300 * time.Millisecond)
		p.kill(t)
		close(killed)
	}()
	for i := 0; ; i++ {
		select {
		case <-killed:
		default:
			if id, ok := post(i); ok {
				ok202[id] = true
			}
			continue
		}
		break
	}
	if len(ok202) == 0 {
		t.Fatal("nothing was accepted before the kill")
	}
	down.Lock()
	failing = false
	down.Unlock()
	startProc(t, dir, flags...)
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		got := map[string]bool{}
		for _, c := range hook.received() {
			if c.Header.Get("X-UMS-Id") != "" {
				got[c.Header.Get("X-UMS-Id")] = true
			}
		}
		missing := 0
		for id := range ok202 {
			if !got[id] {
				missing++
			}
		}
		if missing == 0 {
			t.Logf("%d accepted notifications, all sent after the SIGKILL", len(ok202))
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("accepted notifications not sent after the restart")
}
