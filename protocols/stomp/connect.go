package stomp

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/go-stomp/stomp/v3/frame"

	"github.com/unifiedms/ums/core"
	"github.com/unifiedms/ums/core/auth"
	"github.com/unifiedms/ums/internal/connlimit"
	"github.com/unifiedms/ums/protocols/stomp/wire"
)

// CONNECT: version negotiation, heart-beats, login and the vhost, then
// CONNECTED.

// supportedVersions, in order of preference (highest first).
var supportedVersions = []string{"1.2", "1.1", "1.0"}

// heartBeatGrace is added to the heart-beat period the client promised
// before it is taken for gone, for network delays.
const heartBeatGrace = time.Second

// connect handles the first frame; false ends the connection.
func (c *conn) connect(f *frame.Frame) bool {
	if f.Command != frame.CONNECT && f.Command != frame.STOMP {
		c.fail(protoErr("Bad CONNECT", "expected CONNECT or STOMP, got %s", f.Command), f)
		return false
	}
	version, ok := negotiate(f.Header)
	if !ok {
		ef := errorFrame(protoErr("Version mismatch", "supported protocol versions are 1.0, 1.1 and 1.2; the client accepts %q", f.Header.Get(frame.AcceptVersion)), f)
		ef.Header.Set(frame.Version, "1.0,1.1,1.2")
		c.writeFrame(ef)
		return false
	}
	c.version, c.esc = version, wire.ForVersion(version)
	c.rd.Escaping = c.esc
	var cx, cy time.Duration
	if hb, ok := f.Header.Contains(frame.HeartBeat); ok && version != "1.0" {
		var err error
		if cx, cy, err = frame.ParseHeartBeat(hb); err != nil {
			c.fail(protoErr("Bad CONNECT", "invalid heart-beat header %q", hb), f)
			return false
		}
	}
	if err := connlimit.Refused(c.nc); err != nil {
		c.logAt(slog.LevelWarn, "STOMP connection refused", "reason", err)
		c.fail(protoErr("not_allowed", "%s", err), f)
		return false
	}
	user, pass := f.Header.Get(frame.Login), f.Header.Get(frame.Passcode)
	certUser := ""
	if _, given := f.Header.Contains(frame.Login); !given {
		// A verified client certificate names the user, as RabbitMQ's
		// ssl_cert_login; otherwise the default user.
		certUser = auth.CertificateName(c.nc)
		user = certUser
		if certUser == "" && c.srv.DefaultUser == "-" {
			c.waitLoginFailed()
			c.fail(protoErr("Access refused", "a login is required"), f)
			return false
		}
		if certUser == "" {
			user, pass = c.srv.DefaultUser, c.srv.DefaultPass
		}
	}
	var err error
	if certUser != "" {
		_, err = c.srv.Users.AuthenticateCertificate(certUser, auth.Loopback(c.nc.RemoteAddr()))
	} else {
		_, err = c.srv.Users.Authenticate(user, pass, auth.Loopback(c.nc.RemoteAddr()))
	}
	if err != nil {
		c.waitLoginFailed()
		if errors.Is(err, auth.ErrLoopbackOnly) {
			c.logAt(slog.LevelWarn, "STOMP login refused: user can only connect via localhost", "user", user)
			c.fail(protoErr("Access refused", "user '%s' can only connect via localhost", user), f)
			return false
		}
		c.logAt(slog.LevelWarn, "STOMP login refused: invalid credentials", "user", user)
		c.fail(protoErr("Access refused", "login failed for user '%s'", user), f)
		return false
	}
	vname := c.srv.DefaultVhost
	if h, ok := f.Header.Contains(frame.Host); ok && h != "" {
		vname = h
	}
	v, ok := c.srv.Broker.Vhost(vname)
	if !ok || !c.srv.Users.CanAccessVhost(user, vname) {
		c.logAt(slog.LevelWarn, "STOMP login refused: no access to vhost", "user", user, "vhost", vname)
		c.fail(protoErr("Access refused", "virtual host '%s' access denied for user '%s'", vname, user), f)
		return false
	}
	if c.srv.isClosing() {
		c.fail(protoErr("connection_forced", "server shutting down"), f)
		return false
	}
	adm, err := c.srv.Broker.Admit(user)
	if err != nil {
		c.logAt(slog.LevelWarn, "STOMP login refused", "user", user, "reason", err)
		c.fail(err, f)
		return false
	}
	c.user, c.vhost = user, v
	c.session = "session-" + randomID()
	peer, local := c.nc.RemoteAddr().String(), c.nc.LocalAddr().String()
	c.cc = v.Open(user, core.ConnInfo{
		Name: peer + " -> " + local, Protocol: "STOMP " + version,
		Peer: peer, Local: local, ConnectedAt: c.srv.clock.Now(),
		Close: c.kill, Authz: c.srv.Users, Admission: adm,
	})
	c.cs = c.cc.NewSession()
	c.router.CountFor(c.cc)
	c.out.Write = c.send
	c.out.Kick = c.cs.Kick

	// Heart-beats (STOMP 1.2 section Heart-beating): the server sends
	// every cy if the client wants them, and expects the client's every
	// cx; it can do any period, so it takes the client's.
	c.sendEvery = cy
	if cx > 0 {
		c.readLimit = 2*cx + heartBeatGrace
	}
	if c.readLimit == 0 {
		if err := c.nc.SetReadDeadline(time.Time{}); err != nil {
			return false
		}
	}
	resp := frame.New(frame.CONNECTED, frame.Version, version, frame.Session, c.session, frame.Server, c.srv.Product+"/"+serverVersion)
	if version != "1.0" {
		resp.Header.Set(frame.HeartBeat, millis(cy)+","+millis(cx))
	}
	c.writeFrame(resp)
	c.startHeartBeats()
	c.logAt(slog.LevelDebug, "STOMP client connected", "version", version)
	return true
}

// waitLoginFailed holds the answer to a failed login for the broker's
// login failure delay, on this connection's own goroutine (so the client
// pays the time and other logins go on); a shutdown cuts it short.
func (c *conn) waitLoginFailed() {
	select {
	case <-c.srv.Broker.LoginFailed():
	case <-c.srv.done:
	}
}

// serverVersion is the version in CONNECTED's server header.
const serverVersion = "1.0"

// negotiate picks the highest version both sides speak; a CONNECT without
// accept-version is STOMP 1.0.
func negotiate(h *frame.Header) (string, bool) {
	av, ok := h.Contains(frame.AcceptVersion)
	if !ok {
		return "1.0", true
	}
	offered := strings.Split(av, ",")
	for _, v := range supportedVersions {
		for _, o := range offered {
			if strings.TrimSpace(o) == v {
				return v, true
			}
		}
	}
	return "", false
}

func millis(d time.Duration) string {
	return itoa(int64(d / time.Millisecond))
}

func randomID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
