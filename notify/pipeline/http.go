package pipeline

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/unifiedms/ums/core"
	"github.com/unifiedms/ums/core/auth"
	"github.com/unifiedms/ums/notify"
)

// Limits of the HTTP API.
const (
	MaxBody      = 1 << 20 // one notification, template or tenant
	MaxBatch     = 1000
	MaxBatchBody = 64 << 20
)

// VhostHeader picks the vhost of a request (default "/").
const VhostHeader = "X-UMS-Vhost"

// Handler serves the notification API under /api/v1/. Every request needs
// HTTP basic auth as a UMS user with write permission on the ums.notify
// exchange of the vhost; changing templates, tenants and opt-outs needs
// configure permission on it too.
func (p *Pipeline) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/notifications", p.authed(auth.Write, p.submit))
	mux.HandleFunc("POST /api/v1/notifications/batch", p.authed(auth.Write, p.submitBatch))
	mux.HandleFunc("GET /api/v1/notifications", p.authed(auth.Write, p.listNotifications))
	mux.HandleFunc("GET /api/v1/notifications/{id}", p.authed(auth.Write, p.getNotification))
	mux.HandleFunc("POST /api/v1/notifications/{id}/retry", p.authed(auth.Write, p.retryNotification))
	mux.HandleFunc("GET /api/v1/dead-letters", p.authed(auth.Write, p.listDead))
	mux.HandleFunc("POST /api/v1/dead-letters/retry", p.authed(auth.Configure, p.retryAllDead))
	mux.HandleFunc("GET /api/v1/templates", p.authed(auth.Write, p.listTemplates))
	mux.HandleFunc("GET /api/v1/templates/{id}", p.authed(auth.Write, p.getTemplate))
	mux.HandleFunc("PUT /api/v1/templates/{id}", p.authed(auth.Configure, p.putTemplate))
	mux.HandleFunc("DELETE /api/v1/templates/{id}", p.authed(auth.Configure, p.deleteTemplate))
	mux.HandleFunc("POST /api/v1/templates/{id}/preview", p.authed(auth.Write, p.previewTemplate))
	mux.HandleFunc("GET /api/v1/tenants", p.authed(auth.Write, p.listTenants))
	mux.HandleFunc("GET /api/v1/stats", p.authed(auth.Write, p.getStats))
	mux.HandleFunc("GET /api/v1/tenants/{tenant}", p.authed(auth.Write, p.getTenant))
	mux.HandleFunc("PUT /api/v1/tenants/{tenant}", p.authed(auth.Configure, p.putTenant))
	mux.HandleFunc("DELETE /api/v1/tenants/{tenant}", p.authed(auth.Configure, p.deleteTenant))
	mux.HandleFunc("GET /api/v1/optouts/{tenant}/{address}", p.authed(auth.Write, p.getOptout))
	mux.HandleFunc("PUT /api/v1/optouts/{tenant}/{address}", p.authed(auth.Configure, p.putOptout))
	mux.HandleFunc("DELETE /api/v1/optouts/{tenant}/{address}", p.authed(auth.Configure, p.deleteOptout))
	mux.HandleFunc("/api/v1/", func(w http.ResponseWriter, r *http.Request) {
		apiError(w, http.StatusNotFound, "no such endpoint", "", "")
	})
	return mux
}

type ctxVhost struct{}

