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
	var serr error
	if err := f.retry(func(fd int) error { serr = syscall.Fdatasync(fd); return serr }); err != nil {
		return err
	}
	if serr != nil {
		return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: serr}
	}
	return nil
}

// retry runs call with f's descriptor until it fails with anything but
// EINTR; it returns only an error of getting at the descriptor, call
// keeps its own.
func (f osFile) retry(call func(fd int) error) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	return rc.Control(func(fd uintptr) {
		for call(int(fd)) == syscall.EINTR {
		}
	})
}

// Allocate reserves space with fallocate(2) in its default mode, which
// extends the file.
func (f osFile) Allocate(size int64) error {
	cur, err := f.Size()
	if err != nil || size <= cur {
		return err
	}
	var ferr error
	if err := f.retry(func(fd int) error { ferr = syscall.Fallocate(fd, 0, 0, size); return ferr }); err != nil {
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
