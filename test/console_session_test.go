package test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/unifiedms/ums/internal/clock"
	"github.com/unifiedms/ums/internal/testutil"
)

// The console's sessions, over plain HTTP: what a browser does, and what a
// page of another site must not be able to do with the cookie.

// consoleClient is a browser-like client: a cookie jar, and redirects not
// followed so their targets can be checked.
func consoleClient(t *testing.T) *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func consoleLogin(t *testing.T, c *http.Client, base, user, pass, next string) *http.Response {
	t.Helper()
	resp, err := c.PostForm(base+"/login", url.Values{"username": {user}, "password": {pass}, "next": {next}})
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// do sends a request with the client's cookies and extra headers and
// returns the status and body.
func do(t *testing.T, c *http.Client, method, u, body string, hdr map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusSeeOther {
		return resp.StatusCode, resp.Header.Get("Location")
	}
	return resp.StatusCode, string(b)
}

func TestConsoleSessions(t *testing.T) {
	clk := clock.NewFake(time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC))
	b := testutil.StartBroker(t, testutil.WithProtocols(testutil.AMQP, testutil.HTTP), testutil.WithClock(clk))
	base := b.HTTPURL
	admin := func(method, path, body string) int {
		code, _ := api(t, method, base+path, "guest", "guest", body)
		return code
	}

	// Without a session, pages send the browser to the login page, and the
	// target stays on this server.
	c := consoleClient(t)
	if code, loc := do(t, c, "GET", base+"/queues?vhost=%2F", "", nil); code != http.StatusSeeOther || loc != "/login?next=%2Fqueues%3Fvhost%3D%252F" {
		t.Fatalf("GET /queues without a session: %d %q", code, loc)
	}
	for _, next := range []string{"//evil.example/", "https://evil.example/", "/\\evil.example"} {
		if resp := consoleLogin(t, consoleClient(t), base, "guest", "guest", next); resp.Header.Get("Location") != "/" {
			t.Fatalf("login with next=%q sends the browser to %q", next, resp.Header.Get("Location"))
		}
	}

	// Wrong password: 401 and no session. A user without a management tag: 403.
	if resp := consoleLogin(t, c, base, "guest", "nope", "/"); resp.StatusCode != http.StatusUnauthorized || len(resp.Cookies()) != 0 {
		t.Fatalf("failed login: %d, cookies %v", resp.StatusCode, resp.Cookies())
	}
	if code := admin("PUT", "/api/users/device", `{"password": "d3vice", "tags": ""}`); code != http.StatusCreated {
		t.Fatalf("PUT user: %d", code)
	}
	if resp := consoleLogin(t, consoleClient(t), base, "device", "d3vice", "/"); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("login of a user without a management tag: %d", resp.StatusCode)
	}

	// A session: the cookie is HttpOnly and SameSite=Strict, and it
	// authenticates the APIs.
	resp := consoleLogin(t, c, base, "guest", "guest", "/queues")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/queues" {
		t.Fatalf("login: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	ck := resp.Cookies()
	if len(ck) != 1 || ck[0].Name != "ums_session" || !ck[0].HttpOnly || ck[0].SameSite != http.SameSiteStrictMode {
		t.Fatalf("session cookie %+v", ck)
	}
	code, body := do(t, c, "GET", base+"/api/whoami", "", nil)
	var who struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}
	if json.Unmarshal([]byte(body), &who); code != http.StatusOK || who.Name != "guest" {
		t.Fatalf("whoami through the session: %d %s", code, body)
	}

	// Changes through the session from another origin are refused; from
	// the console's own origin they work.
	for _, hdr := range []map[string]string{{"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"}} {
		if code, _ := do(t, c, "PUT", base+"/api/queues/%2F/csrf", `{}`, hdr); code != http.StatusForbidden {
			t.Fatalf("cross-origin PUT with %v: %d, want 403", hdr, code)
		}
	}
	if code := admin("GET", "/api/queues/%2F/csrf", ""); code != http.StatusNotFound {
		t.Fatalf("a cross-origin request declared a queue (GET: %d)", code)
	}
	if code, _ := do(t, c, "PUT", base+"/api/queues/%2F/csrf", `{}`, map[string]string{"Origin": base, "Sec-Fetch-Site": "same-origin"}); code != http.StatusCreated {
		t.Fatalf("same-origin PUT: %d", code)
	}
	if code, _ := do(t, c, "POST", base+"/api/v1/templates/none/preview", `{}`, map[string]string{"Sec-Fetch-Site": "cross-site"}); code != http.StatusForbidden {
		t.Fatalf("cross-origin notification API call: %d, want 403", code)
	}

	// A session unused for 8 hours ends; one in use does not.
	clk.Advance(7 * time.Hour)
	if code, _ := do(t, c, "GET", base+"/queues", "", nil); code != http.StatusOK {
		t.Fatalf("page after 7 idle hours: %d", code)
	}
	clk.Advance(7 * time.Hour)
	if code, _ := do(t, c, "GET", base+"/api/whoami", "", nil); code != http.StatusOK {
		t.Fatalf("API after 7 more idle hours: %d", code)
	}
	clk.Advance(8*time.Hour + time.Minute)
	if code, _ := do(t, c, "GET", base+"/api/whoami", "", nil); code != http.StatusUnauthorized {
		t.Fatalf("API after 8 idle hours: %d, want 401", code)
	}

	// A changed password ends the user's sessions.
	if code := admin("PUT", "/api/users/ops", `{"password": "0ps", "tags": "management"}`); code != http.StatusCreated {
		t.Fatalf("PUT user: %d", code)
	}
	ops := consoleClient(t)
	if resp := consoleLogin(t, ops, base, "ops", "0ps", "/"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login as ops: %d", resp.StatusCode)
	}
	if code, _ := do(t, ops, "GET", base+"/queues", "", nil); code != http.StatusOK {
		t.Fatalf("page as ops: %d", code)
	}
	if code := admin("PUT", "/api/users/ops", `{"password": "n3w", "tags": "management"}`); code != http.StatusNoContent {
		t.Fatalf("PUT user: %d", code)
	}
	if code, loc := do(t, ops, "GET", base+"/queues", "", nil); code != http.StatusSeeOther || !strings.HasPrefix(loc, "/login") {
		t.Fatalf("page after the password changed: %d %q", code, loc)
	}

	// Logging out ends the session at once.
	if code, loc := do(t, c, "POST", base+"/logout", "", map[string]string{"Sec-Fetch-Site": "same-origin"}); code != http.StatusSeeOther || loc != "/login" {
		t.Fatalf("logout: %d %q", code, loc)
	}
	if code, _ := do(t, c, "GET", base+"/api/whoami", "", nil); code != http.StatusUnauthorized {
		t.Fatalf("API after logout: %d, want 401", code)
	}

	// The console's files carry a policy that keeps other sites' scripts
	// and frames out.
	req, _ := http.NewRequest("GET", base+"/login", nil)
	r2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	if csp := r2.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Fatalf("Content-Security-Policy %q", csp)
	}
}

