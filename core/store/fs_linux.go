package store

import (
	"errors"
	"fmt"
	"syscall"
)

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