// authed checks the request's credentials and permission, and finds the
// pipeline's state in its vhost.
func (p *Pipeline) authed(need auth.Access, h func(http.ResponseWriter, *http.Request, *vstate)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		if !ok || p.o.Users == nil {
			w.Header().Set("WWW-Authenticate", `Basic realm="UMS"`)
			apiError(w, http.StatusUnauthorized, "authentication required", "", "")
			return
		}
		if _, err := p.o.Users.Authenticate(user, pass, auth.LoopbackHostPort(r.RemoteAddr)); err != nil {
			// The request's own goroutine waits out the login
			// failure delay (or the client's going away).
			select {
			case <-p.o.Broker.LoginFailed():
			case <-r.Context().Done():
			}
			w.Header().Set("WWW-Authenticate", `Basic realm="UMS"`)
			apiError(w, http.StatusUnauthorized, "login failed", "", "")
			return
		}
		vhost := r.Header.Get(VhostHeader)
		if vhost == "" {
			vhost = "/"
		}
		if !p.o.Users.CanAccessVhost(user, vhost) || !p.o.Users.Check(user, vhost, auth.Write, notify.SubmitExchange) ||
			(need == auth.Configure && !p.o.Users.Check(user, vhost, auth.Configure, notify.SubmitExchange)) {
			apiError(w, http.StatusForbidden, "user "+strconv.Quote(user)+" has no "+need.String()+
				" permission on exchange ums.notify in vhost "+strconv.Quote(vhost), "", "")
			return
		}
		s, err := p.vhost(vhost)
		if err != nil {
			status := http.StatusServiceUnavailable
			if errors.Is(err, core.ErrNotFound) {
				status = http.StatusNotFound
			}
			apiError(w, status, err.Error(), "", "")
			return
		}
		h(w, r, s)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// apiError answers {"error", "field", "reason"}.
func apiError(w http.ResponseWriter, status int, msg, field, reason string) {
	body := map[string]string{"error": msg}
	if field != "" {
		body["field"] = field
		body["reason"] = reason
	}
	writeJSON(w, status, body)
}

// readBody reads at most limit bytes; ok is false (and 413 answered) when
// the body is longer.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, bool) {
	b, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		apiError(w, http.StatusBadRequest, "reading the body: "+err.Error(), "", "")
		return nil, false
	}
	if int64(len(b)) > limit {
		apiError(w, http.StatusRequestEntityTooLarge, "body over "+strconv.FormatInt(limit, 10)+" bytes", "", "")
		return nil, false
	}
	return b, true
}

// failure maps a refused submission to its status and body.
func failure(err error) (int, map[string]any) {
	var ie *notify.InvalidError
	switch {
	case errors.As(err, &ie):
		return http.StatusUnprocessableEntity, map[string]any{"error": ie.Error(), "field": ie.Field, "reason": ie.Reason}
	case errors.Is(err, notify.ErrMalformed):
		return http.StatusBadRequest, map[string]any{"error": err.Error()}
	case errors.Is(err, ErrUnavailable):
		return http.StatusServiceUnavailable, map[string]any{"error": err.Error()}
	}
	return http.StatusInternalServerError, map[string]any{"error": err.Error()}
}

// submitOne decodes and accepts one notification.
func (s *vstate) submitOne(r *http.Request, router *core.Router, body []byte) (int, any) {
	n, err := notify.Decode(body)
	return s.acceptOne(r, router, n, err)
}

// acceptOne accepts n, which decoding returned with err.
func (s *vstate) acceptOne(r *http.Request, router *core.Router, n *notify.Notification, err error) (int, any) {
	if err != nil {
		return failure(err)
	}
	return answer(s.accept(r.Context(), router, n, r.Header.Get("Idempotency-Key")))
}

func (p *Pipeline) submit(w http.ResponseWriter, r *http.Request, s *vstate) {
	body, ok := readBody(w, r, MaxBody)
	if !ok {
		return
	}
	var router core.Router
	status, v := s.submitOne(r, &router, body)
	writeJSON(w, status, v)
}

// submitBatch accepts {"notifications": [...]}: each one is validated and
// answered on its own, in order, with its HTTP status in "code".
func (p *Pipeline) submitBatch(w http.ResponseWriter, r *http.Request, s *vstate) {
	body, ok := readBody(w, r, MaxBatchBody)
	if !ok {
		return
	}
	items, err := notify.DecodeBatch(body)
	if err != nil {
		apiError(w, http.StatusBadRequest, err.Error(), "", "")
		return
	}
	if len(items) == 0 {
		apiError(w, http.StatusUnprocessableEntity, "invalid notifications: required", "notifications", "required")
		return
	}
	if len(items) > MaxBatch {
		apiError(w, http.StatusUnprocessableEntity, "invalid notifications: too many", "notifications",
			"at most "+strconv.Itoa(MaxBatch)+" per batch")
		return
	}
	out := s.acceptBatch(r, items)
	writeJSON(w, http.StatusOK, struct {
		Results []batchResult `json:"results"`
	}{out})
}

