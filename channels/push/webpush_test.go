package push_test

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/unifiedms/ums/channels/push"
	"github.com/unifiedms/ums/notify"
)

const vapidSubject = "mailto:ops@example.com"

var b64 = base64.RawURLEncoding

// browser is a user agent's push subscription: its ECDH key pair and
// authentication secret, which only it and the sender of a message share.
type browser struct {
	key  *ecdh.PrivateKey
	auth []byte
}

func newBrowser(t testing.TB) *browser {
	t.Helper()
	k, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	auth := make([]byte, 16)
	rand.Read(auth)
	return &browser{key: k, auth: auth}
}

// target is the to.push object of this browser subscribed at endpoint, as
// PushSubscription.toJSON() gives it.
func (b *browser) target(endpoint string) []byte {
	t, _ := json.Marshal(map[string]any{"web_push": map[string]any{
		"endpoint":       endpoint,
		"expirationTime": nil,
		"keys":           map[string]string{"p256dh": b64.EncodeToString(b.key.PublicKey().Bytes()), "auth": b64.EncodeToString(b.auth)},
	}})
	return t
}

// decrypt undoes RFC 8291 message encryption: the aes128gcm content coding
// of RFC 8188 with a key and nonce derived from the ECDH secret between
// the sender's one-time key (the header's key id) and the browser's key,
// and the browser's authentication secret.
func (b *browser) decrypt(body []byte) ([]byte, error) {
	if len(body) < 21 {
		return nil, errors.New("body shorter than the aes128gcm header")
	}
	salt := body[:16]
	rs := binary.BigEndian.Uint32(body[16:20])
	idlen := int(body[20])
	if len(body) < 21+idlen {
		return nil, errors.New("truncated key id")
	}
	asPublic := body[21 : 21+idlen]
	record := body[21+idlen:]
	if rs < 18 || len(record) > int(rs) {
		return nil, fmt.Errorf("record of %d bytes with record size %d (one record expected)", len(record), rs)
	}
	peer, err := ecdh.P256().NewPublicKey(asPublic)
	if err != nil {
		return nil, fmt.Errorf("key id is not a P-256 public key: %v", err)
	}
	secret, err := b.key.ECDH(peer)
	if err != nil {
		return nil, err
	}
	// RFC 8291 section 3.3: IKM from the ECDH secret, salted with auth.
	info := "WebPush: info\x00" + string(b.key.PublicKey().Bytes()) + string(asPublic)
	ikm, err := hkdf.Key(sha256.New, secret, b.auth, info, 32)
	if err != nil {
		return nil, err
	}
	// RFC 8188 section 2.2 and 2.3: content encryption key and nonce.
	cek, err := hkdf.Key(sha256.New, ikm, salt, "Content-Encoding: aes128gcm\x00", 16)
	if err != nil {
		return nil, err
	}
	nonce, err := hkdf.Key(sha256.New, ikm, salt, "Content-Encoding: nonce\x00", 12)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(cek)
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	plain, err := gcm.Open(nil, nonce, record, nil) // the first record's sequence number is 0
	if err != nil {
		return nil, fmt.Errorf("decrypting: %v", err)
	}
	// The last record ends with the delimiter 0x02 and zero padding.
	i := len(plain) - 1
	for i >= 0 && plain[i] == 0 {
		i--
	}
	if i < 0 || plain[i] != 2 {
		return nil, errors.New("no last-record delimiter")
	}
	return plain[:i], nil
}

// vapidKeys returns a new application server key pair, base64url.
func vapidKeys(t testing.TB) (public, private string) {
	t.Helper()
	k, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return b64.EncodeToString(k.PublicKey().Bytes()), b64.EncodeToString(k.Bytes())
}

// checkVAPID checks an Authorization header as a push service does (RFC
// 8292): scheme vapid, k is the application server key, t a JWT signed
// with it (ES256) for this push service's origin, not expired, valid for
// at most 24 hours, with a contact subject.
func checkVAPID(header, wantKey, origin string) error {
	rest, ok := strings.CutPrefix(header, "vapid ")
	if !ok {
		return fmt.Errorf("authorization %q is not vapid", header)
	}
	var jwt, k string
	for _, p := range strings.Split(rest, ",") {
		name, value, _ := strings.Cut(strings.TrimSpace(p), "=")
		switch name {
		case "t":
			jwt = value
		case "k":
			k = value
		}
	}
	if k != wantKey {
		return fmt.Errorf("k=%q, want the application server key %q", k, wantKey)
	}
	raw, err := b64.DecodeString(k)
	if err != nil {
		return err
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), raw)
	if err != nil {
		return err
	}
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return fmt.Errorf("t=%q is not a JWT", jwt)
	}
	sig, err := b64.DecodeString(parts[2])
	if err != nil || len(sig) != 64 {
		return fmt.Errorf("signature of %d bytes: %v", len(sig), err)
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
	if !ecdsa.Verify(pub, digest[:], r, s) {
		return errors.New("VAPID signature does not verify with k")
	}
	var h struct{ Alg string }
	if err := decodeSegment(parts[0], &h); err != nil || h.Alg != "ES256" {
		return fmt.Errorf("JWT header alg %q: %v", h.Alg, err)
	}
	var c struct {
		Aud, Sub string
		Exp      int64
	}
	if err := decodeSegment(parts[1], &c); err != nil {
		return err
	}
	now := time.Now().Unix()
	if c.Aud != origin || c.Sub != vapidSubject || c.Exp <= now || c.Exp > now+24*3600 {
		return fmt.Errorf("claims %+v, want aud %s, sub %s, exp within 24 h", c, origin, vapidSubject)
	}
	return nil
}

