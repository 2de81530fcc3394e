package webhook

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// The lean client posts webhooks over HTTP/1.1 without net/http's client.
//
// net/http's Transport hands every request to a connection's writeLoop
// goroutine and gets the answer back from its readLoop goroutine, and
// builds a Request, Header maps and a Response on the way: about a third
// of the server's CPU per notification in the end-to-end benchmark. Here
// the sending goroutine writes the whole request (request line, headers
// and body in one buffer, one write) and reads the response itself on the
// same connection, keeping only the few header values deliver reads.
//
// Idle keep-alive connections are pooled per scheme and host, newest on
// top. A pooled connection the server has closed in the meantime shows as
// a failed write or as EOF or a reset before the first response byte; the
// request is then sent once more on a new connection. That retries a
// POST, which is safe only because it cannot have been answered, and the
// receiver deduplicates by X-UMS-Id anyway.

const (
	// defaultMaxIdlePerHost bounds the idle connections kept per host.
	defaultMaxIdlePerHost = 256
	// defaultMaxIdle bounds the idle connections kept in all.
	defaultMaxIdle = 1024
	// defaultIdleTimeout closes connections idle for longer.
	defaultIdleTimeout = 90 * time.Second
	// maxResponseHeader bounds a response's status line and headers.
	maxResponseHeader = 64 << 10
	// readBufferSize is the size of a connection's read buffer.
	readBufferSize = 4 << 10
	// maxKeptRequestBuffer is the largest request buffer kept for reuse.
	maxKeptRequestBuffer = 64 << 10
)

// poolKey names the destination of pooled connections.
type poolKey struct {
	tls  bool
	host string // the URL's host, with its port if it has one
}

// clientConn is a connection of the lean client.
type clientConn struct {
	conn      net.Conn
	lr        lineReader
	key       poolKey
	idleSince time.Time
	reused    bool
	// interrupt makes a blocked write or read return.
	interrupt func()
}

// leanClient is the HTTP/1.1 client of Sender when its configuration
// allows it (see leanTransport).
type leanClient struct {
	dialer     *net.Dialer
	tlsConfig  *tls.Config // nil: the default; cloned for every connection
	maxIdle    int         // per host; 0 disables keep-alive
	maxIdleAll int         // in all; 0 means no limit
	maxHeader  int

	mu          sync.Mutex
	idleTimeout time.Duration             // REQUIRES: mu
	now         func() time.Time          // of idle times; REQUIRES: mu
	idle        map[poolKey][]*clientConn // REQUIRES: mu
	nidle       int                       // REQUIRES: mu; connections in idle
	reaper      *time.Timer               // REQUIRES: mu; nil when not armed
}

// leanTransport reports whether the lean client can stand in for t, the
// transport of Config (nil when none was given): it cannot go through a
// proxy, dial with another function, limit connections per host, time the
// response header separately, or speak only HTTP/2. Unless allowPrivate,
// New replaces t's proxy and dial functions by the guard anyway.
//
// Of t it takes TLSClientConfig, DisableKeepAlives, MaxIdleConnsPerHost,
// IdleConnTimeout and MaxResponseHeaderBytes. The rest does not apply or
// is covered otherwise: the timeout bounds the TLS handshake too, no
// request asks for compression or 100-continue, and HTTP/2 is not offered
// (ALPN http/1.1 only).
func leanTransport(t *http.Transport, allowPrivate bool) bool {
	if t == nil {
		return true
	}
	if allowPrivate && (t.Proxy != nil || t.DialContext != nil || t.Dial != nil || t.DialTLSContext != nil || t.DialTLS != nil) {
		return false
	}
	if t.Protocols != nil && !t.Protocols.HTTP1() {
		return false
	}
	return t.MaxConnsPerHost == 0 && t.ResponseHeaderTimeout == 0
}

// newLeanClient returns the lean client for t (nil for the defaults),
// dialling with dialer.
func newLeanClient(t *http.Transport, dialer *net.Dialer) *leanClient {
	c := &leanClient{
		dialer:      dialer,
		maxIdle:     defaultMaxIdlePerHost,
		maxIdleAll:  defaultMaxIdle,
		idleTimeout: defaultIdleTimeout,
		maxHeader:   maxResponseHeader,
		now:         time.Now,
		idle:        make(map[poolKey][]*clientConn),
	}
	if t != nil {
		if t.TLSClientConfig != nil {
			c.tlsConfig = t.TLSClientConfig.Clone()
		}
		// The meanings net/http gives these fields and their zero values.
		c.maxIdleAll = max(t.MaxIdleConns, 0)
		c.maxIdle = t.MaxIdleConnsPerHost
		if c.maxIdle == 0 {
			c.maxIdle = http.DefaultMaxIdleConnsPerHost
		}
		if t.DisableKeepAlives || c.maxIdle < 0 {
			c.maxIdle = 0
		}
		c.idleTimeout = t.IdleConnTimeout
		if t.MaxResponseHeaderBytes > 0 {
			c.maxHeader = int(min(t.MaxResponseHeaderBytes, 1<<30))
		}
	}
	return c
}

