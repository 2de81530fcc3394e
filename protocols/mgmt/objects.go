package mgmt

import (
	"crypto/md5"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"sort"
	"strings"

	"github.com/unifiedms/ums/core"
)

// Queues, exchanges and bindings, one at a time, shaped as RabbitMQ's
// rabbit_mgmt_wm_queue, _exchange, _binding and _bindings.

// objectRoutes adds the endpoints of single queues, exchanges and bindings.
func (a *API) objectRoutes(mux *http.ServeMux) {
	for pattern, h := range map[string]http.HandlerFunc{
		"GET /api/queues/{vhost}/{name}":                                a.getQueue,
		"PUT /api/queues/{vhost}/{name}":                                a.putQueue,
		"DELETE /api/queues/{vhost}/{name}":                             a.deleteQueue,
		"DELETE /api/queues/{vhost}/{name}/contents":                    a.purgeQueue,
		"GET /api/queues/{vhost}/{name}/bindings":                       a.queueBindings,
		"GET /api/exchanges/{vhost}/{name}":                             a.getExchange,
		"PUT /api/exchanges/{vhost}/{name}":                             a.putExchange,
		"DELETE /api/exchanges/{vhost}/{name}":                          a.deleteExchange,
		"GET /api/exchanges/{vhost}/{name}/bindings/{dir}":              a.exchangeBindings,
		"GET /api/bindings/{vhost}/e/{source}/{kind}/{dest}":            a.listBindingsBetween,
		"POST /api/bindings/{vhost}/e/{source}/{kind}/{dest}":           a.postBinding,
		"GET /api/bindings/{vhost}/e/{source}/{kind}/{dest}/{props}":    a.getBinding,
		"DELETE /api/bindings/{vhost}/e/{source}/{kind}/{dest}/{props}": a.deleteBinding,
	} {
		handle(mux, pattern, h)
	}
}

func queueJSON(v *core.Vhost, q *core.Queue) map[string]any {
	ready, consumers := q.Counts()
	unacked := q.Unacked()
	st := q.Stats()
	return map[string]any{"name": q.Name, "vhost": v.Name, "durable": q.Durable,
		"auto_delete": q.AutoDelete, "exclusive": q.Exclusive, "arguments": args(q.Args),
		"messages": ready + unacked, "messages_ready": ready, "messages_unacknowledged": unacked,
		"consumers": consumers, "type": "classic", "state": "running",
		// Counters since the queue was created or the server started.
		"message_stats": map[string]uint64{"publish": st.Published, "deliver_get": st.Delivered,
			"redeliver": st.Redelivered, "ack": st.Acked}}
}

func exchangeJSON(v *core.Vhost, x *core.Exchange) map[string]any {
	e := map[string]any{"name": x.Name, "vhost": v.Name, "type": x.Kind, "durable": x.Durable,
		"auto_delete": x.AutoDelete, "internal": x.Internal, "arguments": args(x.Args)}
	if x.Kind == core.KindDelayed {
		// As the delayed-message plugin shows it.
		e["messages_delayed"] = x.DelayedCount()
	}
	return e
}

func bindingJSON(v *core.Vhost, b core.Binding) map[string]any {
	return map[string]any{"source": b.Source, "vhost": v.Name, "destination": b.Destination,
		"destination_type": b.DestinationKind, "routing_key": b.RoutingKey, "arguments": args(b.Arguments),
		"properties_key": propertiesKey(b.RoutingKey, b.Arguments)}
}

// propertiesKey names a binding among those between the same source and
// destination, as RabbitMQ's pack_binding_props: "~" for an empty key
// without arguments, else the key quoted as a query value with "%"
// escaped again, followed by "~" and a hash of the arguments when there
// are any. (RabbitMQ hashes the Erlang term of the arguments; ours hashes
// their JSON, so the hash part differs but is stable.)
func propertiesKey(key string, args core.Table) string {
	k := strings.ReplaceAll(url.QueryEscape(key), "%", "%25")
	if len(args) == 0 {
		if key == "" {
			return "~"
		}
		return k
	}
	data, _ := json.Marshal(toJSON(args)) // map keys are sorted
	sum := md5.Sum(data)
	return k + "~" + base64.RawURLEncoding.EncodeToString(sum[:])
}

// findQueue returns the named queue for a read, or answers 404.
func (a *API) findQueue(w http.ResponseWriter, r *http.Request) (*core.Vhost, *core.Queue, bool) {
	v, ok := a.readVhost(w, r)
	if !ok {
		return nil, nil, false
	}
	q, ok := queueExists(v, r.PathValue("name"))
	if !ok {
		notFound(w)
		return nil, nil, false
	}
	return v, q, true
}

func (a *API) getQueue(w http.ResponseWriter, r *http.Request) {
	v, q, ok := a.findQueue(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, queueJSON(v, q))
}

