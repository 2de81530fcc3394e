// Package mgmt is the management HTTP API: RabbitMQ-compatible JSON under
// /api for the objects the core knows (overview, vhosts, connections,
// exchanges, queues, bindings: listed, declared, deleted; messages
// published and got), for users, permissions and topic permissions and
// definitions export and import (administrators only), and health probes.
//
// Files: mgmt.go (routes, login, listings), access.go (who may do what,
// error answers), objects.go (queues, exchanges, bindings), messages.go
// (publish, get), definitions.go, users.go, health.go, route.go (the
// "%2F" vhost in paths).
//
// Actions inside a vhost run on a core connection opened as the logged-in
// user (ConnInfo.Authz), so the core applies the user's configure, write
// and read permissions exactly as for AMQP; this package only decides
// which users may reach an endpoint at all (tags, vhost access). It takes
// no lock of its own.
package mgmt

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/unifiedms/ums/core"
	"github.com/unifiedms/ums/core/auth"
)

// Version is reported by /api/overview.
var Version = "0.1.0"

// API serves the management endpoints. Broker and Users must be set.
type API struct {
	Broker *core.Broker
	Users  *auth.Store
	// Notify, when set, reports notification delivery in the overview.
	Notify Notifier
	// Node facts shown by /api/nodes: the data directory (for free disk),
	// the limits that raise the memory and disk alarms, and the start.
	DataDir       string
	MemoryLimit   uint64
	DiskFreeLimit int64
	Started       time.Time
	// Ready, when set, reports why the node does not serve yet or any
	// more (starting, shutting down), or nil: /readyz answers 503 with
	// its error.
	Ready func() error
	// MaxConnections and ChannelMax are the node's limits the core does
	// not know (per listener, per AMQP connection; 0: none), shown in the
	// overview with the core's (Broker.Limits).
	MaxConnections, ChannelMax int
}

// Notifier is what the overview shows of notification delivery.
type Notifier interface {
	// Channels lists the configured channels.
	Channels() []string
	// Health reports whether the dedup and rate-limit store (Redis)
	// answers, and why not.
	Health() (ok bool, detail string)
}

// Handler returns the HTTP handler with every route.
func (a *API) Handler() http.Handler {
	mux := http.NewServeMux()
	for path, h := range map[string]http.HandlerFunc{
		"/api/overview": a.overview, "/api/vhosts": a.vhosts, "/api/connections": a.connections,
		"/api/exchanges": a.exchanges, "/api/queues": a.queues, "/api/bindings": a.bindings,
	} {
		handle(mux, "GET "+path, h)
		handle(mux, "GET "+path+"/{$}", h)
	}
	handle(mux, "GET /api/whoami", a.whoami)
	handle(mux, "GET /api/health/checks/alarms", a.alarmsCheck)
	handle(mux, "GET /api/health/checks/local-alarms", a.alarmsCheck)
	handle(mux, "GET /api/aliveness-test/{vhost}", a.aliveness)
	handle(mux, "GET /api/connections/{name}", a.connection)
	handle(mux, "DELETE /api/connections/{name}", a.closeConnection)
	handle(mux, "GET /api/exchanges/{vhost}", a.exchanges)
	handle(mux, "GET /api/queues/{vhost}", a.queues)
	handle(mux, "GET /api/bindings/{vhost}", a.bindings)
	a.userRoutes(mux)
	a.objectRoutes(mux)
	a.messageRoutes(mux)
	a.definitionRoutes(mux)
	a.nodeRoutes(mux)
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "Object Not Found")
	})
	root := http.NewServeMux()
	a.probeRoutes(root)
	root.Handle("/", a.authenticate(routeSlashSegments(mux)))
	return root
}

// authenticate requires HTTP basic auth of a user tagged administrator,
// management or monitoring.
func (a *API) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		if !ok {
			w.Header().Set("WWW-Authenticate", `Basic realm="UMS Management"`)
			notAuthorised(w, "Not_Authorized")
			return
		}
		u, err := a.Users.Authenticate(user, pass, auth.LoopbackHostPort(r.RemoteAddr))
		if err != nil {
			// The request's own goroutine waits out the login
			// failure delay (or the client's going away).
			select {
			case <-a.Broker.LoginFailed():
			case <-r.Context().Done():
			}
			w.Header().Set("WWW-Authenticate", `Basic realm="UMS Management"`)
			notAuthorised(w, "Login failed")
			return
		}
		if !u.HasTag("administrator") && !u.HasTag("management") && !u.HasTag("monitoring") {
			notAuthorised(w, "Not management user")
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), userKey{}, u)))
	})
}

