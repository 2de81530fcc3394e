package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/bits"
	"strconv"
	"strings"
)

// The constants below are part of the on-disk format (see the package
// documentation). Changing any of them requires a new formatVersion.
const (
	// formatVersion is written in every segment and meta file header.
	formatVersion = 1

	// headerSize is the size of a segment or meta file header:
	// magic(8) version(4) seq(8) nextID(8) crc(4).
	headerSize = 32

	// frameSize is the size of the frame in front of every record body:
	// length(4) crc(4).
	frameSize = 8

	// Record types (the first byte of a body).
	typeRecord  = 1 // a new record: id, parts, payload; every part live
	typeRelease = 2 // a tombstone: id, part, target segment
	typeMoved   = 3 // a record copied by compaction: id, parts, live mask, payload

	// recordFixed is the body size of a typeRecord without payload:
	// type(1) id(8) parts(4). A typeMoved body adds the live mask.
	recordFixed = 1 + 8 + 4

	// releaseBody is the body size of a typeRelease: type(1) id(8) part(4) target(8).
	releaseBody = 1 + 8 + 4 + 8

	// releaseSize is the size of a tombstone on disk, frame included.
	releaseSize = frameSize + releaseBody
)

// Limits. They bound what a reader allocates, whatever the bytes on disk say.
const (
	// MaxRecordSize is the largest payload Append accepts.
	MaxRecordSize = 256 << 20
	// MaxParts is the largest parts count Append accepts.
	MaxParts = 1 << 20

	maxBody = recordFixed + MaxParts/8 + MaxRecordSize
)

