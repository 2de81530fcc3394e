package mgmt

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/unifiedms/ums/core"
	"github.com/unifiedms/ums/core/auth"
)

// Publishing and getting messages over HTTP, as RabbitMQ's
// rabbit_mgmt_wm_exchange_publish and rabbit_mgmt_wm_queue_get: meant for
// testing and looking, not for throughput.

// maxPublishBody bounds the JSON body of a publish (the payload, maybe in
// base64, and its properties).
const maxPublishBody = 64 << 20

func (a *API) messageRoutes(mux *http.ServeMux) {
	handle(mux, "POST /api/exchanges/{vhost}/{name}/publish", a.publish)
	handle(mux, "POST /api/queues/{vhost}/{name}/get", a.get)
}

// propertyFields are the AMQP basic properties in RabbitMQ's JSON names,
// in the order of Properties.Present's bits (most significant first).
var propertyFields = [...]string{"content_type", "content_encoding", "headers", "delivery_mode", "priority",
	"correlation_id", "reply_to", "expiration", "message_id", "timestamp", "type", "user_id", "app_id", "cluster_id"}

// presentBit is the Properties.Present bit of propertyFields[i].
func presentBit(i int) uint16 { return 1 << (15 - i) }

// decodeProperties reads RabbitMQ's "properties" object.
func decodeProperties(raw json.RawMessage) (core.Properties, error) {
	var p core.Properties
	if len(raw) == 0 || string(raw) == "null" {
		return p, nil
	}
	var fields body
	if err := json.Unmarshal(raw, &fields); err != nil {
		return p, fmt.Errorf("properties must be a JSON object")
	}
	strs := map[string]*string{"content_type": &p.ContentType, "content_encoding": &p.ContentEncoding,
		"correlation_id": &p.CorrelationID, "reply_to": &p.ReplyTo, "expiration": &p.Expiration,
		"message_id": &p.MessageID, "type": &p.Type, "user_id": &p.UserID, "app_id": &p.AppID,
		"cluster_id": &p.ClusterID}
	for i, name := range propertyFields {
		if _, ok := fields[name]; !ok {
			continue
		}
		var err error
		switch name {
		case "headers":
			p.Headers, err = fields.table(name)
		case "delivery_mode", "priority":
			var n int64
			if n, err = fields.integer(name, 0); err == nil && (n < 0 || n > 255) {
				err = fmt.Errorf("%s out of range", name)
			}
			if name == "delivery_mode" {
				p.DeliveryMode = uint8(n)
			} else {
				p.Priority = uint8(n)
			}
		case "timestamp":
			var n int64
			n, err = fields.integer(name, 0)
			p.Timestamp = time.Unix(n, 0)
		default:
			*strs[name], _, err = fields.str(name)
		}
		if err != nil {
			return p, err
		}
		p.Present |= presentBit(i)
	}
	for name := range fields {
		if _, ok := strs[name]; !ok && name != "headers" && name != "delivery_mode" && name != "priority" && name != "timestamp" {
			return p, fmt.Errorf("unknown property %q", name)
		}
	}
	return p, nil
}

// propertiesJSON shows the properties a message has, in RabbitMQ's names.
func propertiesJSON(p core.Properties) map[string]any {
	out := map[string]any{}
	vals := [...]any{p.ContentType, p.ContentEncoding, nil, p.DeliveryMode, p.Priority, p.CorrelationID,
		p.ReplyTo, p.Expiration, p.MessageID, nil, p.Type, p.UserID, p.AppID, p.ClusterID}
	for i, name := range propertyFields {
		present := p.Present&presentBit(i) != 0
		switch name {
		case "headers":
			if p.Headers != nil {
				out[name] = toJSON(p.Headers)
			}
		case "timestamp":
			if !p.Timestamp.IsZero() {
				out[name] = p.Timestamp.Unix()
			}
		default:
			switch v := vals[i].(type) {
			case string:
				if v != "" || present {
					out[name] = v
				}
			case uint8:
				if v != 0 || present {
					out[name] = v
				}
			}
		}
	}
	return out
}