// acceptBatch accepts a batch's notifications (acceptAll) and answers
// each.
func (s *vstate) acceptBatch(r *http.Request, items []notify.BatchItem) []batchResult {
	out := make([]batchResult, len(items))
	ns := make([]*notify.Notification, len(items))
	keys := make([]string, len(items))
	key := r.Header.Get("Idempotency-Key")
	for i, item := range items {
		switch {
		case item.Size > MaxBody:
			out[i] = batchResult{Code: http.StatusRequestEntityTooLarge, Error: "notification over 1 MiB"}
		case item.Err != nil:
			out[i] = newBatchResult(failure(item.Err))
		default:
			ns[i], keys[i] = item.N, key
		}
	}
	var router core.Router
	res := make([]outcome, len(items))
	s.acceptAll(r.Context(), &router, ns, keys, res)
	for i, n := range ns {
		if n != nil {
			out[i] = newBatchResult(answer(res[i].a, res[i].err))
		}
	}
	return out
}

// answer is the HTTP status and body answering a submission.
func answer(a Accepted, err error) (int, any) {
	switch {
	case err != nil:
		return failure(err)
	case a.Deduplicated:
		return http.StatusOK, a
	}
	return http.StatusAccepted, a
}

// batchResult is the answer to one notification of a batch: its HTTP
// status, and what the answer to it alone would hold.
type batchResult struct {
	Code         int    `json:"code"`
	ID           string `json:"id,omitempty"`
	Status       string `json:"status,omitempty"`
	Deduplicated bool   `json:"deduplicated,omitempty"`
	Error        string `json:"error,omitempty"`
	Field        string `json:"field,omitempty"`
	Reason       string `json:"reason,omitempty"`
}

// newBatchResult is the result of code and v, an Accepted or a failure's
// map.
func newBatchResult(code int, v any) batchResult {
	r := batchResult{Code: code}
	switch v := v.(type) {
	case Accepted:
		r.ID, r.Status, r.Deduplicated = v.ID, v.Status, v.Deduplicated
	case map[string]any:
		r.Error, _ = v["error"].(string)
		r.Field, _ = v["field"].(string)
		r.Reason, _ = v["reason"].(string)
	}
	return r
}

func (p *Pipeline) getNotification(w http.ResponseWriter, r *http.Request, s *vstate) {
	rec, ok := p.status.get(r.PathValue("id"))
	if !ok {
		apiError(w, http.StatusNotFound, "no notification "+strconv.Quote(r.PathValue("id")), "", "")
		return
	}
	writeJSON(w, http.StatusOK, rec)
}

func (p *Pipeline) listNotifications(w http.ResponseWriter, r *http.Request, s *vstate) {
	q := r.URL.Query()
	f := Filter{Status: q.Get("status"), Channel: q.Get("channel"), Tenant: q.Get("tenant"), Limit: 100}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 10000 {
			apiError(w, http.StatusBadRequest, "invalid limit: 1 to 10000", "limit", "1 to 10000")
			return
		}
		f.Limit = n
	}
	if since := q.Get("since"); since != "" {
		t, err := time.Parse(time.RFC3339, since)
		if err != nil {
			apiError(w, http.StatusBadRequest, "invalid since: not an RFC 3339 time", "since", "not an RFC 3339 time")
			return
		}
		f.Since = t
	}
	writeJSON(w, http.StatusOK, map[string]any{"notifications": p.status.list(f)})
}

func (p *Pipeline) retryNotification(w http.ResponseWriter, r *http.Request, s *vstate) {
	var router core.Router
	a, err := s.retry(&router, r.PathValue("id"))
	switch {
	case err == nil:
		writeJSON(w, http.StatusAccepted, a)
	case errors.Is(err, ErrNotDead):
		apiError(w, http.StatusConflict, "notification "+strconv.Quote(r.PathValue("id"))+" is "+err.Error(), "", "")
	default:
		status, v := failure(err)
		writeJSON(w, status, v)
	}
}

// listDead lists the dead-lettered notifications: their ids, and the
// records of those the status store still knows (after a restart it knows
// a dead-lettered one only by id until it is retried).
func (p *Pipeline) listDead(w http.ResponseWriter, r *http.Request, s *vstate) {
	ids := s.deadIDs()
	sort.Strings(ids)
	recs := []Record{}
	for _, id := range ids {
		if rec, ok := p.status.get(id); ok {
			recs = append(recs, rec)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"ids": ids, "notifications": recs})
}

