// Package console is the web console: server-rendered pages (html/template)
// and one small script that polls the management and notification APIs,
// all embedded in the binary (no CDN, works offline).
//
// A user logs in with a UMS user tagged administrator, management or
// monitoring. The server keeps the session (an HttpOnly, SameSite=Strict
// cookie names it); the browser keeps nothing else. The session's
// credentials are put on the requests the script makes to /api, so the
// APIs check every action exactly as for a client sending basic auth:
// monitoring users see everything and change nothing. Requests that a
// session cookie authenticates are refused when they come from another
// origin (http.CrossOriginProtection).
//
// Files: console.go (pages), session.go (login, sessions), web/ (templates,
// script, style).
package console

import (
	"embed"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/unifiedms/ums/core/auth"
	"github.com/unifiedms/ums/internal/clock"
)

//go:embed web
var webFS embed.FS

// Console serves the web console. Users must be set.
type Console struct {
	Users *auth.Store
	// Clock times sessions (nil: the system clock).
	Clock clock.Clock
	// SessionTTL ends a session left unused this long (0: 8 hours, as
	// RabbitMQ's login_session_timeout).
	SessionTTL time.Duration
	// PollInterval is how often pages refresh their data (0: 5 seconds).
	PollInterval time.Duration
	// LoginFailed, when set, returns a channel closed once a failed login
	// may be answered (the login failure delay).
	LoginFailed func() <-chan struct{}
	// Version is shown in the page footer.
	Version string
	Logger  *slog.Logger

	sessions *sessions
	pages    map[string]*template.Template
	login    *template.Template
}

// page is one page of the navigation.
type page struct {
	path, file, title, section string
}

// pages lists the console's pages; the section groups the navigation.
var pages = []page{
	{"/", "overview.html", "Overview", "Broker"},
	{"/connections", "connections.html", "Connections", "Broker"},
	{"/channels", "channels.html", "Channels", "Broker"},
	{"/exchanges", "exchanges.html", "Exchanges", "Broker"},
	{"/exchange", "exchange.html", "Exchange", ""},
	{"/queues", "queues.html", "Queues", "Broker"},
	{"/queue", "queue.html", "Queue", ""},
	{"/bindings", "bindings.html", "Bindings", "Broker"},
	{"/users", "users.html", "Users", "Admin"},
	{"/vhosts", "vhosts.html", "Virtual hosts", "Admin"},
	{"/notifications", "notifications.html", "Notifications", "Notifications"},
	{"/notification", "notification.html", "Notification", ""},
	{"/dead-letters", "deadletters.html", "Dead letters", "Notifications"},
	{"/templates", "templates.html", "Templates", "Notifications"},
	{"/tenants", "tenants.html", "Tenants", "Notifications"},
}

// navItem is a link of the navigation bar.
type navItem struct {
	Path, Title string
	Active      bool
}

type navSection struct {
	Name  string
	Items []navItem
}

// view is what every page template gets.
type view struct {
	Title, Page, User, Version string
	CanChange, Admin           bool
	Vhost                      string // the notification pages' vhost (?vhost=, default "/")
	PollMillis                 int64
	Nav                        []navSection
	Params                     map[string]string // the object the page shows
}

func (c *Console) init() error {
	if c.Clock == nil {
		c.Clock = clock.Real
	}
	if c.SessionTTL == 0 {
		c.SessionTTL = 8 * time.Hour
	}
	if c.PollInterval == 0 {
		c.PollInterval = 5 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	c.sessions = newSessions(c.Clock, c.SessionTTL)
	layout, err := template.ParseFS(webFS, "web/layout.html")
	if err != nil {
		return err
	}
	c.pages = map[string]*template.Template{}
	for _, p := range pages {
		t, err := template.Must(layout.Clone()).ParseFS(webFS, "web/"+p.file)
		if err != nil {
			return err
		}
		c.pages[p.path] = t
	}
	c.login, err = template.ParseFS(webFS, "web/login.html")
	return err
}

// Handler returns the console's handler: its pages, /login, /logout and
// /static/. Mount it at "/" beside the APIs, and wrap the whole HTTP
// handler (APIs included) with Wrap.
func (c *Console) Handler() (http.Handler, error) {
	if err := c.init(); err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	static, _ := fs.Sub(webFS, "web/static")
	mux.Handle("GET /static/", http.StripPrefix("/static/", noCache(http.FileServerFS(static))))
	mux.HandleFunc("GET /login", c.loginPage)
	// Login and logout are refused from other origins (login CSRF).
	cop := http.NewCrossOriginProtection()
	mux.Handle("POST /login", cop.Handler(http.HandlerFunc(c.doLogin)))
	mux.Handle("POST /logout", cop.Handler(http.HandlerFunc(c.doLogout)))
	for _, p := range pages {
		pattern := "GET " + p.path
		if p.path == "/" {
			pattern = "GET /{$}"
		}
		mux.HandleFunc(pattern, c.serve(p))
	}
	return securityHeaders(mux), nil
}

// serve renders page p for the session's user, or sends the browser to
// the login page.
func (c *Console) serve(p page) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s := c.session(r)
		if s == nil {
			http.Redirect(w, r, "/login?next="+url.QueryEscape(localTarget(r.URL.RequestURI())), http.StatusSeeOther)
			return
		}
		u := s.user
		v := view{
			Title: p.title, Page: strings.TrimSuffix(p.file, ".html"), User: u.Name, Version: c.Version,
			CanChange: u.HasTag("administrator") || u.HasTag("management") || u.HasTag("policymaker"),
			Admin:     u.HasTag("administrator"),
			Vhost:     r.URL.Query().Get("vhost"), PollMillis: c.PollInterval.Milliseconds(),
			Params: map[string]string{},
		}
		if v.Vhost == "" {
			v.Vhost = "/"
		}
		// An object's page names it in the query (?vhost=&name=, ?id=):
		// a vhost named "/" cannot be a path segment.
		for _, name := range []string{"vhost", "name", "id"} {
			if val := r.URL.Query().Get(name); val != "" {
				v.Params[name] = val
			}
		}
		for _, sec := range []string{"Broker", "Admin", "Notifications"} {
			ns := navSection{Name: sec}
			for _, q := range pages {
				if q.section == sec {
					ns.Items = append(ns.Items, navItem{Path: q.path, Title: q.title, Active: q.path == p.path})
				}
			}
			v.Nav = append(v.Nav, ns)
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if err := c.pages[p.path].ExecuteTemplate(w, "layout", v); err != nil {
			c.Logger.Error("console: rendering a page", "page", p.file, "err", err)
		}
	}
}

// securityHeaders sets what every console answer carries: no framing, no
// sniffing, scripts and styles from this server only.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; "+
			"frame-src 'self' about:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
		next.ServeHTTP(w, r)
	})
}

// noCache makes browsers check the embedded files again: they change with
// the binary, which has no build id in their names.
func noCache(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		next.ServeHTTP(w, r)
	})
}
