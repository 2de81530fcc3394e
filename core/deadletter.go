package core

import "time"

// deadLetter republishes msg, which left q for reason, to q's dead-letter
// exchange with the x-death history RabbitMQ writes. Messages that would
// run in a cycle without a rejection in it are dropped, as RabbitMQ does.
func (v *Vhost) deadLetter(q *Queue, msg *Message, reason string) {
	if !q.args.hasDLX {
		return
	}
	x := v.lookupExchange(q.args.dlx)
	if x == nil {
		return // RabbitMQ drops dead letters for a missing exchange
	}
	dm := deadLetterMessage(msg, q, reason, v.broker.clock.Now())
	var r Router
	qs := r.route(x, dm)
	targets := qs[:0]
	for _, target := range qs {
		if !inDeathCycle(dm, target) {
			targets = append(targets, target)
		}
	}
	if len(targets) > 0 {
		v.deliverTo(&r, targets, dm, v.broker.clock.Now(), nil)
	}
}

// deadLetterMessage returns a copy of msg addressed to q's dead-letter
// exchange, with x-death updated and the expiration removed.
func deadLetterMessage(msg *Message, q *Queue, reason string, now time.Time) *Message {
	dm := *msg
	dm.Exchange = q.args.dlx
	if q.args.hasDLRK {
		dm.RoutingKey = q.args.dlrk
	}
	h := make(Table, len(msg.Props.Headers)+4)
	for k, val := range msg.Props.Headers {
		h[k] = val
	}
	var deaths []any
	if old, ok := h["x-death"].([]any); ok {
		deaths = old
	}
	var entry Table
	rest := make([]any, 0, len(deaths)+1)
	for _, d := range deaths {
		t := asTable(d)
		if entry == nil && t != nil && t["queue"] == q.Name && t["reason"] == reason {
			entry = make(Table, len(t))
			for k, val := range t {
				entry[k] = val
			}
			continue
		}
		rest = append(rest, d)
	}
	if entry == nil {
		entry = Table{"count": int64(0), "reason": reason, "queue": q.Name, "exchange": msg.Exchange,
			"routing-keys": []any{msg.RoutingKey}}
		if msg.Props.Expiration != "" {
			entry["original-expiration"] = msg.Props.Expiration
		}
	}
	n, _ := toInt64(entry["count"])
	entry["count"] = n + 1
	entry["time"] = now.Truncate(time.Second)
	h["x-death"] = append([]any{entry}, rest...)
	if _, ok := h["x-first-death-reason"]; !ok {
		h["x-first-death-reason"] = reason
		h["x-first-death-queue"] = q.Name
		h["x-first-death-exchange"] = msg.Exchange
	}
	h["x-last-death-reason"] = reason
	h["x-last-death-queue"] = q.Name
	h["x-last-death-exchange"] = msg.Exchange
	dm.Props.Headers = h
	dm.Props.Expiration = ""
	dm.Props.Present &^= PresentExpiration
	return &dm
}

// asTable returns a nested table whatever named map type the protocol used.
func asTable(v any) Table {
	switch t := v.(type) {
	case Table:
		return t
	}
	if m, ok := tableOf(v); ok {
		return m
	}
	return nil
}

// inDeathCycle reports whether delivering dm to target closes a cycle of
// dead-lettering that contains no rejection.
func inDeathCycle(dm *Message, target *Queue) bool {
	deaths, _ := dm.Props.Headers["x-death"].([]any)
	seen := false
	for _, d := range deaths {
		t := asTable(d)
		if t == nil {
			continue
		}
		if t["reason"] == ReasonRejected {
			return false
		}
		if t["queue"] == target.Name {
			seen = true
		}
	}
	return seen
}
