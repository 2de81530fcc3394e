package store

import (
	"errors"
	"io"
	"io/fs"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// MemFS is an in-memory [FS] that remembers what was made durable, so that
// tests can simulate a power loss or a SIGKILL followed by a machine crash.
//
// Durability follows the POSIX rules the store relies on and nothing more:
// a file's contents are durable as of its last File.Sync, and a directory's
// entries (creations, renames, removals) as of the last SyncDir of that
// directory. Directories themselves are durable as soon as MkdirAll returns.
//
// The zero value is not usable; call [NewMemFS]. A MemFS is safe for
// concurrent use.
type MemFS struct {
	mu        sync.Mutex
	dirs      map[string]*memDir // cleaned path -> directory
	failSync  error
	failWrite error
	failRead  error

	// hook, when set, is called before every mutating operation (op is
	// "create", "write", "allocate", "sync", "truncate", "remove",
	// "rename" or "syncdir") without mu held. Tests use it to crash at a chosen point.
	hook func(op, name string)
}

// memDir is one directory: its current entries and the entries as of the
// last SyncDir.
type memDir struct {
	entries map[string]*memNode
	synced  map[string]*memNode
}

// memNode is a file's contents (an inode: renames move it, open handles keep it).
type memNode struct {
	data []byte
	// synced is the contents as of the last Sync. It may share data's
	// backing array: it is always a full slice (cap == len), and any write
	// below len(synced) copies data first, so synced never changes.
	synced []byte
	// prefix reports whether synced is still a prefix of data, that is,
	// nothing below len(synced) was overwritten or truncated since the
	// last Sync. [MemFS.CrashTorn] only tears files for which it holds.
	prefix bool
	// alloc is the size set by Allocate: bytes from len(data) up to alloc
	// read as zeros, and writing there grows data as an append would.
	// syncedAlloc is alloc as of the last Sync.
	alloc, syncedAlloc int
}

// size is the file's size: its data, or the space allocated, if larger.
func (n *memNode) size() int { return max(len(n.data), n.alloc) }

// NewMemFS returns an empty in-memory file system holding the root directory.
func NewMemFS() *MemFS {
	m := &MemFS{dirs: make(map[string]*memDir)}
	m.dirs[string(filepath.Separator)] = newMemDir()
	m.dirs["."] = newMemDir()
	return m
}

func newMemDir() *memDir {
	return &memDir{entries: make(map[string]*memNode), synced: make(map[string]*memNode)}
}

// Crash returns a new MemFS holding only the durable state of m: every file
// with its contents as of its last Sync, every directory with its entries as
// of its last SyncDir. m itself is unchanged and stays usable, so a log still
// running on m can be closed afterwards without affecting the copy.
func (m *MemFS) Crash() *MemFS { return m.crash(nil) }

// CrashTorn is like [MemFS.Crash] but also simulates torn writes: for every
// file whose unsynced changes are pure appends, a pseudo-random prefix
// (chosen from seed) of the unsynced bytes survives as well, as happens
// when some of the pages written before the crash reached the disk.
func (m *MemFS) CrashTorn(seed uint64) *MemFS {
	return m.crash(rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)))
}

func (m *MemFS) crash(r *rand.Rand) *MemFS {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := &MemFS{dirs: make(map[string]*memDir, len(m.dirs))}
	clones := make(map[*memNode]*memNode) // a node synced under two names stays one node
	// Visit directories and names in a fixed order so that a seed gives
	// the same result every time.
	for _, path := range slices.Sorted(maps.Keys(m.dirs)) {
		d := m.dirs[path]
		nd := newMemDir()
		for _, name := range slices.Sorted(maps.Keys(d.synced)) {
			node := d.synced[name]
			c, ok := clones[node]
			if !ok {
				keep := len(node.synced)
				if r != nil && node.prefix && len(node.data) > keep {
					keep += r.IntN(len(node.data) - keep + 1)
				}
				var data []byte
				if keep > len(node.synced) {
					data = slices.Clone(node.data[:keep])
				} else {
					data = slices.Clone(node.synced)
				}
				c = &memNode{data: data, synced: data[:len(data):len(data)], prefix: true,
					alloc: node.syncedAlloc, syncedAlloc: node.syncedAlloc}
				clones[node] = c
			}
			nd.entries[name] = c
			nd.synced[name] = c
		}
		n.dirs[path] = nd
	}
	return n
}

