//go:build !linux

package store

import (
	"errors"
	"fmt"
)

// Allocate is not implemented outside Linux: segments grow by appending.
func (f osFile) Allocate(size int64) error {
	return fmt.Errorf("preallocate %s: %w", f.Name(), errors.ErrUnsupported)
}