// userKey is the context key of the authenticated *auth.User.
type userKey struct{}

// admin lets only users tagged administrator through, as RabbitMQ's
// is_authorized_admin does (401, not 403, in RabbitMQ 3.x and 4.x).
func admin(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		u, _ := r.Context().Value(userKey{}).(*auth.User)
		if u == nil || !u.HasTag("administrator") {
			notAuthorised(w, "Not administrator user")
			return
		}
		next(w, r)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, kind, reason string) {
	writeJSON(w, status, map[string]string{"error": kind, "reason": reason})
}

func (a *API) overview(w http.ResponseWriter, r *http.Request) {
	var queues, exchanges, consumers, ready, unacked, channels int
	for _, v := range a.Broker.Vhosts() {
		exchanges += len(v.Exchanges())
		for _, q := range v.Queues() {
			queues++
			m, c := q.Counts()
			ready += m
			consumers += c
			unacked += q.Unacked()
		}
	}
	conns := a.Broker.Connections()
	byProtocol := map[string]int{}
	for _, c := range conns {
		channels += c.Channels()
		byProtocol[protocolFamily(c.Info().Protocol)]++
	}
	st := a.Broker.Stats()
	writeJSON(w, http.StatusOK, map[string]any{
		"management_version": Version, "rabbitmq_version": "3.13.0", "product_name": "UMS", "product_version": Version,
		"object_totals": map[string]int{"connections": len(conns), "channels": channels, "exchanges": exchanges,
			"queues": queues, "consumers": consumers},
		"queue_totals": map[string]int{"messages": ready + unacked, "messages_ready": ready, "messages_unacknowledged": unacked},
		// Counters since start, named as RabbitMQ's message_stats; rates
		// are the difference of two readings over their interval.
		"message_stats": map[string]uint64{"publish": st.Received, "deliver_get": st.Delivered,
			"redeliver": st.Redelivered, "ack": st.Acknowledged, "confirm": st.Confirmed},
		"connections_by_protocol": byProtocol,
		"alarms":                  alarmsJSON(a.Broker.Alarms()),
		"notifications":           a.notifyJSON(),
		"limits":                  a.limitsJSON(),
	})
}

// protocolFamily is the protocol of a connection without its version:
// AMQP, MQTT, STOMP or HTTP.
func protocolFamily(p string) string {
	if i := strings.IndexByte(p, ' '); i > 0 {
		return p[:i]
	}
	return p
}

// whoami answers who the request is authenticated as, as RabbitMQ's
// /api/whoami does.
func (a *API) whoami(w http.ResponseWriter, r *http.Request) {
	u := currentUser(r)
	tags := u.Tags
	if tags == nil {
		tags = []string{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"name": u.Name, "tags": tags})
}

// limitsJSON lists the limits that protect the node (0: none).
func (a *API) limitsJSON() map[string]any {
	l := a.Broker.Limits()
	return map[string]any{
		"max_connections":          a.MaxConnections,
		"max_connections_per_user": l.MaxConnectionsPerUser,
		"max_consumers_per_queue":  l.MaxConsumersPerQueue,
		"channel_max":              a.ChannelMax,
		"login_failure_delay_ms":   l.LoginFailureDelay.Milliseconds(),
	}
}

// alarmsJSON lists raised alarms: memory and disk (which block publishers)
// and storage faults such as a failed definition write.
func alarmsJSON(alarms []core.Alarm) []map[string]any {
	out := []map[string]any{}
	for _, al := range alarms {
		out = append(out, map[string]any{"resource": al.Name, "reason": al.Reason, "blocks_publishers": al.Blocking})
	}
	return out
}

// alarmsCheck answers as RabbitMQ's health check does: 200 with status ok
// when no alarm is raised, else 503 with the alarms.
func (a *API) alarmsCheck(w http.ResponseWriter, r *http.Request) {
	alarms := a.Broker.Alarms()
	if len(alarms) == 0 {
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok"})
		return
	}
	writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "failed",
		"reason": fmt.Sprintf("resource alarm(s) in effect: %s", alarms[0].Reason), "alarms": alarmsJSON(alarms)})
}

func (a *API) vhosts(w http.ResponseWriter, r *http.Request) {
	vs, _ := a.vhostsFor(w, r)
	out := []map[string]any{}
	for _, v := range vs {
		out = append(out, map[string]any{"name": v.Name})
	}
	writeJSON(w, http.StatusOK, out)
}