// FailSync makes every later File.Sync and SyncDir fail with err, until
// FailSync(nil) is called.
func (m *MemFS) FailSync(err error) {
	m.mu.Lock()
	m.failSync = err
	m.mu.Unlock()
}

// FailWrite makes every later File.Write fail with err (writing nothing),
// until FailWrite(nil) is called.
func (m *MemFS) FailWrite(err error) {
	m.mu.Lock()
	m.failWrite = err
	m.mu.Unlock()
}

// FailRead makes every later File.Read and File.ReadAt fail with err (a
// transient error such as EMFILE or EIO), until FailRead(nil) is called.
func (m *MemFS) FailRead(err error) {
	m.mu.Lock()
	m.failRead = err
	m.mu.Unlock()
}

// SetHook makes h run before every later mutating operation (op is
// "create", "write", "allocate", "sync", "truncate", "remove", "rename" or
// "syncdir", name the file or directory), without the file system's lock held; nil
// removes it. A hook that blocks holds up that operation only, so tests can
// hold an fsync while they check what the server does meanwhile.
func (m *MemFS) SetHook(h func(op, name string)) {
	m.mu.Lock()
	m.hook = h
	m.mu.Unlock()
}

func (m *MemFS) callHook(op, name string) {
	m.mu.Lock()
	h := m.hook
	m.mu.Unlock()
	if h != nil {
		h(op, name)
	}
}

// split returns the cleaned directory and base name of name.
func split(name string) (dir, base string) {
	name = filepath.Clean(name)
	return filepath.Dir(name), filepath.Base(name)
}

// MkdirAll creates path and its parents.
func (m *MemFS) MkdirAll(path string, perm os.FileMode) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	path = filepath.Clean(path)
	for {
		if _, ok := m.dirs[path]; !ok {
			m.dirs[path] = newMemDir()
		}
		parent := filepath.Dir(path)
		if parent == path {
			return nil
		}
		path = parent
	}
}

// OpenFile opens or creates a file.
func (m *MemFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	if flag&os.O_CREATE != 0 {
		m.callHook("create", name)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	dir, base := split(name)
	d, ok := m.dirs[dir]
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	if _, isDir := m.dirs[filepath.Clean(name)]; isDir {
		return nil, &fs.PathError{Op: "open", Path: name, Err: errors.New("is a directory")}
	}
	mode := flag & (os.O_RDONLY | os.O_WRONLY | os.O_RDWR)
	node, ok := d.entries[base]
	switch {
	case !ok && flag&os.O_CREATE == 0:
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	case !ok:
		node = &memNode{prefix: true}
		d.entries[base] = node
	case flag&os.O_CREATE != 0 && flag&os.O_EXCL != 0:
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrExist}
	}
	if flag&os.O_TRUNC != 0 && mode != os.O_RDONLY {
		node.truncate(0)
	}
	return &memFile{
		fs:     m,
		node:   node,
		name:   name,
		read:   mode != os.O_WRONLY,
		write:  mode != os.O_RDONLY,
		append: flag&os.O_APPEND != 0,
	}, nil
}

// Remove deletes a file's directory entry.
func (m *MemFS) Remove(name string) error {
	m.callHook("remove", name)
	m.mu.Lock()
	defer m.mu.Unlock()
	dir, base := split(name)
	d, ok := m.dirs[dir]
	if !ok || d.entries[base] == nil {
		return &fs.PathError{Op: "remove", Path: name, Err: fs.ErrNotExist}
	}
	delete(d.entries, base)
	return nil
}

