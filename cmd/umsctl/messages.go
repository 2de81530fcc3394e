package main

import (
	"fmt"
	"net/http"
)

// publish publishes one message through POST /api/exchanges/…/publish.
// Without payload= the payload is read from stdin.
func (e *env) publish(kv map[string]string) error {
	if err := only(kv, []string{"routing_key"}, "exchange", "payload", "payload_encoding", "properties"); err != nil {
		return err
	}
	props, err := objectArg(kv, "properties")
	if err != nil {
		return err
	}
	payload, ok := kv["payload"]
	if !ok {
		data, err := e.readInput("-")
		if err != nil {
			return err
		}
		payload = string(data)
	}
	body := map[string]any{"routing_key": kv["routing_key"], "payload": payload,
		"payload_encoding": or(kv["payload_encoding"], "string"), "properties": props}
	var res struct {
		Routed bool `json:"routed"`
	}
	path := "/api/exchanges/" + e.vhostPath() + "/" + esc(or(kv["exchange"], "amq.default")) + "/publish"
	if err := e.c.sendJSON(http.MethodPost, path, body, &res); err != nil {
		return err
	}
	if e.format == "json" {
		return e.printJSON(res)
	}
	if res.Routed {
		fmt.Fprintln(e.stdout, "message published")
	} else {
		fmt.Fprintln(e.stdout, "message published but NOT routed")
	}
	return nil
}

// get takes messages from a queue through POST /api/queues/…/get. The
// default ackmode, ack_requeue_true, leaves them in the queue.
func (e *env) get(kv map[string]string) error {
	if err := only(kv, []string{"queue"}, "count", "ackmode", "encoding", "truncate"); err != nil {
		return err
	}
	count, err := intArg(kv, "count", 1)
	if err != nil {
		return err
	}
	body := map[string]any{"count": count, "ackmode": or(kv["ackmode"], "ack_requeue_true"),
		"encoding": or(kv["encoding"], "auto")}
	if _, ok := kv["truncate"]; ok {
		n, err := intArg(kv, "truncate", 0)
		if err != nil {
			return err
		}
		body["truncate"] = n
	}
	var msgs []map[string]any
	if err := e.c.sendJSON(http.MethodPost, "/api/queues/"+e.vhostPath()+"/"+esc(kv["queue"])+"/get", body, &msgs); err != nil {
		return err
	}
	if e.format == "json" {
		return e.printJSON(msgs)
	}
	if len(msgs) == 0 {
		fmt.Fprintln(e.stdout, "no messages")
		return nil
	}
	return e.printTable([]string{"routing_key", "exchange", "message_count", "payload", "payload_bytes",
		"payload_encoding", "redelivered", "properties"}, msgs)
}
