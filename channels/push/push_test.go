package push_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/unifiedms/ums/channels/push"
	"github.com/unifiedms/ums/notify"
)

var clock = time.Unix(1700000000, 0)

func fixedNow() time.Time { return clock }

// classified returns err's *notify.Error or fails the test.
func classified(t *testing.T, err error) *notify.Error {
	t.Helper()
	var e *notify.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not a *notify.Error", err, err)
	}
	return e
}

const apnsHex = "4f1a2b3c4d5e6f708192a3b4c5d6e7f80112233445566778899aabbccddeeff0"

func TestNewNeedsAProvider(t *testing.T) {
	if _, err := push.New(push.Config{}); err == nil || !strings.Contains(err.Error(), "no provider configured") {
		t.Fatalf("New with no provider = %v", err)
	}
}

// One sender serves every configured provider; a target of another
// provider is refused at submission and, should one slip through, at
// sending, without a request.
func TestDispatchAndConfiguredProviders(t *testing.T) {
	e := newFCMEnv(t)
	pub, priv := vapidKeys(t)
	b := newBrowser(t)
	p := newPushService(t, pub, b)
	s, err := push.New(push.Config{
		FCM: &push.FCMConfig{CredentialsJSON: serviceAccountJSON(t, e.token.URL+"/token"), BaseURL: e.api.URL},
		WebPush: &push.WebPushConfig{VAPIDPublicKey: pub, VAPIDPrivateKey: priv, Subject: vapidSubject,
			AllowPrivate: true, Transport: p.srv.Client().Transport.(*http.Transport)},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := s.Providers(); !slices.Equal(got, []string{"fcm", "webpush"}) {
		t.Errorf("Providers() = %v", got)
	}

	res, err := s.Send(context.Background(), fcmMessage(fcmToken))
	if err != nil || res.Provider != "fcm" {
		t.Errorf("fcm: %+v, %v", res, err)
	}
	wp := b.target(p.srv.URL + "/push/ok")
	res, err = s.Send(context.Background(), webPushMessage(wp))
	if err != nil || res.Provider != "webpush" {
		t.Errorf("webpush: %+v, %v", res, err)
	}
	if len(e.reqs()) != 1 || len(p.pushes()) != 1 {
		t.Errorf("FCM got %d, the push service %d requests; want 1 each", len(e.reqs()), len(p.pushes()))
	}

	if err := s.ValidateTarget([]byte(`{"fcm_token":"` + fcmToken + `"}`)); err != nil {
		t.Errorf("fcm target: %v", err)
	}
	if err := s.ValidateTarget(wp); err != nil {
		t.Errorf("web push target: %v", err)
	}
	apns := []byte(`{"apns_token":"` + apnsHex + `"}`)
	err = s.ValidateTarget(apns)
	if err == nil || !strings.Contains(err.Error(), "apns_token: push provider apns is not configured (configured: fcm, webpush)") {
		t.Errorf("apns target with APNs not configured: %v", err)
	}
	_, err = s.Send(context.Background(), &notify.Message{ID: "n-9", Push: apns, Text: "hi"})
	if !notify.IsPermanent(err) || !strings.Contains(err.Error(), "apns is not configured") {
		t.Errorf("Send to an unconfigured provider: %v", err)
	}
	_, err = s.Send(context.Background(), &notify.Message{ID: "n-9", Push: []byte(`{"fcm_token":""}`), Text: "hi"})
	if !notify.IsPermanent(err) || !strings.Contains(err.Error(), "fcm_token: empty") {
		t.Errorf("Send to a malformed target: %v", err)
	}
	if _, err := s.Send(context.Background(), nil); !notify.IsPermanent(err) {
		t.Errorf("Send(nil) = %v", err)
	}
}

// Send honours its context: a push service that does not answer is a
// transient timeout.
func TestSendTimeout(t *testing.T) {
	pub, priv := vapidKeys(t)
	b := newBrowser(t)
	release := make(chan struct{})
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	s, err := push.New(push.Config{
		WebPush: &push.WebPushConfig{VAPIDPublicKey: pub, VAPIDPrivateKey: priv, Subject: vapidSubject,
			AllowPrivate: true, Transport: srv.Client().Transport.(*http.Transport)},
		Timeout: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	start := time.Now()
	_, err = s.Send(context.Background(), webPushMessage(b.target(srv.URL+"/push/ok")))
	if err == nil || notify.IsPermanent(err) || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("want a transient timeout, got %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Send took %v with a 200ms timeout", d)
	}
}
