package mgmt

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"runtime/metrics"
	"syscall"
	"time"

	"github.com/unifiedms/ums/core"
)

// Channels, consumers, the node, vhost creation, and the empty parameter
// and policy lists, shaped as RabbitMQ's management plugin answers them, so
// its UI's and tools' calls work.

// nodeRoutes adds /api/channels, /api/consumers, /api/nodes,
// /api/parameters, /api/policies, and PUT and DELETE /api/vhosts/{vhost}.
func (a *API) nodeRoutes(mux *http.ServeMux) {
	for pattern, h := range map[string]http.HandlerFunc{
		"GET /api/channels":                    a.channels,
		"GET /api/channels/{$}":                a.channels,
		"GET /api/vhosts/{vhost}/channels":     a.channels,
		"GET /api/connections/{name}/channels": a.connectionChannels,
		"GET /api/consumers":                   a.consumers,
		"GET /api/consumers/{$}":               a.consumers,
		"GET /api/consumers/{vhost}":           a.consumers,
		"GET /api/nodes":                       a.nodes,
		"GET /api/nodes/{$}":                   a.nodes,
		"GET /api/nodes/{name}":                a.node,
		"GET /api/parameters":                  a.emptyList,
		"GET /api/parameters/{$}":              a.emptyList,
		"GET /api/parameters/{component}":      a.emptyList,
		"GET /api/policies":                    a.emptyList,
		"GET /api/policies/{$}":                a.emptyList,
		"GET /api/policies/{vhost}":            a.emptyList,
		"GET /api/vhosts/{vhost}":              a.getVhost,
		"PUT /api/vhosts/{vhost}":              admin(a.putVhost),
		"DELETE /api/vhosts/{vhost}":           admin(a.deleteVhost),
	} {
		handle(mux, pattern, h)
	}
}

// connVisible reports whether the request's user may see connection c:
// administrators and monitoring users see all, others their own.
func connVisible(r *http.Request, c *core.Conn) bool {
	u := currentUser(r)
	return seesAll(u) || c.User == u.Name
}

func channelJSON(c *core.Conn, n int, s core.SessionInfo) map[string]any {
	info := c.Info()
	peerHost, peerPort := splitAddr(info.Peer)
	state := "running"
	if !s.Flow {
		state = "flow"
	}
	return map[string]any{
		"name": fmt.Sprintf("%s (%d)", info.Name, n), "number": n, "user": c.User, "vhost": c.Vhost().Name,
		"connection_details": map[string]any{"name": info.Name, "peer_host": peerHost, "peer_port": peerPort},
		"consumer_count":     s.Consumers, "messages_unacknowledged": s.Unacked,
		"prefetch_count": s.Prefetch, "global_prefetch_count": s.GlobalPrefetch,
		"state": state, "protocol": info.Protocol,
	}
}

func (a *API) channelsOf(r *http.Request, vhost string) []map[string]any {
	out := []map[string]any{}
	for _, c := range a.Broker.Connections() {
		if !connVisible(r, c) || (vhost != "" && c.Vhost().Name != vhost) {
			continue
		}
		for i, s := range c.Sessions() {
			out = append(out, channelJSON(c, i+1, s))
		}
	}
	return out
}

func (a *API) channels(w http.ResponseWriter, r *http.Request) {
	vhost := r.PathValue("vhost")
	if vhost != "" {
		if _, ok := a.readVhost(w, r); !ok {
			return
		}
	}
	writeJSON(w, http.StatusOK, a.channelsOf(r, vhost))
}

