package main

import (
	"fmt"
	"net/http"
	"strings"
)

// status prints /api/overview.
func (e *env) status() error {
	var o map[string]any
	if err := e.c.getJSON("/api/overview", &o); err != nil {
		return err
	}
	if e.format == "json" {
		return e.printJSON(o)
	}
	totals, _ := o["object_totals"].(map[string]any)
	q, _ := o["queue_totals"].(map[string]any)
	rows := []map[string]any{
		{"key": "product", "value": fmt.Sprintf("%s %s (RabbitMQ API %s)", cell(o["product_name"]),
			cell(o["product_version"]), cell(o["rabbitmq_version"]))},
	}
	for _, k := range []string{"connections", "channels", "exchanges", "queues", "consumers"} {
		rows = append(rows, map[string]any{"key": k, "value": totals[k]})
	}
	rows = append(rows, map[string]any{"key": "messages", "value": fmt.Sprintf("%s (ready %s, unacknowledged %s)",
		cell(q["messages"]), cell(q["messages_ready"]), cell(q["messages_unacknowledged"]))})
	alarms := "none"
	if list, _ := o["alarms"].([]any); len(list) > 0 {
		var parts []string
		for _, a := range list {
			m, _ := a.(map[string]any)
			parts = append(parts, fmt.Sprintf("%s: %s", cell(m["resource"]), cell(m["reason"])))
		}
		alarms = strings.Join(parts, "; ")
	}
	rows = append(rows, map[string]any{"key": "alarms", "value": alarms})
	if n, ok := o["notifications"].(map[string]any); ok {
		guards := "ok"
		if ok, _ := n["guards_ok"].(bool); !ok {
			guards = "down: " + cell(n["guards"])
		}
		channels := "none"
		if list, _ := n["channels"].([]any); len(list) > 0 {
			channels = cell(list)
		}
		rows = append(rows, map[string]any{"key": "notifications",
			"value": fmt.Sprintf("channels %s; guards %s", channels, guards)})
	}
	return e.printTable([]string{"key", "value"}, rows)
}

// listColumns are the table columns of each listing.
var listColumns = map[string][]string{
	"queues":      {"vhost", "name", "messages", "messages_ready", "messages_unacknowledged", "consumers", "durable", "auto_delete"},
	"exchanges":   {"vhost", "name", "type", "durable", "auto_delete", "internal"},
	"bindings":    {"vhost", "source", "destination", "destination_type", "routing_key", "properties_key"},
	"connections": {"name", "user", "vhost", "protocol", "peer_host", "peer_port", "channels"},
	"users":       {"name", "tags"},
	"vhosts":      {"name"},
}

// list prints a listing; queues, exchanges and bindings are of --vhost
// when it is given, else of every vhost the user sees.
func (e *env) list(what string) error {
	columns, ok := listColumns[what]
	if !ok {
		return usagef("list: unknown object type %q (queues, exchanges, bindings, connections, users, vhosts)", what)
	}
	path := "/api/" + what
	if !e.allHosts && (what == "queues" || what == "exchanges" || what == "bindings") {
		path += "/" + esc(e.c.vhost)
	}
	var rows []map[string]any
	if err := e.c.getJSON(path, &rows); err != nil {
		return err
	}
	if e.format == "json" {
		return e.printJSON(rows)
	}
	// The default exchange by the name the commands take for it.
	for _, r := range rows {
		if what == "exchanges" && r["name"] == "" {
			r["name"] = "amq.default"
		}
		if what == "bindings" && r["source"] == "" {
			r["source"] = "amq.default"
		}
	}
	return e.printTable(columns, rows)
}

// object declares, deletes or purges a queue, exchange or binding.
func (e *env) object(verb, kind string, kv map[string]string) error {
	var err error
	switch verb + " " + kind {
	case "declare queue":
		err = e.declareQueue(kv)
	case "declare exchange":
		err = e.declareExchange(kv)
	case "declare binding":
		err = e.declareBinding(kv)
	case "delete queue":
		err = e.deleteQueue(kv)
	case "delete exchange":
		err = e.deleteExchange(kv)
	case "delete binding":
		err = e.deleteBinding(kv)
	case "purge queue":
		err = e.purgeQueue(kv)
	default:
		return usagef("%s: unknown object type %q", verb, kind)
	}
	if err != nil {
		return err
	}
	past := map[string]string{"declare": "declared", "delete": "deleted", "purge": "purged"}[verb]
	fmt.Fprintf(e.stdout, "%s %s\n", kind, past)
	return nil
}

func (e *env) vhostPath() string { return esc(e.c.vhost) }

func (e *env) declareQueue(kv map[string]string) error {
	if err := only(kv, []string{"name"}, "durable", "auto_delete", "arguments"); err != nil {
		return err
	}
	body := map[string]any{}
	for _, k := range []string{"durable", "auto_delete"} {
		b, err := boolArg(kv, k, k == "durable")
		if err != nil {
			return err
		}
		body[k] = b
	}
	a, err := objectArg(kv, "arguments")
	if err != nil {
		return err
	}
	body["arguments"] = a
	return e.c.sendJSON(http.MethodPut, "/api/queues/"+e.vhostPath()+"/"+esc(kv["name"]), body, nil)
}