// leanURL reports whether the lean client can send to u as net/http
// would: no user info (net/http would add basic authentication), and a
// host and request URI of printable ASCII (net/http converts international
// host names).
func leanURL(u *url.URL) bool {
	if u.User != nil || u.Opaque != "" {
		return false
	}
	return printableASCII(u.Host) && printableASCII(u.EscapedPath()) && printableASCII(u.RawQuery)
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// requestBufs hold requests while they are built and written.
var requestBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// post sends the request in req (built by appendRequest) to u and reads
// the response head into r and the start of its body into answer. It
// returns how many bytes of answer it filled. Errors of the body are not
// returned: the status decides, and the connection is closed.
func (c *leanClient) post(ctx context.Context, u *url.URL, deadline time.Time, req []byte, r *response, answer []byte) (int, error) {
	key := poolKey{tls: u.Scheme == "https", host: u.Host}
	cc := c.get(key)
	for {
		if cc == nil {
			var err error
			if cc, err = c.dial(ctx, key, u.Hostname(), u.Port(), deadline); err != nil {
				return 0, err
			}
		}
		n, retry, err := c.exchange(ctx, cc, deadline, req, r, answer)
		if retry && ctx.Err() == nil {
			cc = nil
			continue
		}
		return n, err
	}
}

// exchange writes req on cc and reads the response. retry reports that
// cc was a reused connection found dead before any response byte, so the
// request can go again on a new connection; cc is closed then.
func (c *leanClient) exchange(ctx context.Context, cc *clientConn, deadline time.Time, req []byte, r *response, answer []byte) (n int, retry bool, err error) {
	conn := cc.conn
	conn.SetDeadline(deadline)
	stop := func() bool { return true }
	if ctx.Done() != nil {
		// A cancelled caller interrupts a blocked write or read.
		stop = context.AfterFunc(ctx, cc.interrupt)
	}
	_, werr := conn.Write(req)
	// A server may answer (and close) before it has read all of a
	// request: look for an answer even when the write failed.
	if _, err = cc.lr.br.Peek(1); err != nil {
		stop()
		conn.Close()
		if werr != nil {
			err = werr
		}
		return 0, cc.reused && deadConn(werr, err), err
	}
	if err = cc.lr.readResponse(r, c.maxHeader); err != nil {
		stop()
		conn.Close()
		return 0, false, err
	}
	// The status decides; a body cut short only costs the connection.
	limit := len(answer) + maxDrain
	total := 0
	var berr error
	for total < limit {
		b, err := cc.lr.next(r, limit-total)
		n += copy(answer[n:], b)
		total += len(b)
		if err != nil {
			berr = err
			break
		}
	}
	if berr == nil {
		// Read to the limit: the body may end right here.
		_, berr = cc.lr.next(r, 0)
	}
	reuse := berr == io.EOF && r.keepAlive && werr == nil && cc.lr.br.Buffered() == 0
	if !stop() || !reuse {
		// Cancelled (the deadline may be in the past now), cut short,
		// closing, or data the server sent unasked.
		conn.Close()
		return n, false, nil
	}
	c.put(cc)
	return n, false, nil
}

// deadConn reports whether a write error werr or a read error rerr
// before the first response byte means the server had closed the
// connection.
func deadConn(werr, rerr error) bool {
	if werr != nil && !isTimeout(werr) {
		return true
	}
	return errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF) ||
		errors.Is(rerr, syscall.ECONNRESET) || errors.Is(rerr, syscall.ECONNABORTED) || errors.Is(rerr, syscall.EPIPE)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// aLongTimeAgo is a deadline that has passed.
var aLongTimeAgo = time.Unix(1, 0)

// dial connects to host:port (the scheme's port when empty), through TLS
// for https, before deadline.
func (c *leanClient) dial(ctx context.Context, key poolKey, host, port string, deadline time.Time) (*clientConn, error) {
	if port == "" {
		port = "80"
		if key.tls {
			port = "443"
		}
	}
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	conn, err := c.dialer.DialContext(ctx, "tcp", net.JoinHostPort(host, port))
	if err != nil {
		return nil, err
	}
	if key.tls {
		var cfg *tls.Config
		if c.tlsConfig != nil {
			cfg = c.tlsConfig.Clone()
		} else {
			cfg = new(tls.Config)
		}
		if cfg.ServerName == "" {
			cfg.ServerName = host
		}
		cfg.NextProtos = []string{"http/1.1"}
		tc := tls.Client(conn, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, err
		}
		conn = tc
	}
	cc := &clientConn{conn: conn, lr: lineReader{br: bufio.NewReaderSize(conn, readBufferSize)}, key: key}
	cc.interrupt = func() { conn.SetDeadline(aLongTimeAgo) }
	return cc, nil
}

// get takes the newest idle connection to key, or returns nil.
func (c *leanClient) get(key poolKey) *clientConn {
	var expired []*clientConn
	c.mu.Lock()
	list := c.idle[key]
	var cc *clientConn
	if n := len(list); n > 0 {
		cc = list[n-1]
		list[n-1] = nil
		list = list[:n-1]
		c.nidle--
		if c.idleTimeout > 0 && c.now().Sub(cc.idleSince) >= c.idleTimeout {
			// The newest has expired, so have all.
			expired = append(expired, list...)
			expired = append(expired, cc)
			c.nidle -= len(list)
			clear(list)
			list, cc = list[:0], nil
		}
		// An empty list stays, to be appended to without allocating.
		c.idle[key] = list
	}
	c.mu.Unlock()
	for _, e := range expired {
		e.conn.Close()
	}
	if cc != nil {
		cc.reused = true
	}
	return cc
}

// put returns cc to the idle pool, or closes it when its host or the pool
// has enough idle connections. (net/http closes the least recently used
// one instead when the pool is full; here the pool's limit only guards
// against many hosts keeping a few connections each.)
func (c *leanClient) put(cc *clientConn) {
	c.mu.Lock()
	list := c.idle[cc.key]
	if len(list) >= c.maxIdle || (c.maxIdleAll > 0 && c.nidle >= c.maxIdleAll) {
		c.mu.Unlock()
		cc.conn.Close()
		return
	}
	cc.idleSince = c.now()
	c.idle[cc.key] = append(list, cc)
	c.nidle++
	if c.idleTimeout > 0 && c.reaper == nil {
		c.reaper = time.AfterFunc(c.idleTimeout, c.reap)
	}
	c.mu.Unlock()
}

// reap closes the connections idle for longer than the idle timeout and
// arms itself again for the oldest of the others.
func (c *leanClient) reap() {
	var expired []*clientConn
	c.mu.Lock()
	now := c.now()
	var oldest time.Time
	for key, list := range c.idle {
		// Oldest first: the expired ones are a prefix.
		i := 0
		for i < len(list) && now.Sub(list[i].idleSince) >= c.idleTimeout {
			i++
		}
		expired = append(expired, list[:i]...)
		c.nidle -= i
		if i == len(list) {
			delete(c.idle, key)
			continue
		}
		kept := append(list[:0], list[i:]...)
		clear(list[len(kept):])
		c.idle[key] = kept
		if oldest.IsZero() || kept[0].idleSince.Before(oldest) {
			oldest = kept[0].idleSince
		}
	}
	c.reaper = nil
	if !oldest.IsZero() {
		c.reaper = time.AfterFunc(max(oldest.Add(c.idleTimeout).Sub(now), time.Millisecond), c.reap)
	}
	c.mu.Unlock()
	for _, cc := range expired {
		cc.conn.Close()
	}
}

// closeIdle closes every idle connection.
func (c *leanClient) closeIdle() {
	c.mu.Lock()
	idle := c.idle
	c.idle = make(map[poolKey][]*clientConn)
	c.nidle = 0
	if c.reaper != nil {
		c.reaper.Stop()
		c.reaper = nil
	}
	c.mu.Unlock()
	for _, list := range idle {
		for _, cc := range list {
			cc.conn.Close()
		}
	}
}

// idleCount returns the number of idle connections.
func (c *leanClient) idleCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nidle
}

