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
		var hdr map[string]string
		if e.idemKey != "" {
			hdr = map[string]string{"Idempotency-Key": e.idemKey}
		}
		answer, err := e.c.callWith(http.MethodPost, "/api/v1/notifications", data, hdr)
		if err != nil {
			return err
		}
		var a map[string]any
		if err := decode(answer, &a); err != nil {
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
		answer, err := e.c.call(http.MethodPost, "/api/v1/notifications/"+esc(arg)+"/retry", []byte{})
		if err != nil {
			return err
		}
		var a map[string]any
		if err := decode(answer, &a); err != nil {
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
