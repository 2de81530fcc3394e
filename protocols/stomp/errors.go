package stomp

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/go-stomp/stomp/v3/frame"

	"github.com/unifiedms/ums/core"
	"github.com/unifiedms/ums/protocols/stomp/wire"
)

// Errors: every refusal becomes one ERROR frame, built by errorFrame.

// protocolError is a refusal of the adapter's own: Message goes in the
// ERROR frame's message header, Detail in its body.
type protocolError struct {
	Message string
	Detail  string
}

func (e *protocolError) Error() string { return e.Message + ": " + e.Detail }

func protoErr(message, format string, args ...any) error {
	return &protocolError{Message: message, Detail: fmt.Sprintf(format, args...)}
}

// errorFrame maps an error onto an ERROR frame: a short message header
// (RabbitMQ's words for core errors) and a body that says what happened.
// f, when not nil, is the frame that failed: its receipt header is
// answered with receipt-id (STOMP 1.2 section ERROR).
func errorFrame(err error, f *frame.Frame) *frame.Frame {
	var msg string
	detail := err.Error()
	var pe *protocolError
	var we *wire.Error
	var ce *core.Error
	switch {
	case errors.As(err, &pe):
		msg, detail = pe.Message, pe.Detail
	case errors.As(err, &we):
		switch {
		case errors.Is(err, wire.ErrFrameTooLarge):
			msg = "Frame too large"
		case errors.Is(err, wire.ErrTooManyHeaders):
			msg = "Too many headers"
		case errors.Is(err, wire.ErrHeaderTooLong):
			msg = "Header too long"
		case errors.Is(err, wire.ErrInvalidCommand):
			msg = "Invalid command"
		case errors.Is(err, wire.ErrBadEscape):
			msg = "Invalid header encoding"
		default:
			msg = "Malformed frame"
		}
		detail = we.Detail
	case errors.Is(err, core.ErrNotFound):
		msg = "not_found"
	case errors.Is(err, core.ErrAccessRefused):
		msg = "access_refused"
	case errors.Is(err, core.ErrResourceLocked):
		msg = "resource_locked"
	case errors.Is(err, core.ErrPreconditionFailed):
		msg = "precondition_failed"
	case errors.Is(err, core.ErrNotAllowed):
		msg = "not_allowed"
	case errors.Is(err, core.ErrCommandInvalid):
		msg = "command_invalid"
	case errors.Is(err, core.ErrResourceError):
		msg = "resource_error"
	case errors.Is(err, core.ErrInternal):
		msg = "internal_error"
	case errors.Is(err, core.ErrClosed):
		msg = "closed"
	default:
		msg = "internal_error"
	}
	if errors.As(err, &ce) {
		detail = ce.Msg
	}
	ef := frame.New(frame.ERROR, frame.Message, msg, frame.ContentType, "text/plain")
	if f != nil {
		if id, ok := f.Header.Contains(frame.Receipt); ok {
			ef.Header.Set(frame.ReceiptId, id)
		}
	}
	ef.Body = []byte(detail)
	ef.Header.Set(frame.ContentLength, strconv.Itoa(len(ef.Body)))
	return ef
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