// appendRequest appends the POST of body to u, with the header values id
// and the signature of body at t, as net/http writes it for deliver's http.Request (header names
// in canonical form, in net/http's order: Host, User-Agent,
// Content-Length, then the others sorted), but without Accept-Encoding:
// the answer is read as it comes.
func appendRequest(b []byte, u *url.URL, id string, s *signer, t time.Time, body []byte) []byte {
	b = append(b, "POST "...)
	if p := u.EscapedPath(); p != "" {
		b = append(b, p...)
	} else {
		b = append(b, '/')
	}
	if u.ForceQuery || u.RawQuery != "" {
		b = append(b, '?')
		b = append(b, u.RawQuery...)
	}
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, requestHost(u)...)
	b = append(b, "\r\nUser-Agent: "+UserAgent+"\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	b = append(b, "\r\nContent-Type: application/json\r\n"...)
	b = append(b, keyID...)
	b = append(b, ": "...)
	b = append(b, id...)
	b = append(b, "\r\n"...)
	b = append(b, keySignature...)
	b = append(b, ": "...)
	b = s.appendSign(b, t, body)
	b = append(b, "\r\n\r\n"...)
	return append(b, body...)
}

// requestHost is the Host header for u: its host, with the port unless it
// is the scheme's default.
func requestHost(u *url.URL) string {
	h := u.Host
	if n := len(h); n > 0 && h[n-1] == ':' {
		h = h[:n-1]
	}
	port := ":80"
	if u.Scheme == "https" {
		port = ":443"
	}
	if n := len(h) - len(port); n > 0 && h[n:] == port {
		h = h[:n]
	}
	return h
}
