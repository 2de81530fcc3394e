package wire

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/go-stomp/stomp/v3/frame"
)

// wireCase is a frame on the wire and what reading it gives, labelled with
// the STOMP 1.2 section it exercises.
type wireCase struct {
	name string
	raw  string
	esc  Escaping
	lim  Limits
	// want: command, then header name/value pairs; body after them.
	cmd     string
	headers []string
	body    string
	err     error // wanted error kind instead
}

var wireCases = []wireCase{
	{name: "connect 1.2 (Connecting)", raw: "CONNECT\naccept-version:1.2\nhost:/\n\n\x00",
		cmd: "CONNECT", headers: []string{"accept-version", "1.2", "host", "/"}},
	{name: "CONNECT is not unescaped (Value Encoding)", raw: "CONNECT\nlogin:a\\cb\n\n\x00", esc: Escape12,
		cmd: "CONNECT", headers: []string{"login", "a\\cb"}},
	{name: "send with CRLF (Augmented BNF)", raw: "SEND\r\ndestination:/queue/a\r\n\r\nhi\x00",
		cmd: "SEND", headers: []string{"destination", "/queue/a"}, body: "hi"},
	{name: "content-length with NUL in body (Header content-length)", raw: "SEND\ndestination:/queue/a\ncontent-length:3\n\na\x00b\x00",
		cmd: "SEND", headers: []string{"destination", "/queue/a", "content-length", "3"}, body: "a\x00b"},
	{name: "escapes 1.2 (Value Encoding)", raw: "SEND\na\\cb:c\\nd\\re\\\\\n\n\x00", esc: Escape12,
		cmd: "SEND", headers: []string{"a:b", "c\nd\re\\"}},
	{name: "\\r undefined in 1.1", raw: "SEND\na:\\r\n\n\x00", esc: Escape11, err: ErrBadEscape},
	{name: "undefined escape is fatal (Value Encoding)", raw: "SEND\na:\\t\n\n\x00", esc: Escape12, err: ErrBadEscape},
	{name: "1.0 keeps backslashes", raw: "SEND\na:\\t\n\n\x00", esc: Escape10,
		cmd: "SEND", headers: []string{"a", "\\t"}},
	{name: "repeated header keeps all, first wins (Repeated Header Entries)", raw: "SEND\nfoo:1\nfoo:2\n\n\x00",
		cmd: "SEND", headers: []string{"foo", "1", "foo", "2"}},
	{name: "value with colon", raw: "SEND\ndestination:/queue/a:b\n\n\x00", esc: Escape10,
		cmd: "SEND", headers: []string{"destination", "/queue/a:b"}},
	{name: "unknown command", raw: "FOO\n\n\x00", err: ErrInvalidCommand},
	{name: "server command from a client", raw: "MESSAGE\n\n\x00", err: ErrInvalidCommand},
	{name: "header without colon", raw: "SEND\nnocolon\n\n\x00", err: ErrMalformed},
	{name: "empty header name", raw: "SEND\n:v\n\n\x00", err: ErrMalformed},
	{name: "bad content-length", raw: "SEND\ncontent-length:x\n\n\x00", err: ErrMalformed},
	{name: "negative content-length", raw: "SEND\ncontent-length:-1\n\n\x00", err: ErrMalformed},
	{name: "no NUL after content-length body", raw: "SEND\ncontent-length:1\n\nab\x00", err: ErrMalformed},
	{name: "content-length over the limit is refused before reading", raw: "SEND\ncontent-length:2000000000\n\n",
		err: ErrFrameTooLarge},
	{name: "body over the limit", raw: "SEND\n\n" + strings.Repeat("x", 200) + "\x00", lim: Limits{MaxFrameSize: 100}, err: ErrFrameTooLarge},
	{name: "too many headers", raw: "SEND\na:1\nb:2\nc:3\n\n\x00", lim: Limits{MaxHeaders: 2}, err: ErrTooManyHeaders},
	{name: "header too long", raw: "SEND\na:" + strings.Repeat("x", 100) + "\n\n\x00", lim: Limits{MaxHeaderLength: 50}, err: ErrHeaderTooLong},
	{name: "header longer than the read buffer", raw: "SEND\na:" + strings.Repeat("x", 10000) + "\n\n\x00", lim: Limits{MaxHeaderLength: 5000}, err: ErrHeaderTooLong},
	{name: "long header within limits", raw: "SEND\na:" + strings.Repeat("x", 10000) + "\n\n\x00",
		cmd: "SEND", headers: []string{"a", strings.Repeat("x", 10000)}},
	{name: "truncated frame", raw: "SEND\na:1\n", err: io.ErrUnexpectedEOF},
}

func TestStompWireCases(t *testing.T) {
	for _, c := range wireCases {
		t.Run(c.name, func(t *testing.T) {
			r := NewReader(bufio.NewReader(strings.NewReader(c.raw)), c.lim)
			r.Escaping = c.esc
			f, err := r.Read()
			if c.err != nil {
				if !errors.Is(err, c.err) {
					t.Fatalf("error %v, want %v", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if f.Command != c.cmd || string(f.Body) != c.body {
				t.Fatalf("frame %q body %q", f.Command, f.Body)
			}
			if f.Header.Len()*2 != len(c.headers) {
				t.Fatalf("%d headers, want %v", f.Header.Len(), c.headers)
			}
			for i := range f.Header.Len() {
				k, v := f.Header.GetAt(i)
				if k != c.headers[2*i] || v != c.headers[2*i+1] {
					t.Fatalf("header %d %q:%q, want %q:%q", i, k, v, c.headers[2*i], c.headers[2*i+1])
				}
			}
		})
	}
}

func TestStompWireHeartBeats(t *testing.T) {
	r := NewReader(bufio.NewReader(strings.NewReader("\n\r\nSEND\n\n\x00\n")), Limits{})
	for i, want := range []string{"", "", "SEND", ""} {
		f, err := r.Read()
		if err != nil {
			t.Fatal(err)
		}
		if (f == nil) != (want == "") || (f != nil && f.Command != want) {
			t.Fatalf("read %d: %v, want %q", i, f, want)
		}
	}
	if _, err := r.Read(); err != io.EOF {
		t.Fatalf("at the end: %v", err)
	}
}

// What AppendFrame writes, go-stomp's client reader reads back unchanged.
func TestStompWireEncodeReadByGoStomp(t *testing.T) {
	f := frame.New("MESSAGE", "destination", "/queue/a:b", "weird\nname", "x\\y\rz", "content-length", "3")
	f.Body = []byte("a\x00b")
	raw := AppendFrame(nil, f, Escape12)
	got, err := frame.NewReader(bytes.NewReader(raw)).Read()
	if err != nil {
		t.Fatal(err)
	}
	if got.Header.Get("destination") != "/queue/a:b" || got.Header.Get("weird\nname") != "x\\y\rz" || string(got.Body) != "a\x00b" {
		t.Fatalf("%+v", got)
	}
	// 1.0 cannot carry line breaks: they are dropped, not sent raw.
	raw = AppendFrame(nil, frame.New("MESSAGE", "a", "x\ny"), Escape10)
	if string(raw) != "MESSAGE\na:xy\n\n\x00" {
		t.Fatalf("%q", raw)
	}
}
