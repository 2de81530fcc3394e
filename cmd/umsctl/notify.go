package main

import (
	"fmt"
	"net/http"
)

// notify runs "notify send|status|retry ARG" against /api/v1, in the
// vhost --vhost names (header X-UMS-Vhost).
func (e *env) notify(verb, arg string) error {
	switch verb {
	case "send":
		data, err := e.readInput(arg)
		if err != nil {
			return err
		}
		var a map[string]any
		if err := e.c.sendRaw(http.MethodPost, "/api/v1/notifications", data, &a); err != nil {
			return err
		}
		return e.printAccepted(a)
	case "status":
		var rec map[string]any
		if err := e.c.getJSON("/api/v1/notifications/"+esc(arg), &rec); err != nil {
			return err
		}
		if e.format == "json" {
			return e.printJSON(rec)
		}
		if err := e.printTable([]string{"id", "status", "channel", "class", "priority", "error", "updated_at"},
			[]map[string]any{rec}); err != nil {
			return err
		}
		attempts, _ := rec["attempts"].([]any)
		if len(attempts) == 0 {
			return nil
		}
		rows := make([]map[string]any, 0, len(attempts))
		for _, a := range attempts {
			if m, ok := a.(map[string]any); ok {
				rows = append(rows, m)
			}
		}
		fmt.Fprintln(e.stdout)
		return e.printTable([]string{"attempt", "channel", "at", "status", "provider", "error"}, rows)
	case "retry":
		var a map[string]any
		if err := e.c.sendRaw(http.MethodPost, "/api/v1/notifications/"+esc(arg)+"/retry", nil, &a); err != nil {
			return err
		}
		return e.printAccepted(a)
	}
	return usagef("notify: unknown action %q (send, status, retry)", verb)
}

// printAccepted shows the answer to a submission or retry.
func (e *env) printAccepted(a map[string]any) error {
	if e.format == "json" {
		return e.printJSON(a)
	}
	line := str(a["id"]) + " " + str(a["status"])
	if d, _ := a["deduplicated"].(bool); d {
		line += " (deduplicated)"
	}
	fmt.Fprintln(e.stdout, line)
	return nil
}

// sendRaw sends body as it is (nil for none) and decodes the answer into
// out.
func (c *client) sendRaw(method, path string, body []byte, out any) error {
	if body == nil {
		body = []byte{}
	}
	data, err := c.call(method, path, body)
	if err != nil {
		return err
	}
	return decode(data, out)
}