func (p *Pipeline) retryAllDead(w http.ResponseWriter, r *http.Request, s *vstate) {
	var router core.Router
	n := 0
	for _, id := range s.deadIDs() {
		if _, err := s.retry(&router, id); err == nil {
			n++
		} else if errors.Is(err, ErrUnavailable) {
			status, v := failure(err)
			writeJSON(w, status, v)
			return
		}
	}
	writeJSON(w, http.StatusAccepted, map[string]int{"retried": n})
}

// decodeStrict parses a JSON object refusing unknown fields: 400 or 422.
func decodeStrict(w http.ResponseWriter, body []byte, v any) bool {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			apiError(w, http.StatusUnprocessableEntity, "invalid "+te.Field+": expected "+te.Type.String(), te.Field,
				"expected "+te.Type.String())
			return false
		}
		apiError(w, http.StatusBadRequest, "malformed JSON: "+err.Error(), "", "")
		return false
	}
	return true
}

func storeFailure(w http.ResponseWriter, err error) {
	var ie *notify.InvalidError
	if errors.As(err, &ie) {
		apiError(w, http.StatusUnprocessableEntity, ie.Error(), ie.Field, ie.Reason)
		return
	}
	apiError(w, http.StatusInternalServerError, "not stored: "+err.Error(), "", "")
}

func validName(w http.ResponseWriter, field, v string) bool {
	if v == "" || len(v) > notify.MaxNameBytes {
		apiError(w, http.StatusUnprocessableEntity, "invalid "+field, field, "1 to 256 bytes")
		return false
	}
	return true
}

func (p *Pipeline) listTemplates(w http.ResponseWriter, r *http.Request, s *vstate) {
	p.settings.mu.RLock()
	out := make(map[string]notify.Template, len(p.settings.templates))
	for id, t := range p.settings.templates {
		out[id] = t.src
	}
	p.settings.mu.RUnlock()
	writeJSON(w, http.StatusOK, map[string]any{"templates": out})
}

func (p *Pipeline) getTemplate(w http.ResponseWriter, r *http.Request, s *vstate) {
	t, ok := p.settings.template(r.PathValue("id"))
	if !ok {
		apiError(w, http.StatusNotFound, "no template "+strconv.Quote(r.PathValue("id")), "", "")
		return
	}
	writeJSON(w, http.StatusOK, t.src)
}

func (p *Pipeline) putTemplate(w http.ResponseWriter, r *http.Request, s *vstate) {
	id := r.PathValue("id")
	if !validName(w, "id", id) {
		return
	}
	body, ok := readBody(w, r, MaxBody)
	if !ok {
		return
	}
	var t notify.Template
	if !decodeStrict(w, body, &t) {
		return
	}
	_, existed := p.settings.template(id)
	if err := p.settings.putTemplate(id, t); err != nil {
		storeFailure(w, err)
		return
	}
	status := http.StatusCreated
	if existed {
		status = http.StatusOK
	}
	writeJSON(w, status, t)
}

