package wire

import "strconv"

// Error is a protocol error detected by the codec. Code is the reply code the
// receiving peer should close the connection with (for example [FrameError]
// or [SyntaxError]) and Text a short human-readable explanation.
type Error struct {
	Code uint16
	Text string
}

// Error returns the reply code's name followed by the text, in the form
// RabbitMQ uses for reply texts: "FRAME_ERROR - frame too large: 200000 > 131072".
func (e *Error) Error() string {
	name := ReplyCodeName(e.Code)
	if name == "" {
		name = strconv.Itoa(int(e.Code))
	}
	return name + " - " + e.Text
}

func newError(code uint16, text string) *Error {
	return &Error{Code: code, Text: text}
}

// Errors that carry no variable parts are allocated once.
var (
	errBadFrameEnd       = newError(FrameError, "bad frame end octet")
	errHeartbeatPayload  = newError(FrameError, "heartbeat frame with a payload")
	errHeartbeatChannel  = newError(FrameError, "heartbeat frame on a channel other than 0")
	errShortMethodFrame  = newError(FrameError, "method frame too short for class and method ids")
	errShortHeaderFrame  = newError(FrameError, "content header frame too short")
	errHeaderContinued   = newError(SyntaxError, "content header property flags continue past the basic class")
	errTruncatedProps    = newError(SyntaxError, "truncated content header properties")
	errTableTooDeep      = newError(SyntaxError, "field table nested too deeply")
	errTruncatedTable    = newError(SyntaxError, "truncated field table")
	errTruncatedArray    = newError(SyntaxError, "truncated field array")
	errTruncatedTableLen = newError(SyntaxError, "truncated field table length")
)

func frameTooLarge(size, max uint64) *Error {
	return newError(FrameError, "frame too large: "+strconv.FormatUint(size, 10)+" > "+strconv.FormatUint(max, 10))
}

func unknownFrameType(typ uint8) *Error {
	return newError(FrameError, "unknown frame type "+strconv.Itoa(int(typ)))
}

func unknownMethod(classID, methodID uint16) *Error {
	if !knownClass(classID) {
		return newError(CommandInvalid, "unknown class "+strconv.Itoa(int(classID)))
	}
	return newError(CommandInvalid, "unknown method "+strconv.Itoa(int(methodID))+" of class "+strconv.Itoa(int(classID)))
}

func badFieldType(tag byte) *Error {
	return newError(SyntaxError, "unknown field type "+strconv.QuoteRune(rune(tag)))
}
