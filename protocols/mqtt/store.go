package mqtt

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/unifiedms/ums/core"
)

// Store keeps the adapter's durable state: retained messages and the
// subscriptions of persistent sessions. Put and Delete must be durable when
// they return; All is called once, at start. Keys are the adapter's own
// (printable, without NUL); an implementation may prefix them to share a
// keyspace. A Store must be safe for concurrent use.
type Store interface {
	Put(key string, val []byte) error
	Delete(key string) error
	All() map[string][]byte
}

// MemoryStore is a Store that keeps everything in memory: nothing survives
// a restart. The zero value is ready to use.
type MemoryStore struct {
	mu sync.Mutex
	m  map[string][]byte
}

// Put stores a copy of val.
func (s *MemoryStore) Put(key string, val []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[string][]byte)
	}
	s.m[key] = append([]byte(nil), val...)
	return nil
}

// Delete removes key.
func (s *MemoryStore) Delete(key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, key)
	return nil
}

// All returns a copy of the contents.
func (s *MemoryStore) All() map[string][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string][]byte, len(s.m))
	for k, v := range s.m {
		out[k] = v
	}
	return out
}

// Key layout: kind, vhost (base64url, as vhost names may hold any
// character) and name (a topic or client id), separated by ':'. Keys hold
// no NUL, so a Store shared with the core's definitions (whose keys are
// NUL-separated fields) can prefix them without ambiguity.
const (
	kindRetained = "r"
	kindSession  = "s"
	kindWill     = "w" // a delayed will that outlasted a shutdown
)

func storeKey(kind, vhost, name string) string {
	return kind + ":" + base64.RawURLEncoding.EncodeToString([]byte(vhost)) + ":" + name
}

func parseStoreKey(key string) (kind, vhost, name string, ok bool) {
	f := strings.SplitN(key, ":", 3)
	if len(f) != 3 {
		return "", "", "", false
	}
	v, err := base64.RawURLEncoding.DecodeString(f[1])
	if err != nil {
		return "", "", "", false
	}
	return f[0], string(v), f[2], true
}

// Record versions: the first byte of every stored value.
const (
	sessionRecordV1  = 1
	sessionRecordV2  = 2 // V1 with the session expiry interval after the version
	willRecordV1     = 1
	retainedRecordV1 = 1
)

var errBadRecord = errors.New("mqtt: unreadable stored record")

type encoder struct{ b []byte }

func (e *encoder) byte(c byte)      { e.b = append(e.b, c) }
func (e *encoder) uvarint(n uint64) { e.b = binary.AppendUvarint(e.b, n) }
func (e *encoder) varint(n int64)   { e.b = binary.AppendVarint(e.b, n) }
func (e *encoder) str(s string)     { e.uvarint(uint64(len(s))); e.b = append(e.b, s...) }
func (e *encoder) bytes(p []byte)   { e.uvarint(uint64(len(p))); e.b = append(e.b, p...) }
func (e *encoder) bool(v bool)      { e.byte(boolByte(v)) }

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}

// decoder reads what encoder wrote; the first malformed field sets err and
// every later read returns zero values.
type decoder struct {
	b   []byte
	err error
}

func newDecoder(b []byte) *decoder { return &decoder{b: b} }

func (d *decoder) fail()         { d.err = errBadRecord }
func (d *decoder) done() bool    { return d.err == nil && len(d.b) == 0 }
func (d *decoder) bool() bool    { return d.byte() != 0 }
func (d *decoder) str() string   { return string(d.bytes()) }
func (d *decoder) varint() int64 { n, k := binary.Varint(d.b); d.take(k); return n }

func (d *decoder) uvarint() uint64 { n, k := binary.Uvarint(d.b); d.take(k); return n }

func (d *decoder) take(k int) []byte {
	if d.err != nil {
		return nil
	}
	if k <= 0 || k > len(d.b) {
		d.fail()
		return nil
	}
	p := d.b[:k]
	d.b = d.b[k:]
	return p
}

func (d *decoder) byte() byte {
	p := d.take(1)
	if p == nil {
		return 0
	}
	return p[0]
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n == 0 {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.fail()
		return nil
	}
	return append([]byte(nil), d.take(int(n))...)
}

