package store

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
)

// Meta file names and record types. Part of the on-disk format.
const (
	metaFile = "meta.log"
	metaTemp = "meta.log.tmp"

	metaPut    = 1 // type(1) keyLen(4) key value
	metaDelete = 2 // type(1) keyLen(4) key

	metaFixed = 1 + 4
)

// Limits of Meta keys and values.
const (
	// MaxMetaKey is the longest key Put accepts.
	MaxMetaKey = 64 << 10
	// MaxMetaValue is the largest value Put accepts.
	MaxMetaValue = 16 << 20

	// metaRewriteMin: dead bytes below this never trigger a rewrite, so a
	// tiny file is not rewritten (three fsyncs) on every delete.
	metaRewriteMin = 4 << 10
)

// Meta is a small durable key/value map for definitions (exchanges, queues,
// bindings, users). Every Put and Delete is durable when it returns.
//
// It is an append-only file of put and delete records, each with a
// CRC-32C, read fully at open. When its dead bytes exceed its live bytes
// (and a small floor), it is rewritten into a fresh file: write a temporary
// file, fsync it, rename it over the old one, fsync the directory.
//
// All methods are safe for concurrent use; writes are serialized.
type Meta struct {
	fs     FS
	dir    string
	logger *slog.Logger

	mu     sync.Mutex // guards everything below; held across I/O
	f      File       // the current file, positioned at its end
	data   map[string][]byte
	size   int64 // file size
	live   int64 // bytes of the put records of current values
	err    error // set after a failed write or fsync: the map is read-only
	closed bool
	report MetaReport
	enc    []byte
}

// MetaReport says what OpenMeta found.
type MetaReport struct {
	Keys           int   // keys present
	Records        int   // records read
	TruncatedBytes int64 // bytes cut from a torn or corrupt tail
}

// MetaOptions configures [OpenMetaWith].
type MetaOptions struct {
	// Logger receives repairs and errors; nil means slog.Default().
	Logger *slog.Logger
}

// OpenMeta opens (creating if needed) the map stored in dir, logging to
// slog.Default(). A torn or corrupt tail is cut off and logged (see
// [Meta.Report]); an unreadable header is an error, so that definitions
// are never silently discarded.
func OpenMeta(fsys FS, dir string) (*Meta, error) {
	return OpenMetaWith(fsys, dir, MetaOptions{})
}

// OpenMetaWith is [OpenMeta] with options.
func OpenMetaWith(fsys FS, dir string, o MetaOptions) (*Meta, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	m := &Meta{fs: fsys, dir: dir, logger: o.Logger, data: make(map[string][]byte)}
	if err := fsys.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	// A temporary file left behind is a rewrite that did not finish; the
	// main file is still complete.
	if err := fsys.Remove(filepath.Join(dir, metaTemp)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("store: %w", err)
	}
	path := filepath.Join(dir, metaFile)
	f, err := fsys.OpenFile(path, os.O_RDWR|os.O_APPEND, 0)
	if errors.Is(err, fs.ErrNotExist) {
		if err := m.rewrite(); err != nil {
			return nil, err
		}
		return m, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: open meta: %w", err)
	}
	if err := m.load(f, path); err != nil {
		f.Close()
		return nil, err
	}
	m.f = f
	m.report.Keys = len(m.data)
	return m, nil
}

// load reads the file into the map, cutting off a bad tail.
func (m *Meta) load(f File, path string) error {
	size, err := f.Size()
	if err != nil {
		return fmt.Errorf("store: meta: %w", err)
	}
	var h [headerSize]byte
	n, err := f.ReadAt(h[:], 0)
	if err != nil && err != io.EOF {
		return fmt.Errorf("store: read meta: %w", err)
	}
	if _, _, err := parseHeader(h[:n], metaMagic); err != nil {
		return fmt.Errorf("store: meta file %s: %w", path, err)
	}
	var sc scanner
	sc.reset(f, size, headerSize)
	for {
		body, err := sc.frame()
		if err == io.EOF {
			break
		}
		if err == nil {
			if reason := m.apply(body); reason != "" {
				err = &formatError{sc.off, reason}
			}
		}
		if err != nil {
			var ferr *formatError
			if !errors.As(err, &ferr) {
				return fmt.Errorf("store: read meta: %w", err)
			}
			// Only the tail of this single file can be torn. A bad record
			// elsewhere cannot be skipped reliably either, so the file ends
			// at the last good record in both cases.
			lost := size - sc.off
			m.logger.Warn("definition store: cutting off a bad tail", "file", path,
				"offset", sc.off, "bytes", lost, "reason", ferr.reason)
			if err := f.Truncate(sc.off); err != nil {
				return fmt.Errorf("store: truncate meta: %w", err)
			}
			if err := f.Sync(); err != nil {
				return fmt.Errorf("store: fsync meta: %w", err)
			}
			m.report.TruncatedBytes = lost
			size = sc.off
			break
		}
		m.report.Records++
		sc.off += int64(frameSize + len(body))
	}
	m.size = size
	return nil
}

// apply applies one checked record body, returning a reason if it does
// not decode.
func (m *Meta) apply(body []byte) string {
	if len(body) < metaFixed {
		return "meta record too short"
	}
	kl := int64(le.Uint32(body[1:5]))
	if kl > MaxMetaKey || kl > int64(len(body)-metaFixed) {
		return fmt.Sprintf("bad key length %d", kl)
	}
	key := string(body[metaFixed : metaFixed+kl])
	switch body[0] {
	case metaPut:
		val := body[metaFixed+kl:]
		if len(val) > MaxMetaValue {
			return fmt.Sprintf("value of %d bytes", len(val))
		}
		if old, ok := m.data[key]; ok {
			m.live -= metaPutSize(key, old)
		}
		m.data[key] = append([]byte{}, val...)
		m.live += int64(frameSize + len(body))
	case metaDelete:
		if int(kl) != len(body)-metaFixed {
			return "delete record with a value"
		}
		if old, ok := m.data[key]; ok {
			m.live -= metaPutSize(key, old)
			delete(m.data, key)
		}
	default:
		return fmt.Sprintf("unknown meta record type %d", body[0])
	}
	return ""
}