// Rename moves a file's directory entry, replacing newpath.
func (m *MemFS) Rename(oldpath, newpath string) error {
	m.callHook("rename", oldpath)
	m.mu.Lock()
	defer m.mu.Unlock()
	odir, obase := split(oldpath)
	ndir, nbase := split(newpath)
	od, ok := m.dirs[odir]
	if !ok || od.entries[obase] == nil {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: fs.ErrNotExist}
	}
	nd, ok := m.dirs[ndir]
	if !ok {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: fs.ErrNotExist}
	}
	node := od.entries[obase]
	delete(od.entries, obase)
	nd.entries[nbase] = node
	return nil
}

// ReadDir returns the sorted names of the files and subdirectories in dir.
func (m *MemFS) ReadDir(dir string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	dir = filepath.Clean(dir)
	d, ok := m.dirs[dir]
	if !ok {
		return nil, &fs.PathError{Op: "readdir", Path: dir, Err: fs.ErrNotExist}
	}
	names := slices.Collect(maps.Keys(d.entries))
	for p := range m.dirs {
		if p != dir && filepath.Dir(p) == dir && !strings.HasSuffix(p, string(filepath.Separator)) {
			names = append(names, filepath.Base(p))
		}
	}
	slices.Sort(names)
	return names, nil
}

// SyncDir makes dir's current entries durable.
func (m *MemFS) SyncDir(dir string) error {
	m.callHook("syncdir", dir)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failSync != nil {
		return &fs.PathError{Op: "fsync", Path: dir, Err: m.failSync}
	}
	d, ok := m.dirs[filepath.Clean(dir)]
	if !ok {
		return &fs.PathError{Op: "fsync", Path: dir, Err: fs.ErrNotExist}
	}
	d.synced = maps.Clone(d.entries)
	return nil
}

// unshare gives n.data its own backing array if a change is about to touch
// bytes that synced may share.
func (n *memNode) unshare() {
	n.data = append(make([]byte, 0, cap(n.data)), n.data...)
	n.prefix = false
}

// readAt copies what the file holds at off (which is below its size) into
// p, zeros past the data, and returns the count.
func (n *memNode) readAt(p []byte, off int64) int {
	end := min(int(off)+len(p), n.size())
	m := end - int(off)
	c := 0
	if off < int64(len(n.data)) {
		c = copy(p[:m], n.data[off:])
	}
	clear(p[c:m])
	return m
}

// writeAt writes p at off, growing the file (with zeros in any gap).
func (n *memNode) writeAt(p []byte, off int64) {
	if off < int64(len(n.synced)) || len(n.data) < len(n.synced) {
		n.unshare()
	}
	end := int(off) + len(p)
	if end > len(n.data) {
		old := len(n.data)
		n.data = slices.Grow(n.data, end-old)[:end]
		clear(n.data[old:])
	}
	copy(n.data[off:], p)
}

// truncate sets the file's size.
func (n *memNode) truncate(size int64) {
	s := int(size)
	n.alloc = min(n.alloc, s)
	switch {
	case s < len(n.data):
		if s < len(n.synced) {
			n.prefix = false
		}
		n.data = n.data[:s]
	case s > len(n.data):
		n.writeAt(make([]byte, s-len(n.data)), int64(len(n.data)))
	}
}

// memFile is an open handle of a MemFS file.
type memFile struct {
	fs     *MemFS
	node   *memNode
	name   string
	pos    int64
	read   bool
	write  bool
	append bool
	closed bool
}

func (f *memFile) check(op string, needWrite bool) error {
	if f.closed {
		return &fs.PathError{Op: op, Path: f.name, Err: fs.ErrClosed}
	}
	if needWrite && !f.write || !needWrite && !f.read {
		return &fs.PathError{Op: op, Path: f.name, Err: fs.ErrPermission}
	}
	return nil
}

// Read reads from the handle's position.
func (f *memFile) Read(p []byte) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("read", false); err != nil {
		return 0, err
	}
	if f.fs.failRead != nil {
		return 0, &fs.PathError{Op: "read", Path: f.name, Err: f.fs.failRead}
	}
	if f.pos >= int64(f.node.size()) {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	n := f.node.readAt(p, f.pos)
	f.pos += int64(n)
	return n, nil
}