// putQueue declares a queue: 201 when it is new, 204 when an equivalent
// one exists, 400 (406 PRECONDITION_FAILED) when it differs.
func (a *API) putQueue(w http.ResponseWriter, r *http.Request) {
	b, ok := readBody(w, r)
	if !ok {
		return
	}
	var opts core.QueueOptions
	var err error
	if opts.Durable, err = b.boolean("durable", false); err == nil {
		if opts.AutoDelete, err = b.boolean("auto_delete", false); err == nil {
			opts.Args, err = b.table("arguments")
		}
	}
	if err != nil {
		badRequest(w, err.Error())
		return
	}
	v, c, ok := a.actAs(w, r)
	if !ok {
		return
	}
	defer c.Close()
	name := r.PathValue("name")
	_, existed := queueExists(v, name)
	if _, err := c.DeclareQueue(name, opts); err != nil {
		writeCoreError(w, err)
		return
	}
	created(w, !existed)
}

// queueExists looks a queue up by name, exclusive ones included (the
// core's lookup refuses another connection's exclusive queue).
func queueExists(v *core.Vhost, name string) (*core.Queue, bool) {
	for _, q := range v.Queues() {
		if q.Name == name {
			return q, true
		}
	}
	return nil, false
}

// deleteQueue deletes a queue; ?if-unused=true and ?if-empty=true make it
// conditional, as queue.delete's flags.
func (a *API) deleteQueue(w http.ResponseWriter, r *http.Request) {
	v, c, ok := a.actAs(w, r)
	if !ok {
		return
	}
	defer c.Close()
	// queue.delete of a missing queue succeeds; the resource does not.
	if _, ok := queueExists(v, r.PathValue("name")); !ok {
		notFound(w)
		return
	}
	query := r.URL.Query()
	if _, err := c.DeleteQueue(r.PathValue("name"), query.Get("if-unused") == "true", query.Get("if-empty") == "true"); err != nil {
		writeCoreError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) purgeQueue(w http.ResponseWriter, r *http.Request) {
	_, c, ok := a.actAs(w, r)
	if !ok {
		return
	}
	defer c.Close()
	if _, err := c.Purge(r.PathValue("name")); err != nil {
		writeCoreError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) getExchange(w http.ResponseWriter, r *http.Request) {
	v, ok := a.readVhost(w, r)
	if !ok {
		return
	}
	x, err := v.Exchange(exchangeName(r.PathValue("name")))
	if err != nil {
		notFound(w)
		return
	}
	writeJSON(w, http.StatusOK, exchangeJSON(v, x))
}

// putExchange declares an exchange ("type" defaults to direct, as in
// exchange.declare): 201 when new, 204 when an equivalent one exists.
func (a *API) putExchange(w http.ResponseWriter, r *http.Request) {
	b, ok := readBody(w, r)
	if !ok {
		return
	}
	kind, _, err := b.str("type")
	var opts core.ExchangeOptions
	if err == nil {
		if opts.Durable, err = b.boolean("durable", false); err == nil {
			if opts.AutoDelete, err = b.boolean("auto_delete", false); err == nil {
				if opts.Internal, err = b.boolean("internal", false); err == nil {
					opts.Args, err = b.table("arguments")
				}
			}
		}
	}
	if err != nil {
		badRequest(w, err.Error())
		return
	}
	if kind == "" {
		kind = core.KindDirect
	}
	v, c, ok := a.actAs(w, r)
	if !ok {
		return
	}
	defer c.Close()
	name := exchangeName(r.PathValue("name"))
	_, err = v.Exchange(name)
	existed := err == nil
	if _, err := c.DeclareExchange(name, kind, opts); err != nil {
		writeCoreError(w, err)
		return
	}
	created(w, !existed)
}

func (a *API) deleteExchange(w http.ResponseWriter, r *http.Request) {
	v, c, ok := a.actAs(w, r)
	if !ok {
		return
	}
	defer c.Close()
	if _, err := v.Exchange(exchangeName(r.PathValue("name"))); err != nil {
		notFound(w)
		return
	}
	if err := c.DeleteExchange(exchangeName(r.PathValue("name")), r.URL.Query().Get("if-unused") == "true"); err != nil {
		writeCoreError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// bindingsWhere lists the bindings of v that keep says to.
func bindingsWhere(v *core.Vhost, keep func(core.Binding) bool) []map[string]any {
	out := []map[string]any{}
	for _, b := range v.Bindings() {
		if keep(b) {
			out = append(out, bindingJSON(v, b))
		}
	}
	return out
}

func (a *API) queueBindings(w http.ResponseWriter, r *http.Request) {
	v, q, ok := a.findQueue(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, bindingsWhere(v, func(b core.Binding) bool {
		return b.DestinationKind == "queue" && b.Destination == q.Name
	}))
}

// exchangeBindings lists the bindings of which the exchange is the source
// (dir "source") or the destination (dir "destination").
func (a *API) exchangeBindings(w http.ResponseWriter, r *http.Request) {
	v, ok := a.readVhost(w, r)
	if !ok {
		return
	}
	x, err := v.Exchange(exchangeName(r.PathValue("name")))
	dir := r.PathValue("dir")
	if err != nil || (dir != "source" && dir != "destination") {
		notFound(w)
		return
	}
	writeJSON(w, http.StatusOK, bindingsWhere(v, func(b core.Binding) bool {
		if dir == "source" {
			return b.Source == x.Name
		}
		return b.DestinationKind == "exchange" && b.Destination == x.Name
	}))
}

// bindingEnds reads the source, destination and destination kind ("q" or
// "e" in the path) of a binding path, answering 404 for another kind or a
// missing end.
func bindingEnds(w http.ResponseWriter, r *http.Request, v *core.Vhost) (src, dst, kind string, ok bool) {
	src, dst = exchangeName(r.PathValue("source")), r.PathValue("dest")
	switch r.PathValue("kind") {
	case "q":
		kind = "queue"
		_, ok = queueExists(v, dst)
	case "e":
		kind = "exchange"
		dst = exchangeName(dst)
		_, err := v.Exchange(dst)
		ok = err == nil
	}
	if _, err := v.Exchange(src); err != nil {
		ok = false
	}
	if !ok {
		notFound(w)
	}
	return src, dst, kind, ok
}

func (a *API) bindingsBetween(v *core.Vhost, src, dst, kind string) []core.Binding {
	var out []core.Binding
	for _, b := range v.Bindings() {
		if b.Source == src && b.Destination == dst && b.DestinationKind == kind {
			out = append(out, b)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].RoutingKey < out[j].RoutingKey })
	return out
}

func (a *API) listBindingsBetween(w http.ResponseWriter, r *http.Request) {
	v, ok := a.readVhost(w, r)
	if !ok {
		return
	}
	src, dst, kind, ok := bindingEnds(w, r, v)
	if !ok {
		return
	}
	out := []map[string]any{}
	for _, b := range a.bindingsBetween(v, src, dst, kind) {
		out = append(out, bindingJSON(v, b))
	}
	writeJSON(w, http.StatusOK, out)
}

// findBinding returns the binding the path's properties key names.
func (a *API) findBinding(w http.ResponseWriter, r *http.Request, v *core.Vhost) (core.Binding, bool) {
	src, dst, kind, ok := bindingEnds(w, r, v)
	if !ok {
		return core.Binding{}, false
	}
	props := r.PathValue("props")
	for _, b := range a.bindingsBetween(v, src, dst, kind) {
		if propertiesKey(b.RoutingKey, b.Arguments) == props {
			return b, true
		}
	}
	notFound(w)
	return core.Binding{}, false
}

func (a *API) getBinding(w http.ResponseWriter, r *http.Request) {
	v, ok := a.readVhost(w, r)
	if !ok {
		return
	}
	if b, ok := a.findBinding(w, r, v); ok {
		writeJSON(w, http.StatusOK, bindingJSON(v, b))
	}
}

// postBinding binds, from {"routing_key", "arguments"}, and answers 201
// with the new binding's URL in Location, as RabbitMQ does.
func (a *API) postBinding(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	key, _, err := body.str("routing_key")
	var bargs core.Table
	if err == nil {
		bargs, err = body.table("arguments")
	}
	if err != nil {
		badRequest(w, err.Error())
		return
	}
	v, c, ok := a.actAs(w, r)
	if !ok {
		return
	}
	defer c.Close()
	src, dst, kind, ok := bindingEnds(w, r, v)
	if !ok {
		return
	}
	if kind == "queue" {
		err = c.Bind(dst, src, key, bargs)
	} else {
		err = c.BindExchange(dst, src, key, bargs)
	}
	if err != nil {
		writeCoreError(w, err)
		return
	}
	w.Header().Set("Location", bindingPath(v.Name, src, kind, dst, propertiesKey(key, bargs)))
	w.WriteHeader(http.StatusCreated)
}

// bindingPath is the URL path of a binding.
func bindingPath(vhost, src, kind, dst, props string) string {
	if src == "" {
		src = "amq.default"
	}
	return "/api/bindings/" + url.PathEscape(vhost) + "/e/" + url.PathEscape(src) + "/" + kind[:1] + "/" +
		url.PathEscape(dst) + "/" + url.PathEscape(props)
}

func (a *API) deleteBinding(w http.ResponseWriter, r *http.Request) {
	v, c, ok := a.actAs(w, r)
	if !ok {
		return
	}
	defer c.Close()
	b, ok := a.findBinding(w, r, v)
	if !ok {
		return
	}
	var err error
	if b.DestinationKind == "queue" {
		err = c.Unbind(b.Destination, b.Source, b.RoutingKey, b.Arguments)
	} else {
		err = c.UnbindExchange(b.Destination, b.Source, b.RoutingKey, b.Arguments)
	}
	if err != nil {
		writeCoreError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
