package mgmt

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"

	"github.com/unifiedms/ums/core"
	"github.com/unifiedms/ums/core/auth"
)

// Definitions export and import in RabbitMQ's JSON format
// (rabbit_mgmt_wm_definitions), so that definitions move between RabbitMQ
// and UMS both ways. Password hashes are RabbitMQ's own (salted SHA-256 by
// default, rabbit_password_hashing_sha256), so users keep their passwords.
// UMS has no runtime parameters or policies: they are exported as empty
// lists and ignored on import. Administrators only, as in RabbitMQ.

// maxDefinitionsBody bounds an imported definitions document.
const maxDefinitionsBody = 64 << 20

func (a *API) definitionRoutes(mux *http.ServeMux) {
	for pattern, h := range map[string]http.HandlerFunc{
		"GET /api/definitions":          a.exportDefinitions,
		"GET /api/definitions/{$}":      a.exportDefinitions,
		"GET /api/definitions/{vhost}":  a.exportDefinitions,
		"POST /api/definitions":         a.importDefinitions,
		"POST /api/definitions/{$}":     a.importDefinitions,
		"POST /api/definitions/{vhost}": a.importDefinitions,
	} {
		handle(mux, pattern, admin(h))
	}
}

// definitions is the document. Entries are kept as generic JSON objects
// on import so that fields UMS does not know (limits, metadata, a
// RabbitMQ version's additions) do not fail it.
type definitions struct {
	RabbitVersion    string           `json:"rabbit_version,omitempty"`
	RabbitMQVersion  string           `json:"rabbitmq_version,omitempty"`
	ProductName      string           `json:"product_name,omitempty"`
	ProductVersion   string           `json:"product_version,omitempty"`
	Users            []map[string]any `json:"users,omitempty"`
	Vhosts           []map[string]any `json:"vhosts,omitempty"`
	Permissions      []map[string]any `json:"permissions,omitempty"`
	TopicPermissions []map[string]any `json:"topic_permissions,omitempty"`
	Parameters       []map[string]any `json:"parameters"`
	GlobalParameters []map[string]any `json:"global_parameters,omitempty"`
	Policies         []map[string]any `json:"policies"`
	Queues           []map[string]any `json:"queues"`
	Exchanges        []map[string]any `json:"exchanges"`
	Bindings         []map[string]any `json:"bindings"`
}

func (a *API) exportDefinitions(w http.ResponseWriter, r *http.Request) {
	d := definitions{RabbitVersion: "3.13.0", RabbitMQVersion: "3.13.0", ProductName: "UMS", ProductVersion: Version,
		Parameters: []map[string]any{}, Policies: []map[string]any{},
		Queues: []map[string]any{}, Exchanges: []map[string]any{}, Bindings: []map[string]any{}}
	var vhosts []*core.Vhost
	one := r.PathValue("vhost")
	if one != "" {
		v, ok := a.Broker.Vhost(one)
		if !ok {
			notFound(w)
			return
		}
		vhosts = []*core.Vhost{v}
	} else {
		vhosts = a.Broker.Vhosts()
		d.Users, d.Vhosts, d.GlobalParameters = []map[string]any{}, []map[string]any{}, []map[string]any{}
		d.Permissions, d.TopicPermissions = permissionsOf(a.Users.Accounts(), ""), topicPermissionsOf(a.Users.Accounts(), "")
		for _, u := range a.Users.Users() {
			j := userJSON(u)
			if len(u.PasswordHash) == 0 {
				j["hashing_algorithm"] = auth.HashSHA256
			}
			d.Users = append(d.Users, j)
		}
		for _, v := range vhosts {
			d.Vhosts = append(d.Vhosts, map[string]any{"name": v.Name, "description": "", "tags": []string{},
				"default_queue_type": "classic", "metadata": map[string]any{"description": "", "tags": []string{}, "default_queue_type": "classic"}})
		}
	}
	for _, v := range vhosts {
		// A vhost's own export names no vhost in its entries.
		withVhost := func(m map[string]any) map[string]any {
			if one != "" {
				delete(m, "vhost")
			}
			return m
		}
		for _, x := range v.Exchanges() {
			if x.Name == "" || strings.HasPrefix(x.Name, "amq.") {
				continue // built in
			}
			d.Exchanges = append(d.Exchanges, withVhost(map[string]any{"name": x.Name, "vhost": v.Name, "type": x.Kind,
				"durable": x.Durable, "auto_delete": x.AutoDelete, "internal": x.Internal, "arguments": toJSON(args(x.Args))}))
		}
		exclusive := map[string]bool{}
		for _, q := range v.Queues() {
			if q.Exclusive {
				exclusive[q.Name] = true // belongs to its connection, as in RabbitMQ
				continue
			}
			d.Queues = append(d.Queues, withVhost(map[string]any{"name": q.Name, "vhost": v.Name, "durable": q.Durable,
				"auto_delete": q.AutoDelete, "arguments": toJSON(args(q.Args))}))
		}
		for _, b := range v.Bindings() {
			if b.Source == "" || (b.DestinationKind == "queue" && exclusive[b.Destination]) {
				continue // the default exchange's bindings are implicit
			}
			d.Bindings = append(d.Bindings, withVhost(map[string]any{"source": b.Source, "vhost": v.Name,
				"destination": b.Destination, "destination_type": b.DestinationKind, "routing_key": b.RoutingKey,
				"arguments": toJSON(args(b.Arguments))}))
		}
	}
	if name := r.URL.Query().Get("download"); name != "" {
		// The web UI's "download" link, as RabbitMQ answers it.
		w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": name}))
	}
	writeJSON(w, http.StatusOK, d)
}

