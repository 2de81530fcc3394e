package console

import (
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/unifiedms/ums/core/auth"
	"github.com/unifiedms/ums/internal/clock"
)

// cookieName names the session cookie.
const cookieName = "ums_session"

// maxSessions bounds the sessions kept: logging in again and again cannot
// grow the server's memory without end; the least recently used go first.
const maxSessions = 10000

// session is one logged-in browser. The credentials stay on the server,
// only for the session's life, so that the APIs can check each request as
// that user (a changed password or a deleted user ends the session).
type session struct {
	token      string
	name, pass string
	user       *auth.User
	lastUsed   time.Time
}

type sessions struct {
	clk clock.Clock
	ttl time.Duration

	mu   sync.Mutex
	byID map[string]*session
}

func newSessions(clk clock.Clock, ttl time.Duration) *sessions {
	return &sessions{clk: clk, ttl: ttl, byID: map[string]*session{}}
}

// add starts a session for a user who logged in and returns its token.
func (ss *sessions) add(name, pass string, u *auth.User) (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	now := ss.clk.Now()
	s := &session{token: base64.RawURLEncoding.EncodeToString(b[:]), name: name, pass: pass, user: u, lastUsed: now}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if len(ss.byID) >= maxSessions {
		var oldest *session
		for _, o := range ss.byID {
			if now.Sub(o.lastUsed) > ss.ttl {
				delete(ss.byID, o.token)
			} else if oldest == nil || o.lastUsed.Before(oldest.lastUsed) {
				oldest = o
			}
		}
		if len(ss.byID) >= maxSessions && oldest != nil {
			delete(ss.byID, oldest.token)
		}
	}
	ss.byID[s.token] = s
	return s.token, nil
}

// fromRequest returns the live session the request's cookie names, or nil.
func (ss *sessions) fromRequest(r *http.Request) *session {
	ck, err := r.Cookie(cookieName)
	if err != nil || ck.Value == "" {
		return nil
	}
	now := ss.clk.Now()
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s := ss.byID[ck.Value]
	if s == nil {
		return nil
	}
	if now.Sub(s.lastUsed) > ss.ttl {
		delete(ss.byID, s.token)
		return nil
	}
	s.lastUsed = now
	c := *s
	return &c
}

func (ss *sessions) remove(token string) {
	ss.mu.Lock()
	delete(ss.byID, token)
	ss.mu.Unlock()
}

// consoleUser reports whether u may use the console, as RabbitMQ's
// management UI decides it.
func consoleUser(u *auth.User) bool {
	return u.HasTag("administrator") || u.HasTag("management") || u.HasTag("monitoring") || u.HasTag("policymaker")
}

// session returns the request's session after checking its credentials
// again (the user may have been deleted, its password or tags changed),
// or nil.
func (c *Console) session(r *http.Request) *session {
	s := c.sessions.fromRequest(r)
	if s == nil {
		return nil
	}
	u, err := c.Users.Authenticate(s.name, s.pass, auth.LoopbackHostPort(r.RemoteAddr))
	if err != nil || !consoleUser(u) {
		c.sessions.remove(s.token)
		return nil
	}
	s.user = u
	return s
}

// Wrap puts the credentials of the request's session on requests for the
// APIs (/api/) that carry no Authorization of their own, so the APIs check
// them as the session's user. Such requests must come from the console's
// own origin: a page of another site cannot use the cookie.
func (c *Console) Wrap(next http.Handler) http.Handler {
	cop := http.NewCrossOriginProtection()
	guarded := cop.Handler(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/api/") && r.Header.Get("Authorization") == "" {
			if s := c.sessions.fromRequest(r); s != nil {
				r = r.Clone(r.Context())
				r.SetBasicAuth(s.name, s.pass)
				guarded.ServeHTTP(w, r)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

type loginView struct {
	Error, Next, User, Version string
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	c.renderLogin(w, http.StatusOK, loginView{Next: localTarget(r.URL.Query().Get("next")), Version: c.Version})
}

func (c *Console) renderLogin(w http.ResponseWriter, status int, v loginView) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if err := c.login.Execute(w, v); err != nil {
		c.Logger.Error("console: rendering the login page", "err", err)
	}
}

// doLogin checks the form's user and password and starts a session.
func (c *Console) doLogin(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		c.renderLogin(w, http.StatusBadRequest, loginView{Error: "The login form could not be read.", Version: c.Version})
		return
	}
	name, pass := r.PostForm.Get("username"), r.PostForm.Get("password")
	next := localTarget(r.PostForm.Get("next"))
	v := loginView{Next: next, User: name, Version: c.Version}
	u, err := c.Users.Authenticate(name, pass, auth.LoopbackHostPort(r.RemoteAddr))
	if err != nil {
		if c.LoginFailed != nil {
			// The request's own goroutine waits out the login failure
			// delay (or the browser's going away).
			select {
			case <-c.LoginFailed():
			case <-r.Context().Done():
			}
		}
		v.Error = "Login failed: unknown user or wrong password."
		c.renderLogin(w, http.StatusUnauthorized, v)
		return
	}
	if !consoleUser(u) {
		v.Error = "Login failed: the user needs the administrator, management or monitoring tag."
		c.renderLogin(w, http.StatusForbidden, v)
		return
	}
	token, err := c.sessions.add(name, pass, u)
	if err != nil {
		v.Error = "Login failed: no session could be started."
		c.renderLogin(w, http.StatusInternalServerError, v)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: token, Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (c *Console) doLogout(w http.ResponseWriter, r *http.Request) {
	if ck, err := r.Cookie(cookieName); err == nil {
		c.sessions.remove(ck.Value)
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// localTarget keeps a redirect target on this server: a path, never
// another site ("//host", "/\host" or a full URL).
func localTarget(target string) string {
	if !strings.HasPrefix(target, "/") || strings.HasPrefix(target, "//") || strings.Contains(target, "\\") {
		return "/"
	}
	if u, err := url.Parse(target); err != nil || u.Host != "" || u.Scheme != "" {
		return "/"
	}
	return target
}