// pushService is a local push service: it checks VAPID, decrypts each
// message with the subscription's private key, and answers per path.
type pushService struct {
	srv      *httptest.Server
	vapidPub string
	browser  *browser
	hits     atomic.Int32
	mu       sync.Mutex
	got      []pushed
}

type pushed struct {
	path    string
	header  http.Header
	size    int
	payload map[string]any
}

func newPushService(t testing.TB, vapidPub string, b *browser) *pushService {
	p := &pushService{vapidPub: vapidPub, browser: b}
	p.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.hits.Add(1)
		body, _ := io.ReadAll(r.Body)
		if err := checkVAPID(r.Header.Get("Authorization"), p.vapidPub, p.srv.URL); err != nil {
			t.Errorf("push service: %v", err)
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		if ce := r.Header.Get("Content-Encoding"); ce != "aes128gcm" {
			t.Errorf("Content-Encoding %q", ce)
		}
		plain, err := p.browser.decrypt(body)
		if err != nil {
			t.Errorf("push service: %v", err)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var payload map[string]any
		if err := json.Unmarshal(plain, &payload); err != nil {
			t.Errorf("decrypted payload %q: %v", plain, err)
		}
		p.mu.Lock()
		p.got = append(p.got, pushed{r.URL.Path, r.Header.Clone(), len(body), payload})
		p.mu.Unlock()
		switch r.URL.Path {
		case "/push/ok":
			w.Header().Set("Location", p.srv.URL+"/m/msg-1")
			w.WriteHeader(http.StatusCreated)
		case "/push/202":
			w.WriteHeader(http.StatusAccepted)
		case "/push/429":
			w.Header().Set("Retry-After", "30")
			w.WriteHeader(http.StatusTooManyRequests)
		case "/push/moved":
			w.Header().Set("Location", "https://elsewhere.example/")
			w.WriteHeader(http.StatusMovedPermanently)
		default:
			var code int
			fmt.Sscanf(strings.TrimPrefix(r.URL.Path, "/push/"), "%d", &code)
			if code == 0 {
				code = http.StatusNotFound
			}
			w.WriteHeader(code)
			io.WriteString(w, "push service says "+http.StatusText(code))
		}
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *pushService) pushes() []pushed {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]pushed(nil), p.got...)
}