func connJSON(c *core.Conn) map[string]any {
	info := c.Info()
	peerHost, peerPort := splitAddr(info.Peer)
	host, port := splitAddr(info.Local)
	st := c.Stats()
	props := info.ClientProperties
	if props == nil {
		props = core.Table{}
	}
	return map[string]any{
		"name": info.Name, "vhost": c.Vhost().Name, "user": c.User, "protocol": info.Protocol,
		"peer_host": peerHost, "peer_port": peerPort, "host": host, "port": port,
		"channels": c.Channels(), "connected_at": info.ConnectedAt.UnixMilli(),
		"client_properties": props, "state": "running", "type": "network",
		// Counters since the connection opened.
		"message_stats": map[string]uint64{"publish": st.Published, "deliver_get": st.Delivered},
	}
}

func splitAddr(a string) (string, int) {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return a, 0
	}
	n := 0
	for _, ch := range port {
		n = n*10 + int(ch-'0')
	}
	return host, n
}

func (a *API) connections(w http.ResponseWriter, r *http.Request) {
	out := []map[string]any{}
	for _, c := range a.Broker.Connections() {
		out = append(out, connJSON(c))
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *API) findConn(name string) *core.Conn {
	for _, c := range a.Broker.Connections() {
		if c.Info().Name == name {
			return c
		}
	}
	return nil
}

func (a *API) connection(w http.ResponseWriter, r *http.Request) {
	c := a.findConn(r.PathValue("name"))
	if c == nil {
		writeError(w, http.StatusNotFound, "not_found", "Object Not Found")
		return
	}
	writeJSON(w, http.StatusOK, connJSON(c))
}

func (a *API) closeConnection(w http.ResponseWriter, r *http.Request) {
	c := a.findConn(r.PathValue("name"))
	if c == nil {
		writeError(w, http.StatusNotFound, "not_found", "Object Not Found")
		return
	}
	if c.Info().Protocol == "internal" {
		// The server's own connection (notification delivery): closing
		// it would stop a part of the server, not a client.
		badRequest(w, "connection "+c.Info().Name+" is the server's own and cannot be closed")
		return
	}
	reason := r.Header.Get("X-Reason")
	if reason == "" {
		reason = "Closed via management plugin"
	}
	c.Kill(reason)
	w.WriteHeader(http.StatusNoContent)
}

// vhostsFor returns the vhosts a listing covers: one named in the path, or
// all those the user may see.
func (a *API) vhostsFor(w http.ResponseWriter, r *http.Request) ([]*core.Vhost, bool) {
	name := r.PathValue("vhost")
	if name != "" {
		v, ok := a.readVhost(w, r)
		if !ok {
			return nil, false
		}
		return []*core.Vhost{v}, true
	}
	u := currentUser(r)
	var out []*core.Vhost
	for _, v := range a.Broker.Vhosts() {
		if seesAll(u) || a.Users.CanAccessVhost(u.Name, v.Name) {
			out = append(out, v)
		}
	}
	return out, true
}

func args(t core.Table) core.Table {
	if t == nil {
		return core.Table{}
	}
	return t
}

func (a *API) exchanges(w http.ResponseWriter, r *http.Request) {
	vs, ok := a.vhostsFor(w, r)
	if !ok {
		return
	}
	out := []map[string]any{}
	for _, v := range vs {
		for _, x := range v.Exchanges() {
			out = append(out, exchangeJSON(v, x))
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *API) queues(w http.ResponseWriter, r *http.Request) {
	vs, ok := a.vhostsFor(w, r)
	if !ok {
		return
	}
	out := []map[string]any{}
	for _, v := range vs {
		for _, q := range v.Queues() {
			out = append(out, queueJSON(v, q))
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *API) bindings(w http.ResponseWriter, r *http.Request) {
	vs, ok := a.vhostsFor(w, r)
	if !ok {
		return
	}
	out := []map[string]any{}
	for _, v := range vs {
		for _, b := range v.Bindings() {
			out = append(out, bindingJSON(v, b))
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// notifyJSON is the overview's "notifications": configured channels and
// the state of the guards' store.
func (a *API) notifyJSON() map[string]any {
	if a.Notify == nil {
		return nil
	}
	ok, detail := a.Notify.Health()
	return map[string]any{"channels": a.Notify.Channels(), "guards_ok": ok, "guards": detail}
}