// Magic numbers. The first byte has the high bit set and the last is a
// newline, so that a file mangled by a text-mode copy is rejected.
var (
	segMagic  = [8]byte{0x89, 'U', 'M', 'S', 'S', 'E', 'G', '\n'}
	metaMagic = [8]byte{0x89, 'U', 'M', 'S', 'M', 'E', 'T', '\n'}
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var le = binary.LittleEndian

// segName returns the file name of segment seq.
func segName(seq uint64) string { return fmt.Sprintf("%020d.seg", seq) }

// parseSegName returns the sequence number in a segment file name.
func parseSegName(name string) (uint64, bool) {
	digits, ok := strings.CutSuffix(name, ".seg")
	if !ok || len(digits) != 20 {
		return 0, false
	}
	seq, err := strconv.ParseUint(digits, 10, 64)
	return seq, err == nil && seq > 0
}

// putHeader fills b[:headerSize] with a header.
func putHeader(b []byte, magic [8]byte, seq, nextID uint64) {
	copy(b[0:8], magic[:])
	le.PutUint32(b[8:12], formatVersion)
	le.PutUint64(b[12:20], seq)
	le.PutUint64(b[20:28], nextID)
	le.PutUint32(b[28:32], crc32.Checksum(b[:28], castagnoli))
}

// errVersion marks a header of a format version this code cannot read.
var errVersion = errors.New("unsupported format version")

// parseHeader checks a header and returns its sequence number and next id.
func parseHeader(b []byte, magic [8]byte) (seq, nextID uint64, err error) {
	if len(b) < headerSize {
		return 0, 0, errors.New("short header")
	}
	if [8]byte(b[0:8]) != magic {
		return 0, 0, errors.New("bad magic")
	}
	if crc32.Checksum(b[:28], castagnoli) != le.Uint32(b[28:32]) {
		return 0, 0, errors.New("header checksum mismatch")
	}
	if v := le.Uint32(b[8:12]); v != formatVersion {
		return 0, 0, fmt.Errorf("%w %d (this build reads %d)", errVersion, v, formatVersion)
	}
	return le.Uint64(b[12:20]), le.Uint64(b[20:28]), nil
}

// maskLen is the size in bytes of the live mask of a record with parts parts.
func maskLen(parts uint32) int { return int(parts+7) / 8 }

// appendRecord appends the frame and body of a typeRecord or typeMoved
// record. The checksum is left zero: seal fills it in.
func appendRecord(buf []byte, typ byte, id uint64, parts uint32, mask, payload []byte) []byte {
	n := recordFixed + len(mask) + len(payload)
	buf = le.AppendUint32(buf, uint32(n))
	buf = le.AppendUint32(buf, 0)
	buf = append(buf, typ)
	buf = le.AppendUint64(buf, id)
	buf = le.AppendUint32(buf, parts)
	buf = append(buf, mask...)
	return append(buf, payload...)
}

// appendRelease appends a tombstone. target is patched by seal unless known.
func appendRelease(buf []byte, id uint64, part uint32, target uint64) []byte {
	buf = le.AppendUint32(buf, releaseBody)
	buf = le.AppendUint32(buf, 0)
	buf = append(buf, typeRelease)
	buf = le.AppendUint64(buf, id)
	buf = le.AppendUint32(buf, part)
	return le.AppendUint64(buf, target)
}

// setReleaseTarget patches the target of the tombstone at b[0:releaseSize].
func setReleaseTarget(b []byte, target uint64) { le.PutUint64(b[frameSize+13:], target) }

// setChecksum fills in the checksum of the framed record b.
func setChecksum(b []byte) {
	le.PutUint32(b[4:8], crc32.Checksum(b[frameSize:], castagnoli))
}

// entry is one decoded record or tombstone.
type entry struct {
	typ     byte
	id      uint64
	parts   uint32 // records
	mask    []byte // typeMoved: live parts; nil for typeRecord (all live)
	payload []byte // records
	part    uint32 // tombstones
	target  uint64 // tombstones: segment the released record was in
	off     int64  // offset of the frame in its segment
	size    int    // frame + body
}

// formatError describes a record that cannot be read.
type formatError struct {
	off    int64
	reason string
}

func (e *formatError) Error() string { return fmt.Sprintf("offset %d: %s", e.off, e.reason) }

// decodeBody decodes a checked body (type onwards) into e.
func decodeBody(body []byte, e *entry) string {
	e.typ = body[0]
	switch e.typ {
	case typeRecord, typeMoved:
		if len(body) < recordFixed {
			return "record body too short"
		}
		e.id = le.Uint64(body[1:9])
		e.parts = le.Uint32(body[9:13])
		if e.parts == 0 || e.parts > MaxParts {
			return fmt.Sprintf("bad parts count %d", e.parts)
		}
		rest := body[recordFixed:]
		e.mask = nil
		if e.typ == typeMoved {
			ml := maskLen(e.parts)
			if len(rest) < ml {
				return "moved record shorter than its live mask"
			}
			e.mask = rest[:ml]
			if pad := e.parts % 8; pad != 0 && e.mask[ml-1]>>pad != 0 {
				return "live mask has bits past the parts count"
			}
			rest = rest[ml:]
		}
		e.payload = rest
	case typeRelease:
		if len(body) != releaseBody {
			return fmt.Sprintf("tombstone body of %d bytes", len(body))
		}
		e.id = le.Uint64(body[1:9])
		e.part = le.Uint32(body[9:13])
		e.target = le.Uint64(body[13:21])
		if e.part >= MaxParts {
			return fmt.Sprintf("bad part %d", e.part)
		}
	default:
		return fmt.Sprintf("unknown record type %d", e.typ)
	}
	if e.id == 0 {
		return "record id 0"
	}
	return ""
}

// maskCount returns the number of set bits in a live mask.
func maskCount(mask []byte) int {
	n := 0
	for _, b := range mask {
		n += bits.OnesCount8(b)
	}
	return n
}

// scanner reads the records of one file sequentially through a window
// buffer, checking every length against the file's size before it reads
// or allocates.
type scanner struct {
	r      io.ReaderAt
	end    int64 // size of the file
	off    int64 // offset of the next frame
	buf    []byte
	bufOff int64 // file offset of buf[0]
	bufLen int   // valid bytes in buf
}

// scanWindow is the scanner's read size.
const scanWindow = 1 << 20

// reset points the scanner at a new file, starting at off.
func (s *scanner) reset(r io.ReaderAt, size, off int64) {
	s.r, s.end, s.off = r, size, off
	s.bufOff, s.bufLen = 0, 0
}

// window returns the n bytes at off, reading them in if needed. The caller
// has checked that off+n <= s.end.
func (s *scanner) window(off int64, n int) ([]byte, error) {
	if off >= s.bufOff && off+int64(n) <= s.bufOff+int64(s.bufLen) {
		i := int(off - s.bufOff)
		return s.buf[i : i+n], nil
	}
	want := max(n, scanWindow)
	if rem := s.end - off; int64(want) > rem {
		want = int(rem)
	}
	if cap(s.buf) < want {
		s.buf = make([]byte, want)
	}
	s.buf = s.buf[:cap(s.buf)]
	got, err := s.r.ReadAt(s.buf[:want], off)
	if got < n {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		s.bufLen = 0
		return nil, err
	}
	s.bufOff, s.bufLen = off, got
	return s.buf[:n], nil
}

// frame reads the frame at s.off, checks its length and checksum, and
// returns the body and the frame's offset without advancing. It returns
// io.EOF at the end of the file, a *formatError for a torn or corrupt
// frame, and any other error for a failed read. body points into the
// scanner's buffer and is valid until the next call.
func (s *scanner) frame() ([]byte, error) {
	if s.off == s.end {
		return nil, io.EOF
	}
	if s.end-s.off < frameSize {
		return nil, &formatError{s.off, fmt.Sprintf("%d trailing bytes, short of a record frame", s.end-s.off)}
	}
	fr, err := s.window(s.off, frameSize)
	if err != nil {
		return nil, err
	}
	n := le.Uint32(fr[0:4])
	sum := le.Uint32(fr[4:8])
	if n == 0 || n > maxBody {
		return nil, &formatError{s.off, fmt.Sprintf("bad record length %d", n)}
	}
	if int64(n) > s.end-s.off-frameSize {
		return nil, &formatError{s.off, fmt.Sprintf("record length %d runs past the end of the file", n)}
	}
	body, err := s.window(s.off+frameSize, int(n))
	if err != nil {
		return nil, err
	}
	if crc32.Checksum(body, castagnoli) != sum {
		return nil, &formatError{s.off, "checksum mismatch"}
	}
	return body, nil
}

// next decodes the log record at s.off into e and advances. Errors are as
// for frame, plus a *formatError for a body that does not decode. e's
// slices point into the scanner's buffer and are valid until the next call.
func (s *scanner) next(e *entry) error {
	body, err := s.frame()
	if err != nil {
		return err
	}
	if reason := decodeBody(body, e); reason != "" {
		return &formatError{s.off, reason}
	}
	e.off = s.off
	e.size = frameSize + len(body)
	s.off += int64(e.size)
	return nil
}
