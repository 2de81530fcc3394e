package mgmt

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/unifiedms/ums/core"
	"github.com/unifiedms/ums/core/auth"
)

// Who may do what, as RabbitMQ's management plugin decides it:
//
//   - administrator: everything, in every vhost it has permissions on;
//   - monitoring: sees every vhost, changes nothing;
//   - management (and policymaker): sees and acts only in the vhosts it
//     has permissions on.
//
// What an action needs inside a vhost (configure to declare or delete,
// write to publish, read to get or purge) is checked by the core: the
// handlers open a core connection as the acting user (actAs) and call its
// checked methods.

// notAuthorised answers 401 as RabbitMQ's not_authorised does.
func notAuthorised(w http.ResponseWriter, reason string) {
	writeError(w, http.StatusUnauthorized, "not_authorised", reason)
}

// currentUser is the authenticated user of the request.
func currentUser(r *http.Request) *auth.User {
	u, _ := r.Context().Value(userKey{}).(*auth.User)
	return u
}

// seesAll reports whether u may read every vhost's objects.
func seesAll(u *auth.User) bool {
	return u.HasTag("administrator") || u.HasTag("monitoring")
}

// mayChange reports whether u may change objects at all: monitoring users
// are read-only.
func mayChange(u *auth.User) bool {
	return u.HasTag("administrator") || u.HasTag("management") || u.HasTag("policymaker")
}

// readVhost returns the vhost named in the path for a read, or answers 404
// (no such vhost) or 401 (a management user without access to it).
func (a *API) readVhost(w http.ResponseWriter, r *http.Request) (*core.Vhost, bool) {
	name := r.PathValue("vhost")
	v, ok := a.Broker.Vhost(name)
	if !ok {
		notFound(w)
		return nil, false
	}
	u := currentUser(r)
	if !seesAll(u) && !a.Users.CanAccessVhost(u.Name, name) {
		notAuthorised(w, "User not authorised to access virtual host")
		return nil, false
	}
	return v, true
}

// actAs returns the vhost named in the path and a core connection of the
// acting user to it, whose methods check the user's permissions; or it
// answers 404, or 401 for a monitoring user or one without access to the
// vhost. The caller closes the connection.
func (a *API) actAs(w http.ResponseWriter, r *http.Request) (*core.Vhost, *core.Conn, bool) {
	return a.openConn(w, r, true)
}

// openConn is actAs; change says whether monitoring users are refused.
func (a *API) openConn(w http.ResponseWriter, r *http.Request, change bool) (*core.Vhost, *core.Conn, bool) {
	name := r.PathValue("vhost")
	v, ok := a.Broker.Vhost(name)
	if !ok {
		notFound(w)
		return nil, nil, false
	}
	u := currentUser(r)
	if change && !mayChange(u) {
		notAuthorised(w, "Not management user: monitoring users are read-only")
		return nil, nil, false
	}
	if !a.Users.CanAccessVhost(u.Name, name) {
		notAuthorised(w, "User not authorised to access virtual host")
		return nil, nil, false
	}
	c := v.Open(u.Name, core.ConnInfo{
		Name: r.RemoteAddr + " -> management", Protocol: "HTTP", Peer: r.RemoteAddr,
		ConnectedAt: a.now(), Authz: a.Users,
	})
	return v, c, true
}

func (a *API) now() time.Time { return a.Broker.Clock().Now() }

// writeCoreError answers an error of the core as RabbitMQ's management
// plugin answers the channel error behind it: 404 for a missing object,
// 401 for a refused access, 400 with the AMQP code and text for the rest,
// 500 when storage failed.
func writeCoreError(w http.ResponseWriter, err error) {
	msg := err.Error()
	switch {
	case errors.Is(err, core.ErrNotFound):
		writeError(w, http.StatusNotFound, "not_found", "NOT_FOUND - "+msg)
	case errors.Is(err, core.ErrAccessRefused):
		notAuthorised(w, "ACCESS_REFUSED - "+msg)
	case errors.Is(err, core.ErrPreconditionFailed):
		badRequest(w, "406 PRECONDITION_FAILED - "+msg)
	case errors.Is(err, core.ErrResourceLocked):
		badRequest(w, "405 RESOURCE_LOCKED - "+msg)
	case errors.Is(err, core.ErrCommandInvalid):
		badRequest(w, "503 COMMAND_INVALID - "+msg)
	case errors.Is(err, core.ErrNotAllowed):
		badRequest(w, "530 NOT_ALLOWED - "+msg)
	case errors.Is(err, core.ErrResourceError):
		badRequest(w, "506 RESOURCE_ERROR - "+msg)
	default:
		writeError(w, http.StatusInternalServerError, "internal_server_error", msg)
	}
}

// boolean returns field key as a bool, def when absent or null. As
// RabbitMQ's parse_bool, it takes true and false or the strings "true" and
// "false" (rabbitmqadmin sends strings).
func (b body) boolean(key string, def bool) (bool, error) {
	raw, ok := b[key]
	if !ok || string(raw) == "null" {
		return def, nil
	}
	var v any
	if err := json.Unmarshal(raw, &v); err == nil {
		switch v := v.(type) {
		case bool:
			return v, nil
		case string:
			if p, err := strconv.ParseBool(v); err == nil {
				return p, nil
			}
		}
	}
	return false, fmt.Errorf("%s must be true or false", key)
}

// integer returns field key as an integer, def when absent; a number or a
// string of digits.
func (b body) integer(key string, def int64) (int64, error) {
	raw, ok := b[key]
	if !ok || string(raw) == "null" {
		return def, nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		raw = []byte(s)
	}
	n, err := strconv.ParseInt(string(bytes.TrimSpace(raw)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s must be an integer", key)
	}
	return n, nil
}

// table returns field key, a JSON object, as a core.Table with integral
// numbers as int64 (so x-max-length and the like keep their type); nil
// when absent, null or "".
func (b body) table(key string) (core.Table, error) {
	raw, ok := b[key]
	if !ok || string(raw) == "null" || string(raw) == `""` {
		return nil, nil
	}
	return decodeTable(raw, key)
}

func decodeTable(raw json.RawMessage, what string) (core.Table, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%s must be a JSON object", what)
	}
	if len(m) == 0 {
		return nil, nil
	}
	return fromJSON(m).(core.Table), nil
}

// fromJSON converts a value decoded with UseNumber to the core's types.
func fromJSON(v any) any {
	switch v := v.(type) {
	case json.Number:
		if n, err := v.Int64(); err == nil {
			return n
		}
		f, _ := v.Float64()
		return f
	case map[string]any:
		t := make(core.Table, len(v))
		for k, x := range v {
			t[k] = fromJSON(x)
		}
		return t
	case []any:
		for i, x := range v {
			v[i] = fromJSON(x)
		}
		return v
	}
	return v
}

// toJSON makes a core value fit for JSON: NaN and infinities, which JSON
// cannot carry, become strings; times become seconds since the epoch.
func toJSON(v any) any {
	switch v := v.(type) {
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Sprint(v)
		}
	case float32:
		return toJSON(float64(v))
	case time.Time:
		return v.Unix()
	case core.Table:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[k] = toJSON(x)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = toJSON(x)
		}
		return out
	}
	return v
}

// exchangeName maps the name of the default exchange in URLs and bodies,
// "amq.default", to its real name "".
func exchangeName(name string) string {
	if name == "amq.default" {
		return ""
	}
	return name
}
