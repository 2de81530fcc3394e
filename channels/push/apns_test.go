package push_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/unifiedms/ums/channels/push"
	"github.com/unifiedms/ums/notify"
)

const (
	apnsKeyID  = "ABC123DEFG"
	apnsTeamID = "DEF123GHIJ"
	apnsTopic  = "com.example.app"
)

// apnsKey returns a new .p8 signing key (PKCS #8 PEM, P-256).
func apnsKey(t testing.TB) (*ecdsa.PrivateKey, []byte) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return k, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

type apnsAnswer struct {
	status int
	reason string
}

type apnsRequest struct {
	proto   int
	path    string
	header  http.Header
	payload map[string]any
}

// apnsServer is a local APNs: HTTP/2 over TLS, checking the provider
// token and the headers as Apple documents them.
type apnsServer struct {
	srv     *httptest.Server
	mu      sync.Mutex
	answers map[string]apnsAnswer // by device token
	got     []apnsRequest
}

func newAPNsServer(t testing.TB, key *ecdsa.PublicKey) *apnsServer {
	a := &apnsServer{answers: map[string]apnsAnswer{}}
	a.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var payload map[string]any
		if err := json.Unmarshal(body, &payload); err != nil {
			t.Errorf("APNs: payload %q: %v", body, err)
		}
		a.mu.Lock()
		a.got = append(a.got, apnsRequest{r.ProtoMajor, r.URL.Path, r.Header.Clone(), payload})
		a.mu.Unlock()
		w.Header().Set("apns-id", "EC1BF194-B3B2-424A-89A9-5A918A6E6B5F")
		if id := r.Header.Get("apns-id"); id != "" {
			w.Header().Set("apns-id", id)
		}
		fail := func(status int, reason string) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			if status == http.StatusGone {
				fmt.Fprintf(w, `{"reason":%q,"timestamp":1700000000000}`, reason)
			} else {
				fmt.Fprintf(w, `{"reason":%q}`, reason)
			}
		}
		if r.ProtoMajor != 2 {
			t.Errorf("APNs request over HTTP/%d", r.ProtoMajor)
		}
		if err := checkProviderToken(r.Header.Get("authorization"), key); err != nil {
			t.Errorf("APNs: %v", err)
			fail(http.StatusForbidden, "InvalidProviderToken")
			return
		}
		if r.Header.Get("apns-topic") != apnsTopic {
			fail(http.StatusBadRequest, "BadTopic")
			return
		}
		token, ok := strings.CutPrefix(r.URL.Path, "/3/device/")
		if r.Method != http.MethodPost || !ok {
			fail(http.StatusNotFound, "BadPath")
			return
		}
		a.mu.Lock()
		ans, ok := a.answers[token]
		a.mu.Unlock()
		if ok {
			fail(ans.status, ans.reason)
		}
	}))
	a.srv.EnableHTTP2 = true
	a.srv.StartTLS()
	t.Cleanup(a.srv.Close)
	return a
}

func (a *apnsServer) requests() []apnsRequest {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]apnsRequest(nil), a.got...)
}

