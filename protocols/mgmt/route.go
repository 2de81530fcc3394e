package mgmt

import (
	"net/http"
	"net/url"
	"strings"
)

// Routing of "%2F", the name RabbitMQ clients use for the default vhost "/".
//
// ServeMux matches wildcards against unescaped segments, but takes a segment
// that unescapes to "/" alone for a trailing slash: "/api/queues/%2F" would
// match "/api/queues/{$}", and "/api/permissions/%2F/guest" nothing. So,
// before routing, such a segment is replaced by slashSegment (an escaped
// NUL, which no real vhost or user name is), and handle gives a wildcard
// that matched it back its "/".
const slashSegment = "\x00"

// wildcards are the names of the path wildcards of the routes.
var wildcards = [...]string{"vhost", "user", "name", "source", "dest"}

// routeSlashSegments replaces each "%2F" segment of the path by slashSegment.
func routeSlashSegments(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		segs := strings.Split(r.URL.EscapedPath(), "/")
		changed := false
		for i, s := range segs {
			if strings.EqualFold(s, "%2F") {
				segs[i], changed = url.PathEscape(slashSegment), true
			}
		}
		if changed {
			u := *r.URL
			u.RawPath = strings.Join(segs, "/")
			if p, err := url.PathUnescape(u.RawPath); err == nil {
				u.Path = p
				r = r.WithContext(r.Context()) // a shallow copy
				r.URL = &u
			}
		}
		next.ServeHTTP(w, r)
	})
}

// handle registers h for pattern, giving back "/" to wildcards that matched
// slashSegment.
func handle(mux *http.ServeMux, pattern string, h http.HandlerFunc) {
	mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		for _, name := range wildcards {
			if r.PathValue(name) == slashSegment {
				r.SetPathValue(name, "/")
			}
		}
		h(w, r)
	})
}
