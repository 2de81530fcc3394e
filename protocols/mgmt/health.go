package mgmt

import (
	"fmt"
	"net/http"

	"github.com/unifiedms/ums/core"
)

// Health: RabbitMQ's aliveness test, and the plain probes an orchestrator
// polls (Kubernetes liveness and readiness), which need no login.

// probeRoutes adds /healthz and /readyz, served without authentication.
func (a *API) probeRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", a.readyz)
}

// readyz answers 200 once the node serves (recovery done, listeners
// open), and 503 with the reason while it does not (starting, shutting
// down) or while an alarm blocks publishers.
func (a *API) readyz(w http.ResponseWriter, r *http.Request) {
	reason := ""
	if a.Ready != nil {
		if err := a.Ready(); err != nil {
			reason = err.Error()
		}
	}
	if reason == "" {
		for _, al := range a.Broker.Alarms() {
			if al.Blocking {
				reason = fmt.Sprintf("resource alarm in effect, publishers blocked: %s", al.Reason)
				break
			}
		}
	}
	if reason != "" {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "failed", "reason": reason})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// alivenessQueue is the queue RabbitMQ's aliveness test uses.
const alivenessQueue = "aliveness-test"

// aliveness declares the aliveness-test queue in the vhost, publishes a
// message to it and gets it back, as the acting user: {"status": "ok"},
// or 503 with {"status": "failed", "reason"} when the round trip fails.
// Monitoring users may run it, as in RabbitMQ (their permissions on the
// vhost still apply).
func (a *API) aliveness(w http.ResponseWriter, r *http.Request) {
	v, c, ok := a.openConn(w, r, false)
	if !ok {
		return
	}
	defer c.Close()
	fail := func(err error) {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "failed", "reason": err.Error()})
	}
	if _, err := c.DeclareQueue(alivenessQueue, core.QueueOptions{}); err != nil {
		fail(err)
		return
	}
	x, err := c.PublishExchange("")
	if err != nil {
		fail(err)
		return
	}
	var router core.Router
	msg := &core.Message{RoutingKey: alivenessQueue, Body: []byte("test_message")}
	if _, err := v.PublishTo(&router, x, msg, nil); err != nil {
		fail(err)
		return
	}
	q, err := c.ReadQueue(alivenessQueue)
	if err != nil {
		fail(err)
		return
	}
	s := c.NewSession()
	defer s.Close()
	d, _, ok, err := s.Get(q, true)
	if err == nil && (!ok || string(d.Msg.Body) != string(msg.Body)) {
		err = fmt.Errorf("aliveness test message not received")
	}
	if err != nil {
		fail(err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}