func (a *API) connectionChannels(w http.ResponseWriter, r *http.Request) {
	c := a.findConn(r.PathValue("name"))
	if c == nil || !connVisible(r, c) {
		notFound(w)
		return
	}
	out := []map[string]any{}
	for i, s := range c.Sessions() {
		out = append(out, channelJSON(c, i+1, s))
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *API) consumers(w http.ResponseWriter, r *http.Request) {
	vs, ok := a.vhostsFor(w, r)
	if !ok {
		return
	}
	out := []map[string]any{}
	for _, v := range vs {
		for _, q := range v.Queues() {
			for _, ci := range q.Consumers() {
				m := map[string]any{
					"consumer_tag": ci.Tag, "exclusive": ci.Exclusive, "ack_required": !ci.NoAck,
					"prefetch_count": ci.Prefetch, "priority": ci.Priority, "active": true, "activity_status": "up",
					"messages_unacknowledged": ci.Unacked, "arguments": map[string]any{},
					"queue": map[string]any{"name": q.Name, "vhost": v.Name},
				}
				if ci.Conn != nil {
					info := ci.Conn.Info()
					peerHost, peerPort := splitAddr(info.Peer)
					m["channel_details"] = map[string]any{"connection_name": info.Name, "peer_host": peerHost,
						"peer_port": peerPort, "user": ci.Conn.User}
				}
				out = append(out, m)
			}
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// nodeName is the node's name as RabbitMQ shapes it: ums@host.
func nodeName() string {
	host, _ := os.Hostname()
	return "ums@" + host
}

func (a *API) nodeJSON() map[string]any {
	samples := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(samples)
	memUsed := samples[0].Value.Uint64() - samples[1].Value.Uint64()
	alarms := map[string]bool{}
	for _, al := range a.Broker.Alarms() {
		alarms[al.Name] = true
	}
	n := map[string]any{
		"name": nodeName(), "type": "disc", "running": true, "processors": runtime.NumCPU(),
		"os_pid": fmt.Sprint(os.Getpid()), "mem_used": memUsed, "mem_limit": a.MemoryLimit, "mem_alarm": alarms["memory"],
		"disk_free_limit": a.DiskFreeLimit, "disk_free_alarm": alarms["disk"],
		"proc_used": runtime.NumGoroutine(), "sockets_used": len(a.Broker.Connections()),
		"uptime": time.Since(a.Started).Milliseconds(), "rates_mode": "none",
		"applications": []map[string]string{{"name": "ums", "description": "UMS", "version": Version}},
	}
	if a.DataDir != "" {
		var fs syscall.Statfs_t
		if err := syscall.Statfs(a.DataDir, &fs); err == nil {
			n["disk_free"] = int64(fs.Bavail) * int64(fs.Bsize)
		}
	}
	if ents, err := os.ReadDir("/proc/self/fd"); err == nil {
		n["fd_used"] = len(ents)
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil {
		n["fd_total"] = lim.Cur
		n["sockets_total"] = lim.Cur
	}
	return n
}

func (a *API) nodes(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, []map[string]any{a.nodeJSON()})
}

func (a *API) node(w http.ResponseWriter, r *http.Request) {
	if r.PathValue("name") != nodeName() {
		notFound(w)
		return
	}
	writeJSON(w, http.StatusOK, a.nodeJSON())
}

// emptyList answers the lists of features UMS does not have (runtime
// parameters, policies): empty, as RabbitMQ answers when none is set.
func (a *API) emptyList(w http.ResponseWriter, r *http.Request) {
	if name := r.PathValue("vhost"); name != "" {
		if _, ok := a.readVhost(w, r); !ok {
			return
		}
	}
	writeJSON(w, http.StatusOK, []any{})
}

func (a *API) getVhost(w http.ResponseWriter, r *http.Request) {
	v, ok := a.readVhost(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"name": v.Name, "description": "", "tags": []string{}, "tracing": false})
}

// putVhost creates a vhost (201) or leaves an existing one alone (204).
// Users need permissions on it (PUT /api/permissions) to use it.
func (a *API) putVhost(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("vhost")
	if name == "" || len(name) > 255 {
		badRequest(w, "invalid vhost name")
		return
	}
	if r.ContentLength != 0 {
		if _, ok := readBody(w, r); !ok {
			return
		}
	}
	if _, ok := a.Broker.Vhost(name); ok {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	a.Broker.AddVhost(name)
	w.WriteHeader(http.StatusCreated)
}

// deleteVhost deletes a vhost with everything in it (its clients are
// disconnected with 320 CONNECTION_FORCED) and the users' permissions on
// it, as RabbitMQ does.
func (a *API) deleteVhost(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("vhost")
	err := a.Broker.DeleteVhost(name, "vhost '"+name+"' is deleted")
	if errors.Is(err, core.ErrNotFound) {
		notFound(w)
		return
	}
	for _, u := range a.Users.Users() {
		if perr := a.Users.ClearPermission(u.Name, name); perr != nil && err == nil {
			err = perr
		}
		if perr := a.Users.ClearTopicPermission(u.Name, name, ""); perr != nil && err == nil {
			err = perr
		}
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal_server_error", err.Error())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