// publish publishes one message: {"properties", "routing_key", "payload",
// "payload_encoding": "string" or "base64"} answers {"routed": bool}. A
// persistent message that reaches a durable queue is answered after it is
// stored.
func (a *API) publish(w http.ResponseWriter, r *http.Request) {
	b, ok := readBodyLimit(w, r, maxPublishBody)
	if !ok {
		return
	}
	f, ok := b.required(w, "routing_key", "payload")
	if !ok {
		return
	}
	enc, _, err := b.str("payload_encoding")
	var payload []byte
	if err == nil {
		switch enc {
		case "", "string":
			payload = []byte(f[1])
		case "base64":
			if payload, err = base64.StdEncoding.DecodeString(f[1]); err != nil {
				err = fmt.Errorf("payload is not valid base64")
			}
		default:
			err = fmt.Errorf("payload_encoding must be string or base64")
		}
	}
	var props core.Properties
	if err == nil {
		props, err = decodeProperties(b["properties"])
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
	if props.UserID != "" && props.UserID != c.User {
		badRequest(w, fmt.Sprintf("406 PRECONDITION_FAILED - user_id property set to '%s' but authenticated user was '%s'", props.UserID, c.User))
		return
	}
	name := exchangeName(r.PathValue("name"))
	x, err := c.PublishExchange(name)
	if err == nil {
		err = c.AllowTopic(auth.Write, x, f[0])
	}
	if err != nil {
		writeCoreError(w, err)
		return
	}
	if gate := a.Broker.PublishGate(); gate != nil {
		// Publishers are blocked by a memory or disk alarm.
		select {
		case <-gate:
		case <-r.Context().Done():
			return
		}
	}
	stored := make(chan error, 1)
	var router core.Router
	res, err := v.PublishTo(&router, x, &core.Message{Exchange: name, RoutingKey: f[0], Props: props, Body: payload},
		func(err error) { stored <- err })
	if err == nil && res.Stored {
		err = <-stored
	}
	if err != nil {
		writeCoreError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"routed": res.Queues > 0 || res.Scheduled > 0})
}

// get takes up to "count" messages from a queue and settles them by
// "ackmode": ack_requeue_false removes them, reject_requeue_false
// dead-letters them, ack_requeue_true and reject_requeue_true put them
// back (marked redelivered). "encoding" auto shows a UTF-8 payload as a
// string and others in base64; "truncate" cuts payloads to that many
// bytes.
func (a *API) get(w http.ResponseWriter, r *http.Request) {
	b, ok := readBody(w, r)
	if !ok {
		return
	}
	f, ok := b.required(w, "ackmode", "encoding")
	if !ok {
		return
	}
	count, err := b.integer("count", -1)
	if err == nil && count < 0 {
		err = fmt.Errorf("key_missing: count")
	}
	var truncate int64
	if err == nil {
		truncate, err = b.integer("truncate", -1)
	}
	ackmode, encoding := f[0], f[1]
	if err == nil {
		switch {
		case ackmode != "ack_requeue_true" && ackmode != "ack_requeue_false" &&
			ackmode != "reject_requeue_true" && ackmode != "reject_requeue_false":
			err = fmt.Errorf("Unknown ackmode: %s", ackmode)
		case encoding != "auto" && encoding != "base64":
			err = fmt.Errorf("Unknown encoding: %s", encoding)
		}
	}
	if err != nil {
		badRequest(w, err.Error())
		return
	}
	_, c, ok := a.actAs(w, r)
	if !ok {
		return
	}
	defer c.Close()
	q, err := c.ReadQueue(r.PathValue("name"))
	if err != nil {
		writeCoreError(w, err)
		return
	}
	s := c.NewSession()
	defer s.Close()
	out := []map[string]any{}
	var tags []uint64
	for range count {
		d, remaining, ok, err := s.Get(q, false)
		if err != nil {
			writeCoreError(w, err)
			return
		}
		if !ok {
			break
		}
		tags = append(tags, d.Tag)
		out = append(out, deliveryJSON(d, remaining, encoding, truncate))
	}
	requeue := ackmode == "ack_requeue_true" || ackmode == "reject_requeue_true"
	for _, tag := range tags {
		if ackmode == "ack_requeue_false" {
			err = s.Ack(tag, false)
		} else {
			err = s.Nack(tag, false, requeue)
		}
		if err != nil {
			writeCoreError(w, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func deliveryJSON(d core.Delivery, remaining int, encoding string, truncate int64) map[string]any {
	payload := d.Msg.Body
	if truncate >= 0 && int64(len(payload)) > truncate {
		payload = payload[:truncate]
	}
	m := map[string]any{"payload_bytes": len(d.Msg.Body), "redelivered": d.Redelivered,
		"exchange": d.Msg.Exchange, "routing_key": d.Msg.RoutingKey, "message_count": remaining,
		"properties": propertiesJSON(d.Msg.Props)}
	if encoding == "auto" && utf8.Valid(payload) {
		m["payload"], m["payload_encoding"] = string(payload), "string"
	} else {
		m["payload"], m["payload_encoding"] = base64.StdEncoding.EncodeToString(payload), "base64"
	}
	return m
}