// ReadAt reads at off, independent of the handle's position.
func (f *memFile) ReadAt(p []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("read", false); err != nil {
		return 0, err
	}
	if f.fs.failRead != nil {
		return 0, &fs.PathError{Op: "read", Path: f.name, Err: f.fs.failRead}
	}
	if off < 0 {
		return 0, &fs.PathError{Op: "readat", Path: f.name, Err: errors.New("negative offset")}
	}
	if off >= int64(f.node.size()) {
		return 0, io.EOF
	}
	n := f.node.readAt(p, off)
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// lockForWrite runs the write hook, takes the file system's lock and
// checks that f may be written now. The caller unlocks f.fs.mu, error or
// not.
func (f *memFile) lockForWrite() error {
	f.fs.callHook("write", f.name)
	f.fs.mu.Lock()
	if err := f.check("write", true); err != nil {
		return err
	}
	if f.fs.failWrite != nil {
		return &fs.PathError{Op: "write", Path: f.name, Err: f.fs.failWrite}
	}
	return nil
}

// Write writes at the handle's position (at the end with O_APPEND).
func (f *memFile) Write(p []byte) (int, error) {
	err := f.lockForWrite()
	defer f.fs.mu.Unlock()
	if err != nil {
		return 0, err
	}
	if f.append {
		f.pos = int64(f.node.size())
	}
	f.node.writeAt(p, f.pos)
	f.pos += int64(len(p))
	return len(p), nil
}

// WriteAt writes p at off without moving the handle's position. Zeros
// written into allocated space past the data change nothing the file
// reads, so they leave it as it was (and CrashTorn can still tear it).
func (f *memFile) WriteAt(p []byte, off int64) (int, error) {
	err := f.lockForWrite()
	defer f.fs.mu.Unlock()
	if err != nil {
		return 0, err
	}
	if f.append {
		return 0, &fs.PathError{Op: "write", Path: f.name, Err: errors.New("WriteAt on a file opened with O_APPEND")}
	}
	if off < 0 {
		return 0, &fs.PathError{Op: "write", Path: f.name, Err: fs.ErrInvalid}
	}
	n := f.node
	if off >= int64(len(n.data)) && off+int64(len(p)) <= int64(n.alloc) && allZero(p) {
		return len(p), nil
	}
	n.writeAt(p, off)
	return len(p), nil
}

func allZero(p []byte) bool {
	for _, b := range p {
		if b != 0 {
			return false
		}
	}
	return true
}

// Sync makes the file's current contents durable.
func (f *memFile) Sync() error {
	f.fs.callHook("sync", f.name)
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.closed {
		return &fs.PathError{Op: "sync", Path: f.name, Err: fs.ErrClosed}
	}
	if f.fs.failSync != nil {
		return &fs.PathError{Op: "sync", Path: f.name, Err: f.fs.failSync}
	}
	n := f.node
	n.synced = n.data[:len(n.data):len(n.data)]
	n.prefix = true
	n.syncedAlloc = n.alloc
	return nil
}

// Close closes the handle.
func (f *memFile) Close() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.closed {
		return &fs.PathError{Op: "close", Path: f.name, Err: fs.ErrClosed}
	}
	f.closed = true
	return nil
}

// Truncate sets the file's size.
func (f *memFile) Truncate(size int64) error {
	f.fs.callHook("truncate", f.name)
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("truncate", true); err != nil {
		return err
	}
	if size < 0 {
		return &fs.PathError{Op: "truncate", Path: f.name, Err: errors.New("negative size")}
	}
	f.node.truncate(size)
	return nil
}

// Size returns the file's current size.
func (f *memFile) Size() (int64, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.closed {
		return 0, &fs.PathError{Op: "stat", Path: f.name, Err: fs.ErrClosed}
	}
	return int64(f.node.size()), nil
}

// Allocate extends the file to size with zeros that a write fills as an
// append would, so that [MemFS.CrashTorn] can still tear it.
func (f *memFile) Allocate(size int64) error {
	f.fs.callHook("allocate", f.name)
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("allocate", true); err != nil {
		return err
	}
	if f.fs.failWrite != nil {
		return &fs.PathError{Op: "allocate", Path: f.name, Err: f.fs.failWrite}
	}
	f.node.alloc = max(f.node.alloc, int(size))
	return nil
}