// retainedMsg is a retained message with the MQTT properties it was
// published with. It is immutable once stored.
type retainedMsg struct {
	topic   string
	qos     byte
	payload []byte
	props   packets.Properties // publish properties (no topic alias, no subscription ids)
	created time.Time
	expires time.Time // zero: never
}

func (m *retainedMsg) expired(now time.Time) bool {
	return !m.expires.IsZero() && !now.Before(m.expires)
}

func (m *retainedMsg) encode() []byte {
	e := encoder{b: make([]byte, 0, 64+len(m.payload))}
	e.byte(retainedRecordV1)
	e.byte(m.qos)
	e.varint(m.created.UnixMilli())
	var exp int64
	if !m.expires.IsZero() {
		exp = m.expires.UnixMilli()
	}
	e.varint(exp)
	p := &m.props
	e.str(p.ContentType)
	e.str(p.ResponseTopic)
	e.bytes(p.CorrelationData)
	e.bool(p.PayloadFormatFlag)
	e.byte(p.PayloadFormat)
	e.uvarint(uint64(len(p.User)))
	for _, u := range p.User {
		e.str(u.Key)
		e.str(u.Val)
	}
	e.bytes(m.payload)
	return e.b
}

func decodeRetained(topic string, b []byte) (*retainedMsg, error) {
	d := newDecoder(b)
	if d.byte() != retainedRecordV1 {
		return nil, errBadRecord
	}
	m := &retainedMsg{topic: topic}
	m.qos = d.byte()
	m.created = time.UnixMilli(d.varint())
	if exp := d.varint(); exp != 0 {
		m.expires = time.UnixMilli(exp)
	}
	p := &m.props
	p.ContentType = d.str()
	p.ResponseTopic = d.str()
	p.CorrelationData = d.bytes()
	p.PayloadFormatFlag = d.bool()
	p.PayloadFormat = d.byte()
	n := d.uvarint()
	if d.err != nil || n > uint64(len(b)) {
		return nil, errBadRecord
	}
	for i := uint64(0); i < n; i++ {
		p.User = append(p.User, packets.UserProperty{Key: d.str(), Val: d.str()})
	}
	m.payload = d.bytes()
	if !d.done() || m.qos > 2 {
		return nil, errBadRecord
	}
	return m, nil
}

// loadStore reads retained messages and persistent sessions, forgetting
// sessions whose queue no longer exists (expired or deleted while the
// server was down).
func (s *Server) loadStore() {
	var retained, sessions, dropped, wills int
	for key, val := range s.store.All() {
		kind, vhost, name, ok := parseStoreKey(key)
		if !ok {
			continue
		}
		switch kind {
		case kindRetained:
			m, err := decodeRetained(name, val)
			if err != nil {
				s.log.Error("skipping unreadable retained message", "vhost", vhost, "topic", name)
				continue
			}
			s.retained.load(vhost, m)
			retained++
		case kindSession:
			r, err := decodeSessionRecord(val)
			v, vok := s.Broker.Vhost(vhost)
			var qerr error = core.ErrNotFound
			if vok {
				_, qerr = v.Queue(nil, queueName(name, 1))
			}
			if err != nil || qerr != nil {
				dropped++
				if derr := s.store.Delete(key); derr != nil {
					s.log.Error("deleting session record failed", "key", key, "err", derr)
				}
				continue
			}
			s.records[key] = r
			sessKey := name
			if vhost != s.DefaultVhost {
				sessKey = vhost + "\x00" + name
			}
			s.mu.Lock()
			s.scheduleExpiryLocked(sessKey, vhost, name, r.expiry)
			s.mu.Unlock()
			sessions++
		case kindWill:
			v, ok := s.Broker.Vhost(vhost)
			var err error = core.ErrNotFound
			if ok {
				sessKey := name
				if vhost != s.DefaultVhost {
					sessKey = vhost + "\x00" + name
				}
				err = s.loadWill(sessKey, v, name, val)
			}
			if err != nil {
				s.log.Error("skipping unreadable delayed will", "vhost", vhost, "client", name, "err", err)
				if derr := s.store.Delete(key); derr != nil {
					s.log.Error("deleting will record failed", "key", key, "err", derr)
				}
				continue
			}
			wills++
		}
	}
	if retained+sessions+dropped+wills > 0 {
		s.log.Info("MQTT state loaded", "retained", retained, "sessions", sessions, "expired_sessions", dropped, "delayed_wills", wills)
	}
}
