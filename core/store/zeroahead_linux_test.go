package store

import (
	"path/filepath"
	"syscall"
	"testing"
	"unsafe"
)

// fiemap and fiemapExtent are struct fiemap and struct fiemap_extent of
// linux/fiemap.h, with room for a few extents.
type fiemapExtent struct {
	logical, physical, length uint64
	_                         [2]uint64
	flags                     uint32
	_                         [3]uint32
}

type fiemap struct {
	start, length                      uint64
	flags, mapped, extentCount, unused uint32
	extents                            [32]fiemapExtent
}

const (
	fsIocFiemap     = 0xC020660B // _IOWR('f', 11, struct fiemap)
	fiemapFlagSync  = 0x1
	fiemapUnwritten = 0x800
)

// unwrittenIn reports whether any byte of [off, off+n) of the file at path
// is in an extent the file system marks unwritten (reserved by fallocate,
// never written), and whether the file system can say.
func unwrittenIn(t *testing.T, path string, off, n int64) (unwritten, ok bool) {
	t.Helper()
	fd, err := syscall.Open(path, syscall.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	m := fiemap{start: uint64(off), length: uint64(n), flags: fiemapFlagSync, extentCount: 32}
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), fsIocFiemap, uintptr(unsafe.Pointer(&m))); e != 0 {
		return false, false
	}
	for _, x := range m.extents[:min(m.mapped, 32)] {
		if x.flags&fiemapUnwritten != 0 && int64(x.logical) < off+n && int64(x.logical+x.length) > off {
			return true, true
		}
	}
	return false, true
}

// On the real file system, the blocks just past the records of a small
// batch are written blocks, not unwritten ones, once the batch is durable:
// the next small batch's fsync then has no extent to convert.
func TestZeroAheadWritesBlocksOnDisk(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "log")
	const seg = 8 << 20
	l, _ := mustOpen(t, OS(), dir, Options{SegmentSize: seg})
	defer l.Close()
	if !l.allocated {
		t.Skipf("the file system under %s cannot preallocate segments", dir)
	}
	path := filepath.Join(dir, segName(l.activeSeq))
	// Before any record: the segment's space is reserved, not written.
	unwritten, ok := unwrittenIn(t, path, 1<<20, 64<<10)
	if !ok {
		t.Skipf("the file system under %s does not map extents (FIEMAP)", dir)
	}
	if !unwritten {
		t.Skipf("the file system under %s does not mark preallocated space unwritten", dir)
	}
	appendSync(t, l, payload(1, 2000), 1)
	end := l.activeSize
	if u, _ := unwrittenIn(t, path, end, zeroLow); u {
		t.Fatalf("the %d bytes after the records (at %d) are still unwritten after a small batch", zeroLow, end)
	}
	if u, _ := unwrittenIn(t, path, 6<<20, 64<<10); !u {
		t.Fatal("space far past the records was written too: zeros should go a chunk at a time")
	}
}