func webPushSender(t testing.TB, p *pushService, pub, priv string, change func(*push.WebPushConfig)) *push.Sender {
	t.Helper()
	cfg := push.WebPushConfig{
		VAPIDPublicKey:  pub,
		VAPIDPrivateKey: priv,
		Subject:         vapidSubject,
		AllowPrivate:    true,
		Transport:       p.srv.Client().Transport.(*http.Transport),
	}
	if change != nil {
		change(&cfg)
	}
	s, err := push.New(push.Config{WebPush: &cfg, Timeout: 5 * time.Second, Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func webPushMessage(target []byte) *notify.Message {
	return &notify.Message{
		ID:      "n-7",
		Channel: "push",
		Push:    target,
		Subject: "새 메시지",
		Text:    "You have a new message.",
		Data:    map[string]any{"url": "/inbox/7", "n": 2},
		Class:   notify.ClassCritical,
		Attempt: 1,
	}
}

func TestWebPushSend(t *testing.T) {
	pub, priv := vapidKeys(t)
	b := newBrowser(t)
	p := newPushService(t, pub, b)
	s := webPushSender(t, p, pub, priv, func(c *push.WebPushConfig) { c.TTL = time.Hour })

	res, err := s.Send(context.Background(), webPushMessage(b.target(p.srv.URL+"/push/ok")))
	if err != nil {
		t.Fatal(err)
	}
	if res.Provider != "webpush" || res.ProviderID != p.srv.URL+"/m/msg-1" || res.Answer != "201 Created" {
		t.Errorf("result %+v", res)
	}
	got := p.pushes()
	if len(got) != 1 {
		t.Fatalf("%d pushes", len(got))
	}
	g := got[0]
	want := `map[body:You have a new message. data:map[n:2 url:/inbox/7] id:n-7 title:새 메시지]`
	if fmt.Sprint(g.payload) != want {
		t.Errorf("decrypted payload %v, want %s", g.payload, want)
	}
	if v := g.header.Get("TTL"); v != "3600" {
		t.Errorf("TTL %q", v)
	}
	if v := g.header.Get("Urgency"); v != "high" {
		t.Errorf("Urgency %q for a critical notification", v)
	}
	if g.size > 4096 {
		t.Errorf("body of %d bytes, push services take at most 4096", g.size)
	}

	// A subscription given with standard, padded base64 keys (as some
	// libraries store them) works too, and the default TTL is four weeks.
	s2 := webPushSender(t, p, pub, priv, nil)
	var target map[string]map[string]any
	json.Unmarshal(b.target(p.srv.URL+"/push/202"), &target)
	target["web_push"]["keys"] = map[string]string{
		"p256dh": base64.StdEncoding.EncodeToString(b.key.PublicKey().Bytes()),
		"auth":   base64.StdEncoding.EncodeToString(b.auth),
	}
	raw, _ := json.Marshal(target)
	m := webPushMessage(raw)
	m.Class = notify.ClassAdvertising
	if _, err := s2.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	g = p.pushes()[1]
	if v := g.header.Get("TTL"); v != "2419200" {
		t.Errorf("default TTL %q", v)
	}
	if v := g.header.Get("Urgency"); v != "low" {
		t.Errorf("Urgency %q for advertising", v)
	}
}

func TestWebPushStatuses(t *testing.T) {
	cases := []struct {
		path         string
		code         int
		permanent    bool
		unregistered bool
		retryAfter   time.Duration
		say          string
	}{
		{path: "/push/404", code: 404, permanent: true, unregistered: true, say: "answered 404 Not Found: push service says Not Found"},
		{path: "/push/410", code: 410, permanent: true, unregistered: true, say: "410 Gone"},
		{path: "/push/400", code: 400, permanent: true, say: "400 Bad Request"},
		{path: "/push/403", code: 403, permanent: true, say: "403 Forbidden"},
		{path: "/push/413", code: 413, permanent: true, say: "413 Request Entity Too Large"},
		{path: "/push/moved", code: 301, permanent: true, say: "301 Moved Permanently"},
		{path: "/push/429", code: 429, retryAfter: 30 * time.Second, say: "429 Too Many Requests"},
		{path: "/push/500", code: 500, say: "500 Internal Server Error"},
		{path: "/push/503", code: 503, say: "503 Service Unavailable"},
	}
	pub, priv := vapidKeys(t)
	b := newBrowser(t)
	p := newPushService(t, pub, b)
	s := webPushSender(t, p, pub, priv, nil)
	for _, c := range cases {
		_, err := s.Send(context.Background(), webPushMessage(b.target(p.srv.URL+c.path)))
		if err == nil {
			t.Errorf("%s: no error", c.path)
			continue
		}
		ne := classified(t, err)
		if ne.Permanent != c.permanent || ne.Code != c.code || ne.RetryAfter != c.retryAfter {
			t.Errorf("%s: permanent=%v code=%d retryAfter=%v, want %v %d %v (%v)",
				c.path, ne.Permanent, ne.Code, ne.RetryAfter, c.permanent, c.code, c.retryAfter, err)
		}
		if errors.Is(err, push.ErrUnregistered) != c.unregistered {
			t.Errorf("%s: errors.Is(ErrUnregistered) = %v", c.path, !c.unregistered)
		}
		if !strings.Contains(err.Error(), c.say) {
			t.Errorf("%s: error %q does not say %q", c.path, err, c.say)
		}
	}
	if n := len(p.pushes()); n != len(cases) {
		t.Errorf("the push service decrypted %d of %d messages", n, len(cases))
	}
}

// A payload that does not fit one 4096-byte message fails at once.
func TestWebPushPayloadTooLarge(t *testing.T) {
	pub, priv := vapidKeys(t)
	b := newBrowser(t)
	p := newPushService(t, pub, b)
	s := webPushSender(t, p, pub, priv, nil)
	m := webPushMessage(b.target(p.srv.URL + "/push/ok"))
	m.Text = strings.Repeat("x", 4000)
	_, err := s.Send(context.Background(), m)
	if !notify.IsPermanent(err) || !strings.Contains(fmt.Sprint(err), "too large") {
		t.Fatalf("want a permanent too-large failure, got %v", err)
	}
	if n := p.hits.Load(); n != 0 {
		t.Fatalf("the push service got %d requests", n)
	}
}

// Endpoints come from users: without AllowPrivate, the sender does not
// connect to a loopback push service, even through a host name.
func TestWebPushRefusesPrivateEndpoints(t *testing.T) {
	pub, priv := vapidKeys(t)
	b := newBrowser(t)
	p := newPushService(t, pub, b)
	s := webPushSender(t, p, pub, priv, func(c *push.WebPushConfig) { c.AllowPrivate = false })
	port := p.srv.URL[strings.LastIndex(p.srv.URL, ":"):]
	for _, endpoint := range []string{p.srv.URL + "/push/ok", "https://localhost" + port + "/push/ok"} {
		_, err := s.Send(context.Background(), webPushMessage(b.target(endpoint)))
		if !notify.IsPermanent(err) || !errors.Is(err, push.ErrEndpointRefused) {
			t.Errorf("%s: want a permanent refusal, got %v", endpoint, err)
		}
	}
	if n := p.hits.Load(); n != 0 {
		t.Fatalf("the push service got %d requests", n)
	}
	for _, endpoint := range []string{p.srv.URL + "/push/ok", "https://LOCALHOST./x", "https://[::1]/x", "https://10.0.0.7/x",
		"https://169.254.169.254/x", "https://[::ffff:192.168.1.1]/x", "https://100.64.1.1/x"} {
		if err := s.ValidateTarget(b.target(endpoint)); !errors.Is(err, push.ErrEndpointRefused) {
			t.Errorf("ValidateTarget(%s) = %v, want a refusal", endpoint, err)
		}
	}
	for _, endpoint := range []string{"https://fcm.googleapis.com/fcm/send/x", "https://203.0.113.9/x", "https://[2001:db8::1]/x"} {
		if err := s.ValidateTarget(b.target(endpoint)); err != nil {
			t.Errorf("ValidateTarget(%s) = %v", endpoint, err)
		}
	}
	allowed := webPushSender(t, p, pub, priv, nil)
	if err := allowed.ValidateTarget(b.target(p.srv.URL + "/push/ok")); err != nil {
		t.Errorf("with AllowPrivate: %v", err)
	}
}

// An unreachable push service is a transient failure.
func TestWebPushConnectionRefused(t *testing.T) {
	pub, priv := vapidKeys(t)
	b := newBrowser(t)
	p := newPushService(t, pub, b)
	s := webPushSender(t, p, pub, priv, nil)
	endpoint := p.srv.URL + "/push/ok"
	p.srv.Close()
	_, err := s.Send(context.Background(), webPushMessage(b.target(endpoint)))
	if err == nil || notify.IsPermanent(err) {
		t.Fatalf("want a transient failure, got %v", err)
	}
}

func TestWebPushConfig(t *testing.T) {
	pub, priv := vapidKeys(t)
	otherPub, _ := vapidKeys(t)
	bad := []struct {
		cfg push.WebPushConfig
		say string
	}{
		{push.WebPushConfig{VAPIDPrivateKey: priv, Subject: vapidSubject}, "public key: required"},
		{push.WebPushConfig{VAPIDPublicKey: pub, Subject: vapidSubject}, "private key: required"},
		{push.WebPushConfig{VAPIDPublicKey: otherPub, VAPIDPrivateKey: priv, Subject: vapidSubject}, "does not match"},
		{push.WebPushConfig{VAPIDPublicKey: pub, VAPIDPrivateKey: "!!", Subject: vapidSubject}, "not base64url"},
		{push.WebPushConfig{VAPIDPublicKey: pub, VAPIDPrivateKey: priv}, "must be a mailto: or https: URL"},
		{push.WebPushConfig{VAPIDPublicKey: pub, VAPIDPrivateKey: priv, Subject: "ops@example.com"}, "must be a mailto: or https: URL"},
		{push.WebPushConfig{VAPIDPublicKey: pub, VAPIDPrivateKey: priv, Subject: vapidSubject, TTL: -time.Second}, "negative TTL"},
	}
	for _, b := range bad {
		_, err := push.New(push.Config{WebPush: &b.cfg})
		if err == nil || !strings.Contains(err.Error(), b.say) {
			t.Errorf("New = %v, want an error saying %q", err, b.say)
		}
	}
	for _, subject := range []string{vapidSubject, "https://example.com/contact"} {
		if _, err := push.New(push.Config{WebPush: &push.WebPushConfig{VAPIDPublicKey: pub, VAPIDPrivateKey: priv, Subject: subject}}); err != nil {
			t.Errorf("subject %s: %v", subject, err)
		}
	}
}