// What the console's notification pages read from the API: template
// previews, counters per channel and provider, tenants, dead letters with
// their records; and the server's own connection cannot be closed.
func TestConsoleNotificationEndpoints(t *testing.T) {
	e := startNotify(t)
	if code := apiCall(t, e.b, "PUT", "/api/v1/templates/otp", map[string]any{"default_locale": "en", "locales": map[string]any{
		"en": map[string]any{"subject": "Code {{.code}}", "text": "Use {{.code}}", "html": "<b>{{.code}}</b>"}}}, nil, nil); code != http.StatusCreated {
		t.Fatalf("PUT template: %d", code)
	}
	var content struct{ Subject, Text, HTML string }
	if code := apiCall(t, e.b, "POST", "/api/v1/templates/otp/preview", map[string]any{"data": map[string]any{"code": "<1>"}}, nil, &content); code != http.StatusOK ||
		content.Subject != "Code <1>" || content.Text != "Use <1>" || content.HTML != "<b>&lt;1&gt;</b>" {
		t.Fatalf("preview: %d %+v", code, content)
	}
	var bad struct{ Field string }
	if code := apiCall(t, e.b, "POST", "/api/v1/templates/otp/preview", map[string]any{"data": map[string]any{}}, nil, &bad); code != http.StatusUnprocessableEntity || bad.Field != "data.code" {
		t.Fatalf("preview without a variable: %d %+v", code, bad)
	}
	if code := apiCall(t, e.b, "POST", "/api/v1/templates/otp/preview", map[string]any{"locale": "fr", "data": map[string]any{"code": 1}}, nil, &bad); code != http.StatusUnprocessableEntity || bad.Field != "locale" {
		t.Fatalf("preview of a missing locale: %d %+v", code, bad)
	}
	if code := apiCall(t, e.b, "POST", "/api/v1/templates/nope/preview", map[string]any{}, nil, nil); code != http.StatusNotFound {
		t.Fatalf("preview of a missing template: %d", code)
	}

	if code := apiCall(t, e.b, "PUT", "/api/v1/tenants/acme", map[string]any{"quiet_hours": map[string]any{"start": "21:00", "end": "08:00", "time_zone": "Asia/Seoul"}}, nil, nil); code != http.StatusOK {
		t.Fatalf("PUT tenant: %d", code)
	}
	var tenants struct {
		Tenants map[string]struct {
			QuietHours struct{ Start, End string } `json:"quiet_hours"`
		}
	}
	if code := apiCall(t, e.b, "GET", "/api/v1/tenants", nil, nil, &tenants); code != http.StatusOK || tenants.Tenants["acme"].QuietHours.Start != "21:00" {
		t.Fatalf("GET tenants: %d %+v", code, tenants)
	}

	ok := submit(t, e.b, webhookNote(e.hook.URL, nil), http.StatusAccepted, nil)
	waitStatus(t, e.b, ok.ID, "sent")
	var st struct {
		Events []struct {
			Channel, Status string
			Count           uint64
		}
		Providers []struct {
			Channel    string
			OK, Failed uint64
			Seconds    float64
		}
	}
	if code := apiCall(t, e.b, "GET", "/api/v1/stats", nil, nil, &st); code != http.StatusOK {
		t.Fatalf("GET stats: %d", code)
	}
	sent := uint64(0)
	for _, ev := range st.Events {
		if ev.Channel == "webhook" && ev.Status == "sent" {
			sent = ev.Count
		}
	}
	if sent != 1 || len(st.Providers) != 1 || st.Providers[0].Channel != "webhook" || st.Providers[0].OK != 1 || st.Providers[0].Seconds <= 0 {
		t.Fatalf("stats after one webhook send: %+v", st)
	}

	// The server's own connection is listed but cannot be closed.
	code, body := api(t, "GET", e.b.HTTPURL+"/api/connections", "guest", "guest", "")
	var conns []struct{ Name, Protocol string }
	if err := json.Unmarshal(body, &conns); err != nil || code != http.StatusOK {
		t.Fatalf("GET connections: %d %v", code, err)
	}
	for _, c := range conns {
		if c.Protocol == "internal" {
			if code, _ := api(t, "DELETE", e.b.HTTPURL+"/api/connections/"+url.PathEscape(c.Name), "guest", "guest", ""); code != http.StatusBadRequest {
				t.Fatalf("closing the server's own connection: %d, want 400", code)
			}
			return
		}
	}
	t.Fatalf("no internal connection among %+v", conns)
}