// metaPutSize is the encoded size of a put record.
func metaPutSize(key string, val []byte) int64 {
	return int64(frameSize + metaFixed + len(key) + len(val))
}

// appendMeta appends an encoded record (with its checksum) to buf.
func appendMeta(buf []byte, typ byte, key string, val []byte) []byte {
	start := len(buf)
	buf = le.AppendUint32(buf, uint32(metaFixed+len(key)+len(val)))
	buf = le.AppendUint32(buf, 0)
	buf = append(buf, typ)
	buf = le.AppendUint32(buf, uint32(len(key)))
	buf = append(buf, key...)
	buf = append(buf, val...)
	setChecksum(buf[start:])
	return buf
}

// Report returns what OpenMeta found.
func (m *Meta) Report() MetaReport {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.report
}

// All returns a copy of the map.
func (m *Meta) All() map[string][]byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string][]byte, len(m.data))
	for k, v := range m.data {
		out[k] = append([]byte{}, v...)
	}
	return out
}

// Put sets key to a copy of val and makes it durable before it returns.
func (m *Meta) Put(key string, val []byte) error {
	if len(key) > MaxMetaKey || len(val) > MaxMetaValue {
		return fmt.Errorf("%w: meta key of %d bytes, value of %d bytes", ErrInvalid, len(key), len(val))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.enc = appendMeta(m.enc[:0], metaPut, key, val)
	if err := m.write(m.enc); err != nil {
		return err
	}
	if old, ok := m.data[key]; ok {
		m.live -= metaPutSize(key, old)
	}
	m.data[key] = append([]byte{}, val...)
	m.live += int64(len(m.enc))
	m.maybeRewrite()
	return nil
}

// Delete removes key and makes the removal durable before it returns.
// Deleting a missing key does nothing.
func (m *Meta) Delete(key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	old, ok := m.data[key]
	if !ok {
		return m.usable()
	}
	m.enc = appendMeta(m.enc[:0], metaDelete, key, nil)
	if err := m.write(m.enc); err != nil {
		return err
	}
	m.live -= metaPutSize(key, old)
	delete(m.data, key)
	m.maybeRewrite()
	return nil
}

// Close closes the file. It returns the error that stopped writes, if any.
func (m *Meta) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	m.closed = true
	cerr := m.f.Close()
	if m.err != nil {
		return m.err
	}
	return cerr
}

// usable returns why writes are refused, if they are.
//
// REQUIRES: m.mu
func (m *Meta) usable() error {
	if m.closed {
		return ErrClosed
	}
	return m.err
}

// write appends rec to the file and fsyncs it. A failure stops all later
// writes (see Log's poison for why a failed fsync cannot be retried).
//
// REQUIRES: m.mu
func (m *Meta) write(rec []byte) error {
	if err := m.usable(); err != nil {
		return err
	}
	n, err := m.f.Write(rec)
	m.size += int64(n)
	if err == nil {
		err = m.f.Sync()
	}
	if err != nil {
		m.err = fmt.Errorf("%w: definition store: %w", ErrPoisoned, err)
		m.logger.Error("definition store stopped: every later change fails until restart", "dir", m.dir, "err", err)
		return m.err
	}
	return nil
}

// maybeRewrite rewrites the file when its dead bytes exceed its live bytes.
//
// REQUIRES: m.mu
func (m *Meta) maybeRewrite() {
	dead := m.size - headerSize - m.live
	if dead <= m.live || dead < metaRewriteMin {
		return
	}
	if err := m.rewrite(); err != nil {
		m.logger.Warn("definition store: rewrite failed", "dir", m.dir, "err", err)
	}
}

// rewrite writes the current map into a new file and renames it over the
// old one. A failure before the rename leaves the old file in use; a
// failure of the rename or of the directory fsync stops writes, because
// which file a crash would leave is then unknown.
//
// REQUIRES: m.mu (or OpenMeta)
func (m *Meta) rewrite() error {
	tmp := filepath.Join(m.dir, metaTemp)
	f, err := m.fs.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("store: meta rewrite: %w", err)
	}
	buf := make([]byte, headerSize, headerSize+m.live)
	putHeader(buf, metaMagic, 0, 0)
	for _, k := range slices.Sorted(maps.Keys(m.data)) {
		buf = appendMeta(buf, metaPut, k, m.data[k])
	}
	if _, err = f.Write(buf); err == nil {
		err = f.Sync()
	}
	if err != nil {
		f.Close()
		m.fs.Remove(tmp)
		return fmt.Errorf("store: meta rewrite: %w", err)
	}
	path := filepath.Join(m.dir, metaFile)
	if err = m.fs.Rename(tmp, path); err == nil {
		err = m.fs.SyncDir(m.dir)
	}
	f.Close()
	var nf File
	if err == nil {
		// Reopen under the final name, so that later errors name it.
		nf, err = m.fs.OpenFile(path, os.O_RDWR|os.O_APPEND, 0)
	}
	if err != nil {
		m.err = fmt.Errorf("%w: definition store: %w", ErrPoisoned, err)
		return m.err
	}
	if m.f != nil {
		m.f.Close()
	}
	m.f = nf
	m.size = int64(len(buf))
	m.live = int64(len(buf) - headerSize)
	return nil
}