// checkProviderToken checks "bearer <JWT>": ES256 with the team's key,
// kid the key id, iss the team id, iat within the last hour.
func checkProviderToken(header string, key *ecdsa.PublicKey) error {
	jwt, ok := strings.CutPrefix(header, "bearer ")
	if !ok {
		return fmt.Errorf("authorization %q is not a bearer token", header)
	}
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return fmt.Errorf("%q is not a JWT", jwt)
	}
	sig, err := b64.DecodeString(parts[2])
	if err != nil || len(sig) != 64 {
		return fmt.Errorf("signature of %d bytes: %v", len(sig), err)
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if !ecdsa.Verify(key, digest[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
		return errors.New("provider token signature does not verify")
	}
	var h struct{ Alg, Kid string }
	if err := decodeSegment(parts[0], &h); err != nil || h.Alg != "ES256" || h.Kid != apnsKeyID {
		return fmt.Errorf("JWT header %+v: %v", h, err)
	}
	var c struct {
		Iss string
		Iat int64
	}
	if err := decodeSegment(parts[1], &c); err != nil {
		return err
	}
	if now := time.Now().Unix(); c.Iss != apnsTeamID || c.Iat > now+60 || c.Iat < now-3600 {
		return fmt.Errorf("claims %+v", c)
	}
	return nil
}

func apnsSender(t testing.TB, a *apnsServer, pemKey []byte, change func(*push.APNsConfig)) *push.Sender {
	t.Helper()
	cfg := push.APNsConfig{
		Key:       pemKey,
		KeyID:     apnsKeyID,
		TeamID:    apnsTeamID,
		Topic:     apnsTopic,
		Host:      a.srv.URL,
		Transport: a.srv.Client().Transport.(*http.Transport),
	}
	if change != nil {
		change(&cfg)
	}
	s, err := push.New(push.Config{APNs: &cfg, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func apnsMessage(token string) *notify.Message {
	return &notify.Message{
		ID:      "0c8b3f3e-5d3a-4b8e-9a41-7e2f0f4b6a11",
		Channel: "push",
		Push:    []byte(`{"apns_token":"` + token + `"}`),
		Subject: "Order shipped",
		Text:    "Your parcel is on its way.",
		Data:    map[string]any{"order": "A-17", "aps": "ignored"},
		Attempt: 1,
	}
}

func TestAPNsSend(t *testing.T) {
	k, pemKey := apnsKey(t)
	a := newAPNsServer(t, &k.PublicKey)
	path := filepath.Join(t.TempDir(), "AuthKey_"+apnsKeyID+".p8")
	if err := os.WriteFile(path, pemKey, 0o600); err != nil {
		t.Fatal(err)
	}
	s := apnsSender(t, a, nil, func(c *push.APNsConfig) { c.KeyFile = path })

	m := apnsMessage(apnsHex)
	res, err := s.Send(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	if res.Provider != "apns" || res.ProviderID != m.ID {
		t.Errorf("result %+v, want the apns-id %s", res, m.ID)
	}
	m2 := apnsMessage(apnsHex)
	m2.ID = "n-2" // not a UUID: APNs makes the id
	m2.Class = notify.ClassAdvertising
	res, err = s.Send(context.Background(), m2)
	if err != nil {
		t.Fatal(err)
	}
	if res.ProviderID != "EC1BF194-B3B2-424A-89A9-5A918A6E6B5F" {
		t.Errorf("ProviderID %q, want the server's apns-id", res.ProviderID)
	}

	got := a.requests()
	if len(got) != 2 {
		t.Fatalf("%d requests", len(got))
	}
	r := got[0]
	if r.path != "/3/device/"+apnsHex {
		t.Errorf("path %q", r.path)
	}
	for h, want := range map[string]string{
		"apns-topic":     apnsTopic,
		"apns-push-type": "alert",
		"apns-priority":  "10",
		"apns-id":        m.ID,
	} {
		if v := r.header.Get(h); v != want {
			t.Errorf("%s: %q, want %q", h, v, want)
		}
	}
	want := `map[aps:map[alert:map[body:Your parcel is on its way. title:Order shipped]] order:A-17]`
	if fmt.Sprint(r.payload) != want {
		t.Errorf("payload %v, want %s", r.payload, want)
	}
	if v := got[1].header.Get("apns-priority"); v != "5" {
		t.Errorf("apns-priority %q for advertising", v)
	}
	if got[1].header.Get("apns-id") != "" {
		t.Errorf("apns-id %q sent for a non-UUID id", got[1].header.Get("apns-id"))
	}
	// The provider token is reused, not signed per request.
	if got[0].header.Get("authorization") != got[1].header.Get("authorization") {
		t.Error("a new provider token for each request")
	}
}

func TestAPNsErrors(t *testing.T) {
	tok := func(c byte) string { return strings.Repeat(string(c), 64) }
	cases := []struct {
		token        string
		answer       apnsAnswer
		permanent    bool
		unregistered bool
		say          string
	}{
		{tok('1'), apnsAnswer{410, "Unregistered"}, true, true, "apns: Unregistered (410 Gone)"},
		{tok('2'), apnsAnswer{400, "BadDeviceToken"}, true, false, "BadDeviceToken (400 Bad Request)"},
		{tok('3'), apnsAnswer{413, "PayloadTooLarge"}, true, false, "PayloadTooLarge"},
		{tok('4'), apnsAnswer{403, "InvalidProviderToken"}, true, false, "InvalidProviderToken"},
		{tok('5'), apnsAnswer{403, "ExpiredProviderToken"}, false, false, "ExpiredProviderToken"},
		{tok('6'), apnsAnswer{429, "TooManyRequests"}, false, false, "TooManyRequests (429 Too Many Requests)"},
		{tok('7'), apnsAnswer{500, "InternalServerError"}, false, false, "InternalServerError"},
		{tok('8'), apnsAnswer{503, "ServiceUnavailable"}, false, false, "ServiceUnavailable (503"},
	}
	k, pemKey := apnsKey(t)
	a := newAPNsServer(t, &k.PublicKey)
	for _, c := range cases {
		a.answers[c.token] = c.answer
	}
	s := apnsSender(t, a, pemKey, nil)
	for _, c := range cases {
		_, err := s.Send(context.Background(), apnsMessage(c.token))
		if err == nil {
			t.Errorf("%s: no error", c.answer.reason)
			continue
		}
		ne := classified(t, err)
		if ne.Permanent != c.permanent || ne.Code != c.answer.status {
			t.Errorf("%s: permanent=%v code=%d, want %v %d (%v)", c.answer.reason, ne.Permanent, ne.Code, c.permanent, c.answer.status, err)
		}
		if errors.Is(err, push.ErrUnregistered) != c.unregistered {
			t.Errorf("%s: errors.Is(ErrUnregistered) = %v", c.answer.reason, !c.unregistered)
		}
		if !strings.Contains(err.Error(), c.say) {
			t.Errorf("%s: error %q does not say %q", c.answer.reason, err, c.say)
		}
	}

	// A sender whose topic is not the app's gets BadTopic, permanent.
	s2 := apnsSender(t, a, pemKey, func(c *push.APNsConfig) { c.Topic = "com.example.other" })
	_, err := s2.Send(context.Background(), apnsMessage(apnsHex))
	if !notify.IsPermanent(err) || !strings.Contains(fmt.Sprint(err), "BadTopic") {
		t.Errorf("wrong topic: %v", err)
	}
}

func TestAPNsConfig(t *testing.T) {
	_, pemKey := apnsKey(t)
	rsaDER, _ := x509.MarshalPKCS8PrivateKey(rsaKey())
	rsaPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: rsaDER})
	good := push.APNsConfig{Key: pemKey, KeyID: apnsKeyID, TeamID: apnsTeamID, Topic: apnsTopic}
	bad := []struct {
		change func(*push.APNsConfig)
		say    string
	}{
		{func(c *push.APNsConfig) { c.Key = nil }, "a .p8 signing key is required"},
		{func(c *push.APNsConfig) { c.KeyFile = "/x.p8" }, "not both"},
		{func(c *push.APNsConfig) { c.Key, c.KeyFile = nil, filepath.Join(t.TempDir(), "missing.p8") }, "no such file"},
		{func(c *push.APNsConfig) { c.Key = []byte("not pem") }, "valid .p8 PEM"},
		{func(c *push.APNsConfig) { c.Key = rsaPEM }, "ecdsa"},
		{func(c *push.APNsConfig) { c.KeyID = "" }, "key id and team id are required"},
		{func(c *push.APNsConfig) { c.TeamID = "" }, "key id and team id are required"},
		{func(c *push.APNsConfig) { c.Topic = "" }, "topic"},
		{func(c *push.APNsConfig) { c.Host = "http://127.0.0.1:1" }, "must be https://host[:port]"},
		{func(c *push.APNsConfig) { c.Host = "https://h/3/device" }, "must be https://host[:port]"},
	}
	for _, b := range bad {
		cfg := good
		b.change(&cfg)
		_, err := push.New(push.Config{APNs: &cfg})
		if err == nil || !strings.Contains(err.Error(), b.say) {
			t.Errorf("New = %v, want an error saying %q", err, b.say)
		}
	}
	for _, production := range []bool{false, true} {
		cfg := good
		cfg.Production = production
		if _, err := push.New(push.Config{APNs: &cfg}); err != nil {
			t.Errorf("production=%v: %v", production, err)
		}
	}
}

// An unreachable APNs is a transient failure.
func TestAPNsConnectionRefused(t *testing.T) {
	k, pemKey := apnsKey(t)
	a := newAPNsServer(t, &k.PublicKey)
	s := apnsSender(t, a, pemKey, nil)
	a.srv.Close()
	_, err := s.Send(context.Background(), apnsMessage(apnsHex))
	if err == nil || notify.IsPermanent(err) || !strings.HasPrefix(err.Error(), "transient failure: apns: ") {
		t.Fatalf("want a transient apns failure, got %v", err)
	}
}
