package store

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// Sync makes the file's data durable with fdatasync(2), which also
// records a changed size but not the file's times. fsync would record the
// modification time every write changes, and on ext4 every such record
// waits for a journal commit: with the segment's blocks already written
// (Log.zeroAhead), fdatasync flushes only the data (measured on this
// project's test machine with both cores busy: 0.14 ms against 0.32 ms).
func (f osFile) Sync() error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		for {
			serr = syscall.Fdatasync(int(fd))
			if serr != syscall.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	if serr != nil {
		return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: serr}
	}
	return nil
}

// Allocate reserves space with fallocate(2) in its default mode, which
// extends the file.
func (f osFile) Allocate(size int64) error {
	cur, err := f.Size()
	if err != nil || size <= cur {
		return err
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) {
		for {
			ferr = syscall.Fallocate(int(fd), 0, 0, size)
			if ferr != syscall.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	switch {
	case ferr == nil:
		return nil
	case errors.Is(ferr, syscall.EOPNOTSUPP) || errors.Is(ferr, syscall.ENOSYS):
		return fmt.Errorf("fallocate %s: %w (%w)", f.Name(), errors.ErrUnsupported, ferr)
	default:
		return fmt.Errorf("fallocate %s: %w", f.Name(), ferr)
	}
}
