package core

import (
	"errors"
	"fmt"
)

// Error kinds. Every error returned by this package wraps one of them; adapters
// map them to their protocol's codes with errors.Is.
var (
	// ErrNotFound: an exchange, queue or binding does not exist (AMQP 404).
	ErrNotFound = errors.New("not found")
	// ErrAccessRefused: the operation is not permitted (AMQP 403).
	ErrAccessRefused = errors.New("access refused")
	// ErrResourceLocked: an exclusive resource is owned by another connection (AMQP 405).
	ErrResourceLocked = errors.New("resource locked")
	// ErrPreconditionFailed: a declaration does not match, or a condition
	// of the request is not met (AMQP 406).
	ErrPreconditionFailed = errors.New("precondition failed")
	// ErrNotAllowed: the request violates connection-level rules (AMQP 530).
	ErrNotAllowed = errors.New("not allowed")
	// ErrCommandInvalid: the request is invalid for the connection (AMQP 503).
	ErrCommandInvalid = errors.New("command invalid")
	// ErrResourceError: the server lacks a resource to complete the request (AMQP 506).
	ErrResourceError = errors.New("resource error")
	// ErrInternal: the server failed to do what was asked, typically because
	// storage failed; nothing was changed (AMQP 541).
	ErrInternal = errors.New("internal error")
	// ErrClosed: the session or connection is closed.
	ErrClosed = errors.New("closed")
	// ErrLimitReached: a node limit refused the request (connections per
	// user, consumers per queue; see limits.go). It is never an error's
	// only kind: such errors are of kind ErrNotAllowed as well.
	ErrLimitReached = errors.New("limit reached")
)

// Error is an error of a known kind with a message meant for the client.
type Error struct {
	Kind error
	Msg  string
	// Also, when set, is a second kind the error matches with errors.Is
	// (ErrLimitReached besides ErrNotAllowed).
	Also error
}

func (e *Error) Error() string { return e.Msg }

// Unwrap returns the kind, so errors.Is(err, ErrNotFound) works.
func (e *Error) Unwrap() error { return e.Kind }

// Is reports whether target is the error's second kind.
func (e *Error) Is(target error) bool { return e.Also != nil && target == e.Also }

func errorf(kind error, format string, args ...any) error {
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

// limitErrorf builds the refusal of a node limit.
func limitErrorf(format string, args ...any) error {
	return &Error{Kind: ErrNotAllowed, Also: ErrLimitReached, Msg: fmt.Sprintf(format, args...)}
}
