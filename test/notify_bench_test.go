package test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/unifiedms/ums/config"
	"github.com/unifiedms/ums/internal/testutil"
	"github.com/unifiedms/ums/internal/testutil/smtpserver"
)

// BenchmarkNotifyChannels measures notifications per second through the
// whole pipeline (HTTP batches in, the guards on with limits set high,
// 64 workers) to each channel's local test server speaking the provider's
// wire format.
//
//	go test -run x -bench NotifyChannels -benchtime 5000x ./test/
func BenchmarkNotifyChannels(b *testing.B) {
	var gwCalls atomic.Int64
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		gwCalls.Add(1)
		io.WriteString(w, `{"requestId":"r-1","statusCode":"202","statusName":"success"}`)
	}))
	defer gw.Close()
	tw := startTwilio(b)
	fcm, saFile := startFCM(b)
	smtp := smtpserver.Start(b)
	hook := startHook(b)
	br := testutil.StartBroker(b, testutil.WithProtocols(testutil.HTTP), testutil.WithConfig(func(c *config.Config) {
		c.TwilioAccountSID, c.TwilioAuthToken, c.TwilioFrom, c.TwilioBaseURL = twilioSID, twilioToken, "+15005550006", tw.URL
		c.FCMCredentials, c.FCMEndpoint = saFile, fcm.URL
		c.SMTPURL, c.SMTPTLS, c.SMTPFrom = smtp.URL(), "none", "ums@example.com"
		c.WebhookSecret, c.WebhookAllowHTTP, c.WebhookAllowPrivate = hookSecret, true, true
		c.Gateways = []byte("- name: kakao\n  url: " + gw.URL + "/send\n  body: '{\"to\": {{json .To}}, \"text\": {{json .Text}}}'\n  success_path: statusCode\n  success_values: [\"202\"]\n")
		c.GatewaysAt = "bench"
		c.NotifyWorkers = "email=64,webhook=64,sms=64,push=64,kakao=64"
		c.NotifyRateLimit = "email=1000000/s,webhook=1000000/s,sms=1000000/s,push=1000000/s,kakao=1000000/s"
		c.NotifyRecipientLimit = c.NotifyRateLimit
	}))
	channels := []struct {
		name string
		note map[string]any
		sent func() int
	}{
		{"webhook", webhookNote(hook.URL, nil), func() int { return len(hook.received()) }},
		{"email", map[string]any{"channel": "email", "to": map[string]any{"email": "a@example.com"}}, func() int { return len(smtp.Mails()) }},
		{"sms", map[string]any{"channel": "sms", "to": map[string]any{"phone": "+821012345678"}}, tw.calls},
		{"push", map[string]any{"channel": "push", "to": map[string]any{"push": map[string]any{"fcm_token": "t"}}}, func() int {
			fcm.mu.Lock()
			defer fcm.mu.Unlock()
			return len(fcm.sends)
		}},
		{"gateway", map[string]any{"channel": "kakao", "to": map[string]any{"phone": "+821012345678"}}, func() int { return int(gwCalls.Load()) }},
	}
	for _, c := range channels {
		b.Run(c.name, func(b *testing.B) {
			n := c.note
			if _, ok := n["content"]; !ok {
				n["content"] = map[string]any{"subject": "s", "text": "code 482913"}
			}
			base := c.sent()
			batch := make([]map[string]any, 0, 1000)
			b.ResetTimer()
			start := time.Now()
			for sent := 0; sent < b.N; {
				batch = batch[:0]
				for len(batch) < cap(batch) && sent+len(batch) < b.N {
					batch = append(batch, n)
				}
				if got := apiCall(b, br, "POST", "/api/v1/notifications/batch", map[string]any{"notifications": batch}, nil, nil); got != http.StatusOK {
					b.Fatalf("batch: %d", got)
				}
				sent += len(batch)
			}
			for c.sent()-base < b.N {
				if time.Since(start) > 5*time.Minute {
					b.Fatalf("%d of %d sent", c.sent()-base, b.N)
				}
				time.Sleep(time.Millisecond)
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "sent/s")
		})
	}
}
