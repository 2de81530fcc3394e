// Package wire reads and writes STOMP 1.0, 1.1 and 1.2 frames as
// go-stomp's frame.Frame values, within limits. It is a pure codec: it
// takes a bufio.Reader or a byte slice and knows nothing of connections,
// sessions or the core.
//
// go-stomp's own frame.Reader is not used to read from clients: it
// allocates the body from the untrusted content-length (up to 4 GiB)
// before reading it, reads header lines and NUL-terminated bodies without
// bound, unescapes every frame whatever the version (STOMP 1.0 and the
// CONNECT frame are not escaped, STOMP 1.2 section "Value Encoding"), and
// lets undefined escapes such as \t through, which the spec makes a fatal
// protocol error. Reader checks each length before it allocates.
//
// # Frame layout (STOMP 1.2 section "Augmented BNF")
//
//	command EOL
//	*( header EOL )      header = name ":" value
//	EOL
//	body NUL             body is content-length octets when given,
//	                     else everything up to the first NUL
//	*( EOL )             heart-beats and padding between frames
//
// EOL is LF or CR LF. Header escaping (1.1: \n \c \\, 1.2 adds \r) applies
// to every frame but CONNECT and CONNECTED; a repeated header keeps its
// first value (frame.Header.Get returns the first).
package wire
