package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"hash"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultTolerance is the clock difference Verify accepts when it is given
// no positive tolerance.
const DefaultTolerance = 5 * time.Minute

// Errors Verify returns (wrapped, test with errors.Is).
var (
	ErrMalformedSignature = errors.New("malformed signature header")
	ErrSignatureTimestamp = errors.New("signature timestamp outside tolerance")
	ErrSignatureMismatch  = errors.New("signature does not match")
)

// Sign returns the X-UMS-Signature header value for body sent at t:
//
//	t=<unix seconds>,v1=<hex HMAC-SHA256 of "<unix seconds>.<body>">
func Sign(secret []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

func mac(secret []byte, ts string, body []byte) []byte {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte(ts))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

// Verify checks an X-UMS-Signature header against body: the timestamp must
// be within tolerance of now (DefaultTolerance when tolerance <= 0), and
// one of its v1 signatures must be the HMAC-SHA256 of "<t>.<body>" under
// secret (compared in constant time). Unknown keys in the header are
// ignored, so a sender may add schemes later.
func Verify(secret []byte, header string, body []byte, now time.Time, tolerance time.Duration) error {
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	var ts string
	var sigs [][]byte
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return ErrMalformedSignature
		}
		switch k {
		case "t":
			if ts != "" {
				return errors.Join(ErrMalformedSignature, errors.New("more than one timestamp"))
			}
			ts = v
		case "v1":
			sig, err := hex.DecodeString(v)
			if err != nil || len(sig) != sha256.Size {
				return errors.Join(ErrMalformedSignature, errors.New("v1 is not a hex SHA-256 HMAC"))
			}
			sigs = append(sigs, sig)
		}
	}
	if ts == "" {
		return errors.Join(ErrMalformedSignature, errors.New("no timestamp"))
	}
	if len(sigs) == 0 {
		return errors.Join(ErrMalformedSignature, errors.New("no v1 signature"))
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return errors.Join(ErrMalformedSignature, errors.New("timestamp is not an integer"))
	}
	// Compare in seconds so that no duration arithmetic can overflow.
	diff := now.Unix() - sec
	if diff < 0 {
		diff = -diff
	}
	if diff < 0 || diff > int64(tolerance/time.Second) {
		return ErrSignatureTimestamp
	}
	want := mac(secret, ts, body)
	ok := false
	for _, sig := range sigs {
		if hmac.Equal(sig, want) {
			ok = true
		}
	}
	if !ok {
		return ErrSignatureMismatch
	}
	return nil
}

// signer is Sign for one secret, reusing its HMAC states.
type signer struct {
	macs sync.Pool // of hash.Hash keyed with the secret
}

func newSigner(secret []byte) *signer {
	return &signer{macs: sync.Pool{New: func() any { return hmac.New(sha256.New, secret) }}}
}

// sign is Sign(secret, t, body).
func (s *signer) sign(t time.Time, body []byte) string {
	h := s.macs.Get().(hash.Hash)
	h.Reset()
	var buf [3 + 20 + 4 + 2*sha256.Size]byte
	out := append(buf[:0], "t="...)
	out = strconv.AppendInt(out, t.Unix(), 10)
	h.Write(out[2:])
	h.Write([]byte{'.'})
	h.Write(body)
	out = append(out, ",v1="...)
	var sum [sha256.Size]byte
	out = hex.AppendEncode(out, h.Sum(sum[:0]))
	s.macs.Put(h)
	return string(out)
}