// importDefinitions loads a definitions document: users (with their
// password hashes), vhosts, permissions and topic permissions, then
// exchanges, queues and bindings. Existing objects are kept; an existing
// queue or exchange must be equivalent. With a vhost in the path only the
// exchanges, queues and bindings are loaded, into that vhost. The first
// failure stops the import with 400 (what was loaded before it stays, as
// in RabbitMQ).
func (a *API) importDefinitions(w http.ResponseWriter, r *http.Request) {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxDefinitionsBody))
	if err != nil {
		badRequest(w, "reading definitions: "+err.Error())
		return
	}
	var d definitions
	if err := json.Unmarshal(data, &d); err != nil {
		badRequest(w, "invalid definitions JSON: "+err.Error())
		return
	}
	one := r.PathValue("vhost")
	if one != "" {
		if _, ok := a.Broker.Vhost(one); !ok {
			notFound(w)
			return
		}
	} else if err := a.importAccess(&d); err != nil {
		if errors.Is(err, auth.ErrPersist) {
			// Not stored: the account is as it was.
			writeError(w, http.StatusInternalServerError, "internal_server_error", err.Error())
			return
		}
		badRequest(w, err.Error())
		return
	}
	if err := a.importObjects(&d, one); err != nil {
		if errors.Is(err, core.ErrInternal) {
			writeCoreError(w, err)
			return
		}
		badRequest(w, err.Error())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// entry reads the fields of one definitions entry.
type entry struct {
	m    map[string]any
	what string
	err  error
}

func (e *entry) str(key string, required bool) string {
	v, ok := e.m[key]
	if !ok || v == nil {
		if required && e.err == nil {
			e.err = fmt.Errorf("%s: %s missing", e.what, key)
		}
		return ""
	}
	s, ok := v.(string)
	if !ok && e.err == nil {
		e.err = fmt.Errorf("%s: %s must be a string", e.what, key)
	}
	return s
}

func (e *entry) boolean(key string) bool {
	switch v := e.m[key].(type) {
	case bool:
		return v
	case string:
		return v == "true"
	}
	return false
}

// table reads key as declaration arguments: integral numbers as int64.
func (e *entry) table(key string) core.Table {
	v, ok := e.m[key]
	if !ok || v == nil {
		return nil
	}
	raw, _ := json.Marshal(v)
	t, err := decodeTable(raw, e.what+": "+key)
	if err != nil && e.err == nil {
		e.err = err
	}
	return t
}

// tags reads user tags: a list, or a comma-separated string (older
// RabbitMQ versions).
func (e *entry) tags() []string {
	var list []string
	switch v := e.m["tags"].(type) {
	case string:
		list = strings.Split(v, ",")
	case []any:
		for _, t := range v {
			if s, ok := t.(string); ok {
				list = append(list, s)
			}
		}
	}
	var out []string
	for _, t := range list {
		if t = strings.TrimSpace(t); t != "" && !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}

// importAccess loads users, vhosts, permissions and topic permissions.
// Each user is stored once, with its existing permissions and the
// imported ones.
func (a *API) importAccess(d *definitions) error {
	accts := map[string]*auth.Account{}
	var order []string
	account := func(name string) (*auth.Account, error) {
		if acct, ok := accts[name]; ok {
			return acct, nil
		}
		acct, ok := a.Users.Account(name)
		if !ok {
			return nil, fmt.Errorf("user %q not found", name)
		}
		accts[name] = acct
		order = append(order, name)
		return acct, nil
	}
	for _, m := range d.Users {
		e := entry{m: m, what: "user"}
		name := e.str("name", true)
		hash64 := e.str("password_hash", false)
		alg := e.str("hashing_algorithm", false)
		if e.err != nil {
			return e.err
		}
		hash, err := base64.StdEncoding.DecodeString(hash64)
		if err != nil {
			return fmt.Errorf("user %q: password_hash is not valid base64", name)
		}
		switch alg {
		case "", auth.HashSHA256, auth.HashSHA512, auth.HashMD5:
		default:
			return fmt.Errorf("user %q: unsupported hashing_algorithm %q", name, alg)
		}
		if len(hash) == 0 {
			alg = ""
		}
		acct, ok := accts[name]
		if !ok {
			if acct, ok = a.Users.Account(name); !ok {
				acct = &auth.Account{User: auth.User{Name: name}, Permissions: map[string]auth.Permission{}}
			}
			accts[name] = acct
			order = append(order, name)
		}
		acct.PasswordHash, acct.HashingAlgorithm, acct.Tags = hash, alg, e.tags()
	}
	for _, m := range d.Vhosts {
		e := entry{m: m, what: "vhost"}
		name := e.str("name", true)
		if e.err != nil {
			return e.err
		}
		a.Broker.AddVhost(name)
	}
	for _, m := range d.Permissions {
		e := entry{m: m, what: "permission"}
		user, vhost := e.str("user", true), e.str("vhost", true)
		p := auth.Permission{Configure: e.str("configure", true), Write: e.str("write", true), Read: e.str("read", true)}
		if e.err != nil {
			return e.err
		}
		acct, err := account(user)
		if err != nil {
			return err
		}
		a.Broker.AddVhost(vhost)
		if acct.Permissions == nil {
			acct.Permissions = map[string]auth.Permission{}
		}
		acct.Permissions[vhost] = p
	}
	for _, m := range d.TopicPermissions {
		e := entry{m: m, what: "topic permission"}
		user, vhost := e.str("user", true), e.str("vhost", true)
		p := auth.TopicPermission{Exchange: e.str("exchange", true), Write: e.str("write", true), Read: e.str("read", true)}
		if e.err != nil {
			return e.err
		}
		acct, err := account(user)
		if err != nil {
			return err
		}
		a.Broker.AddVhost(vhost)
		if acct.TopicPermissions == nil {
			acct.TopicPermissions = map[string][]auth.TopicPermission{}
		}
		l := slices.DeleteFunc(acct.TopicPermissions[vhost], func(o auth.TopicPermission) bool { return o.Exchange == p.Exchange })
		acct.TopicPermissions[vhost] = append(l, p)
	}
	for _, name := range order {
		if err := a.Users.PutAccount(accts[name]); err != nil {
			return fmt.Errorf("user %q: %w", name, err)
		}
	}
	return nil
}

// importObjects declares exchanges, queues and bindings, in the vhost
// each names or in vhost when it is not "".
func (a *API) importObjects(d *definitions, vhost string) error {
	target := func(e *entry) *core.Vhost {
		name := vhost
		if name == "" {
			name = e.str("vhost", true)
		}
		if e.err != nil {
			return nil
		}
		v, ok := a.Broker.Vhost(name)
		if !ok {
			e.err = fmt.Errorf("%s: vhost %q not found", e.what, name)
		}
		return v
	}
	for _, m := range d.Exchanges {
		e := entry{m: m, what: "exchange"}
		v := target(&e)
		name, kind := e.str("name", true), e.str("type", true)
		opts := core.ExchangeOptions{Durable: e.boolean("durable"), AutoDelete: e.boolean("auto_delete"),
			Internal: e.boolean("internal"), Args: e.table("arguments")}
		if e.err != nil {
			return e.err
		}
		if name == "" || strings.HasPrefix(name, "amq.") {
			if _, err := v.Exchange(name); err == nil {
				continue // built in
			}
		}
		if _, err := v.DeclareExchange(name, kind, opts); err != nil {
			return err
		}
	}
	for _, m := range d.Queues {
		e := entry{m: m, what: "queue"}
		v := target(&e)
		name := e.str("name", true)
		opts := core.QueueOptions{Durable: e.boolean("durable"), AutoDelete: e.boolean("auto_delete"), Args: e.table("arguments")}
		if e.err != nil {
			return e.err
		}
		if _, err := v.DeclareQueue(nil, name, opts); err != nil {
			return err
		}
	}
	for _, m := range d.Bindings {
		e := entry{m: m, what: "binding"}
		v := target(&e)
		src, dst, kind := e.str("source", true), e.str("destination", true), e.str("destination_type", true)
		key, bargs := e.str("routing_key", false), e.table("arguments")
		if e.err != nil {
			return e.err
		}
		var err error
		switch kind {
		case "queue":
			err = v.Bind(nil, dst, src, key, bargs)
		case "exchange":
			err = v.BindExchange(dst, src, key, bargs)
		default:
			err = fmt.Errorf("binding: destination_type %q is neither queue nor exchange", kind)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
