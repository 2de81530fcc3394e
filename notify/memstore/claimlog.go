package memstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/unifiedms/ums/core/store"
)

// The claims file: a header, then one record per claim, appended and
// fsynced in batches (group commit). A record never needs deleting: it
// carries its expiry, and a later record of the same key (claimed again
// after expiry) supersedes it. Open drops expired records and rewrites the
// file; a sweep rewrites it when most of it is dead.
//
//	header: "UMSCLAIM" (8 bytes) version (1 byte, 1)
//	record: length (4, of the body) CRC-32C (4, of the body) body
//	body:   expiry (8, unix ns) key length (4) key id
//
// Integers are little-endian. A torn or corrupt tail (a crash during an
// append) is cut off at the last good record.
const (
	claimsFile = "claims.log"
	claimsTemp = "claims.log.tmp"

	claimsMagic   = "UMSCLAIM"
	claimsVersion = 1
	headerLen     = len(claimsMagic) + 1
	frameLen      = 8  // length and CRC
	fixedLen      = 12 // expiry and key length

	// maxRecord bounds a record's body; longer lengths are corruption.
	maxRecord = 1 << 20

	// rewriteMin: a file smaller than this is never rewritten by a sweep.
	rewriteMin = 64 << 10
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// errTooLong refuses a claim whose record would exceed maxRecord.
var errTooLong = errors.New("memstore: key and id longer than 1 MiB")

// recordLen is the encoded size of a claim's record.
func recordLen(key, id string) int64 { return int64(frameLen + fixedLen + len(key) + len(id)) }

// appendRecord appends the record of key's claim to buf.
func appendRecord(buf []byte, key string, c *claim) []byte {
	le := binary.LittleEndian
	start := len(buf)
	buf = le.AppendUint32(buf, uint32(fixedLen+len(key)+len(c.id)))
	buf = le.AppendUint32(buf, 0)
	buf = le.AppendUint64(buf, uint64(c.expires))
	buf = le.AppendUint32(buf, uint32(len(key)))
	buf = append(buf, key...)
	buf = append(buf, c.id...)
	le.PutUint32(buf[start+4:], crc32.Checksum(buf[start+frameLen:], crcTable))
	return buf
}

// loadClaims reads the claims file in dir (none: no claims), cutting off a
// bad tail. It returns every key's latest claim, expired or not, and the
// number of bytes cut.
func loadClaims(fsys store.FS, dir string) (map[string]*claim, int64, error) {
	out := map[string]*claim{}
	f, err := fsys.OpenFile(filepath.Join(dir, claimsFile), os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return out, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return nil, 0, err
	}
	data := make([]byte, size)
	if _, err := f.ReadAt(data, 0); err != nil && err != io.EOF {
		return nil, 0, err
	}
	if len(data) < headerLen || string(data[:len(claimsMagic)]) != claimsMagic {
		return nil, 0, fmt.Errorf("%s is not a claims file", filepath.Join(dir, claimsFile))
	}
	if v := data[len(claimsMagic)]; v != claimsVersion {
		return nil, 0, fmt.Errorf("%s: unknown version %d", filepath.Join(dir, claimsFile), v)
	}
	le := binary.LittleEndian
	off := headerLen
	for off < len(data) {
		rest := data[off:]
		if len(rest) < frameLen {
			break
		}
		n := int(le.Uint32(rest))
		if n < fixedLen || n > maxRecord || len(rest) < frameLen+n {
			break
		}
		body := rest[frameLen : frameLen+n]
		if crc32.Checksum(body, crcTable) != le.Uint32(rest[4:]) {
			break
		}
		kl := int(le.Uint32(body[8:]))
		if kl > n-fixedLen {
			break
		}
		key := string(body[fixedLen : fixedLen+kl])
		out[key] = &claim{id: string(body[fixedLen+kl:]), expires: int64(le.Uint64(body))}
		off += frameLen + n
	}
	// The file is rewritten right after loading, so the bad tail is not
	// truncated here; it is only reported.
	return out, int64(len(data) - off), nil
}

// writeClaims writes a fresh claims file holding buf's records (after the
// header) and renames it over the current one. It returns the new file,
// open for appending.
func writeClaims(fsys store.FS, dir string, records []byte) (store.File, error) {
	tmp := filepath.Join(dir, claimsTemp)
	f, err := fsys.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, 0, headerLen+len(records))
	buf = append(buf, claimsMagic...)
	buf = append(buf, claimsVersion)
	buf = append(buf, records...)
	if _, err = f.Write(buf); err == nil {
		err = f.Sync()
	}
	f.Close()
	if err != nil {
		fsys.Remove(tmp)
		return nil, err
	}
	path := filepath.Join(dir, claimsFile)
	if err := fsys.Rename(tmp, path); err != nil {
		return nil, err
	}
	if err := fsys.SyncDir(dir); err != nil {
		return nil, err
	}
	return fsys.OpenFile(path, os.O_RDWR|os.O_APPEND, 0)
}