func (e *env) declareExchange(kv map[string]string) error {
	if err := only(kv, []string{"name"}, "type", "durable", "auto_delete", "internal", "arguments"); err != nil {
		return err
	}
	body := map[string]any{"type": or(kv["type"], "direct")}
	for _, k := range []string{"durable", "auto_delete", "internal"} {
		b, err := boolArg(kv, k, k == "durable")
		if err != nil {
			return err
		}
		body[k] = b
	}
	a, err := objectArg(kv, "arguments")
	if err != nil {
		return err
	}
	body["arguments"] = a
	return e.c.sendJSON(http.MethodPut, "/api/exchanges/"+e.vhostPath()+"/"+esc(kv["name"]), body, nil)
}

// bindingBase is the path of the bindings between source and destination.
func (e *env) bindingBase(kv map[string]string) (string, error) {
	kind := "q"
	switch kv["destination_type"] {
	case "", "queue":
	case "exchange":
		kind = "e"
	default:
		return "", usagef("destination_type= must be queue or exchange, not %q", kv["destination_type"])
	}
	return "/api/bindings/" + e.vhostPath() + "/e/" + esc(or(kv["source"], "amq.default")) + "/" + kind + "/" +
		esc(kv["destination"]), nil
}

func (e *env) declareBinding(kv map[string]string) error {
	if err := only(kv, []string{"source", "destination"}, "destination_type", "routing_key", "arguments"); err != nil {
		return err
	}
	path, err := e.bindingBase(kv)
	if err != nil {
		return err
	}
	a, err := objectArg(kv, "arguments")
	if err != nil {
		return err
	}
	return e.c.sendJSON(http.MethodPost, path, map[string]any{"routing_key": kv["routing_key"], "arguments": a}, nil)
}

func (e *env) deleteQueue(kv map[string]string) error {
	if err := only(kv, []string{"name"}, "if_unused", "if_empty"); err != nil {
		return err
	}
	path := "/api/queues/" + e.vhostPath() + "/" + esc(kv["name"])
	var query []string
	for _, k := range []string{"if_unused", "if_empty"} {
		b, err := boolArg(kv, k, false)
		if err != nil {
			return err
		}
		if b {
			query = append(query, strings.ReplaceAll(k, "_", "-")+"=true")
		}
	}
	if len(query) > 0 {
		path += "?" + strings.Join(query, "&")
	}
	_, err := e.c.call(http.MethodDelete, path, nil)
	return err
}

func (e *env) deleteExchange(kv map[string]string) error {
	if err := only(kv, []string{"name"}, "if_unused"); err != nil {
		return err
	}
	path := "/api/exchanges/" + e.vhostPath() + "/" + esc(kv["name"])
	if b, err := boolArg(kv, "if_unused", false); err != nil {
		return err
	} else if b {
		path += "?if-unused=true"
	}
	_, err := e.c.call(http.MethodDelete, path, nil)
	return err
}

// deleteBinding deletes the binding named by properties_key=, or the one
// with routing_key= (default "") when exactly one has it.
func (e *env) deleteBinding(kv map[string]string) error {
	if err := only(kv, []string{"source", "destination"}, "destination_type", "routing_key", "properties_key"); err != nil {
		return err
	}
	base, err := e.bindingBase(kv)
	if err != nil {
		return err
	}
	props, ok := kv["properties_key"]
	if !ok {
		var list []map[string]any
		if err := e.c.getJSON(base, &list); err != nil {
			return err
		}
		var keys []string
		for _, b := range list {
			if b["routing_key"] == kv["routing_key"] {
				keys = append(keys, str(b["properties_key"]))
			}
		}
		switch len(keys) {
		case 0:
			return fmt.Errorf("no binding with routing key %q", kv["routing_key"])
		case 1:
			props = keys[0]
		default:
			return fmt.Errorf("%d bindings with routing key %q (different arguments): give properties_key= (one of %s)",
				len(keys), kv["routing_key"], strings.Join(keys, ", "))
		}
	}
	_, err = e.c.call(http.MethodDelete, base+"/"+esc(props), nil)
	return err
}

func (e *env) purgeQueue(kv map[string]string) error {
	if err := only(kv, []string{"name"}); err != nil {
		return err
	}
	_, err := e.c.call(http.MethodDelete, "/api/queues/"+e.vhostPath()+"/"+esc(kv["name"])+"/contents", nil)
	return err
}

// closeConnection closes a connection by name, as the API lists it.
func (e *env) closeConnection(name string) error {
	if _, err := e.c.call(http.MethodDelete, "/api/connections/"+esc(name), nil); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, "connection closed")
	return nil
}

// str is v when it is a string, else "".
func str(v any) string {
	s, _ := v.(string)
	return s
}
