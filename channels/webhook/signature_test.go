package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestSignFormat(t *testing.T) {
	secret := []byte("s3cret")
	at := time.Unix(1700000000, 999)
	body := []byte(`{"id":"n1"}`)
	got := Sign(secret, at, body)

	h := hmac.New(sha256.New, secret)
	h.Write([]byte("1700000000." + string(body)))
	want := "t=1700000000,v1=" + hex.EncodeToString(h.Sum(nil))
	if got != want {
		t.Fatalf("Sign = %q, want %q", got, want)
	}
	if !regexp.MustCompile(`^t=[0-9]+,v1=[0-9a-f]{64}$`).MatchString(got) {
		t.Fatalf("Sign = %q: not t=<seconds>,v1=<64 hex>", got)
	}
}

func TestVerify(t *testing.T) {
	secret := []byte("s3cret")
	at := time.Unix(1700000000, 0)
	body := []byte(`{"id":"n1"}`)
	header := Sign(secret, at, body)
	tol := 5 * time.Minute

	if err := Verify(secret, header, body, at, tol); err != nil {
		t.Fatalf("fresh signature refused: %v", err)
	}
	if err := Verify(secret, header, body, at.Add(tol), tol); err != nil {
		t.Fatalf("signature at the tolerance edge refused: %v", err)
	}
	if err := Verify(secret, header, body, at.Add(-time.Minute), tol); err != nil {
		t.Fatalf("signature slightly in the future refused: %v", err)
	}
	// A receiver may get a header listing a rotated-out key's signature too.
	rotated := header + ",v1=" + strings.Repeat("00", 32)
	if err := Verify(secret, rotated, body, at, tol); err != nil {
		t.Fatalf("header with an extra signature refused: %v", err)
	}
	if err := Verify(secret, header+",v0=x", body, at, tol); err != nil {
		t.Fatalf("unknown key not ignored: %v", err)
	}

	cases := []struct {
		name   string
		secret []byte
		header string
		body   []byte
		now    time.Time
		want   error
	}{
		{"tampered body", secret, header, []byte(`{"id":"n2"}`), at, ErrSignatureMismatch},
		{"wrong secret", []byte("other"), header, body, at, ErrSignatureMismatch},
		{"old timestamp", secret, header, body, at.Add(tol + time.Second), ErrSignatureTimestamp},
		{"far future timestamp", secret, header, body, at.Add(-tol - time.Second), ErrSignatureTimestamp},
		{"replayed with a new timestamp", secret, strings.Replace(header, "t=1700000000", "t=1700000100", 1), body, at, ErrSignatureMismatch},
		{"empty header", secret, "", body, at, ErrMalformedSignature},
		{"no timestamp", secret, header[strings.Index(header, "v1="):], body, at, ErrMalformedSignature},
		{"no signature", secret, "t=1700000000", body, at, ErrMalformedSignature},
		{"bad hex", secret, "t=1700000000,v1=zz", body, at, ErrMalformedSignature},
		{"short signature", secret, "t=1700000000,v1=abcd", body, at, ErrMalformedSignature},
		{"non-numeric timestamp", secret, strings.Replace(header, "t=1700000000", "t=now", 1), body, at, ErrMalformedSignature},
		{"two timestamps", secret, "t=1," + header, body, at, ErrMalformedSignature},
	}
	for _, c := range cases {
		err := Verify(c.secret, c.header, c.body, c.now, tol)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: Verify = %v, want %v", c.name, err, c.want)
		}
	}
}

func TestVerifyDefaultTolerance(t *testing.T) {
	secret := []byte("k")
	at := time.Unix(1700000000, 0)
	h := Sign(secret, at, nil)
	if err := Verify(secret, h, nil, at.Add(DefaultTolerance), 0); err != nil {
		t.Fatalf("within the default tolerance: %v", err)
	}
	if err := Verify(secret, h, nil, at.Add(DefaultTolerance+time.Second), 0); !errors.Is(err, ErrSignatureTimestamp) {
		t.Fatalf("beyond the default tolerance: %v", err)
	}
}

// The sender's pooled signer writes what Sign writes, again and again.
func TestSignerMatchesSign(t *testing.T) {
	secret := []byte("s3cret")
	sg := newSigner(secret)
	for i, body := range [][]byte{nil, []byte(`{}`), []byte(`{"id":"n1","text":"hello"}`), []byte(`{}`)} {
		at := time.Unix(1700000000+int64(i), 0)
		if got, want := sg.sign(at, body), Sign(secret, at, body); got != want {
			t.Fatalf("sign #%d = %q, Sign = %q", i, got, want)
		}
	}
}