func (p *Pipeline) deleteTemplate(w http.ResponseWriter, r *http.Request, s *vstate) {
	ok, err := p.settings.deleteTemplate(r.PathValue("id"))
	switch {
	case err != nil:
		storeFailure(w, err)
	case !ok:
		apiError(w, http.StatusNotFound, "no template "+strconv.Quote(r.PathValue("id")), "", "")
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

// previewTemplate renders a stored template with sample data, as a
// notification naming it would be rendered: {"locale": "en", "data": {...}}
// answers the content, or 422 naming the missing variable or the error.
func (p *Pipeline) previewTemplate(w http.ResponseWriter, r *http.Request, s *vstate) {
	t, ok := p.settings.template(r.PathValue("id"))
	if !ok {
		apiError(w, http.StatusNotFound, "no template "+strconv.Quote(r.PathValue("id")), "", "")
		return
	}
	body, ok := readBody(w, r, MaxBody)
	if !ok {
		return
	}
	var req struct {
		Locale string         `json:"locale"`
		Data   map[string]any `json:"data"`
	}
	if !decodeStrict(w, body, &req) {
		return
	}
	vars, ok := t.compiled.Vars(req.Locale)
	if !ok {
		apiError(w, http.StatusUnprocessableEntity, "invalid locale: the template has no locale "+strconv.Quote(req.Locale),
			"locale", "the template has no such locale")
		return
	}
	for _, v := range vars {
		if _, ok := req.Data[v]; !ok {
			apiError(w, http.StatusUnprocessableEntity, "invalid data."+v+": the template uses it", "data."+v, "the template uses it")
			return
		}
	}
	c, err := t.compiled.Render(req.Locale, req.Data)
	if err != nil {
		var inv *notify.InvalidError
		if errors.As(err, &inv) {
			apiError(w, http.StatusUnprocessableEntity, err.Error(), inv.Field, inv.Reason)
			return
		}
		apiError(w, http.StatusUnprocessableEntity, err.Error(), "data", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, c)
}

func (p *Pipeline) listTenants(w http.ResponseWriter, r *http.Request, s *vstate) {
	p.settings.mu.RLock()
	out := make(map[string]Tenant, len(p.settings.tenants))
	for name, t := range p.settings.tenants {
		out[name] = *t
	}
	p.settings.mu.RUnlock()
	writeJSON(w, http.StatusOK, map[string]any{"tenants": out})
}

func (p *Pipeline) getTenant(w http.ResponseWriter, r *http.Request, s *vstate) {
	t, ok := p.settings.tenant(tenantParam(r))
	if !ok {
		apiError(w, http.StatusNotFound, "no tenant "+strconv.Quote(tenantParam(r)), "", "")
		return
	}
	writeJSON(w, http.StatusOK, t)
}

func (p *Pipeline) putTenant(w http.ResponseWriter, r *http.Request, s *vstate) {
	name := tenantParam(r)
	if len(name) > notify.MaxTenantBytes {
		apiError(w, http.StatusUnprocessableEntity, "invalid tenant", "tenant", "at most 256 bytes")
		return
	}
	body, ok := readBody(w, r, MaxBody)
	if !ok {
		return
	}
	var t Tenant
	if !decodeStrict(w, body, &t) {
		return
	}
	if err := p.settings.putTenant(name, t); err != nil {
		storeFailure(w, err)
		return
	}
	writeJSON(w, http.StatusOK, t)
}

func (p *Pipeline) deleteTenant(w http.ResponseWriter, r *http.Request, s *vstate) {
	ok, err := p.settings.deleteTenant(tenantParam(r))
	switch {
	case err != nil:
		storeFailure(w, err)
	case !ok:
		apiError(w, http.StatusNotFound, "no tenant "+strconv.Quote(tenantParam(r)), "", "")
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

func (p *Pipeline) getOptout(w http.ResponseWriter, r *http.Request, s *vstate) {
	if !p.settings.optedOut(tenantParam(r), r.PathValue("address")) {
		apiError(w, http.StatusNotFound, "not opted out", "", "")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"tenant": tenantParam(r), "address": r.PathValue("address"),
		"opted_out": true})
}

func (p *Pipeline) putOptout(w http.ResponseWriter, r *http.Request, s *vstate) {
	tenant, addr := tenantParam(r), r.PathValue("address")
	if !validName(w, "address", addr) {
		return
	}
	had, err := p.settings.setOptout(tenant, addr, true)
	if err != nil {
		storeFailure(w, err)
		return
	}
	status := http.StatusCreated
	if had {
		status = http.StatusOK
	}
	writeJSON(w, status, map[string]any{"tenant": tenant, "address": addr, "opted_out": true})
}

func (p *Pipeline) deleteOptout(w http.ResponseWriter, r *http.Request, s *vstate) {
	had, err := p.settings.setOptout(tenantParam(r), r.PathValue("address"), false)
	switch {
	case err != nil:
		storeFailure(w, err)
	case !had:
		apiError(w, http.StatusNotFound, "not opted out", "", "")
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

// tenantParam is the {tenant} of a path; "-" names notifications without a
// tenant.
func tenantParam(r *http.Request) string {
	if t := r.PathValue("tenant"); t != "-" {
		return t
	}
	return ""
}
