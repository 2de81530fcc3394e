package wire

import (
	"github.com/go-stomp/stomp/v3/frame"
)

// AppendFrame appends f, encoded with esc, to dst. CONNECTED frames are
// never escaped. STOMP 1.0 cannot carry CR or LF in a header; they are
// left out of such values rather than end the line early.
func AppendFrame(dst []byte, f *frame.Frame, esc Escaping) []byte {
	if f.Command == frame.CONNECTED {
		esc = Escape10
	}
	dst = append(dst, f.Command...)
	dst = append(dst, '\n')
	if f.Header != nil {
		for i := range f.Header.Len() {
			k, v := f.Header.GetAt(i)
			dst = appendEscaped(dst, k, esc, true)
			dst = append(dst, ':')
			dst = appendEscaped(dst, v, esc, false)
			dst = append(dst, '\n')
		}
	}
	dst = append(dst, '\n')
	dst = append(dst, f.Body...)
	return append(dst, 0)
}

// appendEscaped appends a header name or value. Without an escape for
// it, a CR is written as is, except at the end of a value, where it would
// read as part of a CR LF.
func appendEscaped(dst []byte, s string, esc Escaping, name bool) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\n' && esc == Escape10:
			continue
		case c == ':' && name && esc == Escape10:
			continue // a 1.0 name cannot hold a colon
		case c == '\r' && esc != Escape12:
			if !name && i == len(s)-1 {
				continue
			}
		case esc == Escape10:
		case c == '\n':
			dst = append(dst, '\\', 'n')
			continue
		case c == ':':
			dst = append(dst, '\\', 'c')
			continue
		case c == '\\':
			dst = append(dst, '\\', '\\')
			continue
		case c == '\r':
			dst = append(dst, '\\', 'r')
			continue
		}
		dst = append(dst, c)
	}
	return dst
}
