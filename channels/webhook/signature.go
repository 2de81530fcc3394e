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
	var buf [3 + 20 + 4 + 2*sha256.Size]byte
	return string(s.appendSign(buf[:0], t, body))
}

var dot = []byte{'.'}

// appendSign appends Sign(secret, t, body) to dst.
func (s *signer) appendSign(dst []byte, t time.Time, body []byte) []byte {
	h := s.macs.Get().(hash.Hash)
	h.Reset()
	start := len(dst)
	dst = append(dst, "t="...)
	dst = strconv.AppendInt(dst, t.Unix(), 10)
	h.Write(dst[start+2:])
	h.Write(dot)
	h.Write(body)
	dst = append(dst, ",v1="...)
	// The sum goes into dst first: a local array would escape through
	// the interface call.
	n := len(dst)
	dst = h.Sum(dst)
	s.macs.Put(h)
	var sum [sha256.Size]byte
	copy(sum[:], dst[n:])
	return hex.AppendEncode(dst[:n], sum[:])
}
