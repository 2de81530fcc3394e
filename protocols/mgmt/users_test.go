package mgmt

import (
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/unifiedms/ums/core"
	"github.com/unifiedms/ums/core/auth"
)

func testAPI(t *testing.T) (*API, http.Handler) {
	t.Helper()
	a := &API{Broker: core.NewBrokerWith(core.Options{}), Users: auth.NewDefaultStore()}
	return a, a.Handler()
}

func do(h http.Handler, method, path, body string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	r.RemoteAddr = "127.0.0.1:5000"
	r.SetBasicAuth("guest", "guest")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestPutUserTags(t *testing.T) {
	a, h := testAPI(t)
	for _, c := range []struct {
		body string
		code int
		want []string
	}{
		{`{"password":"p","tags":"administrator, management,,administrator"}`, 201, []string{"administrator", "management"}},
		{`{"password":"p","tags":["monitoring"," x "]}`, 204, []string{"monitoring", "x"}},
		{`{"password":"p","tags":""}`, 204, nil},
		{`{"password":"p"}`, 204, nil},
		{`{"password":"p","tags":null}`, 204, nil},
	} {
		if w := do(h, "PUT", "/api/users/u", c.body); w.Code != c.code {
			t.Fatalf("%s: status %d, want %d: %s", c.body, w.Code, c.code, w.Body)
		}
		u, _ := a.Users.User("u")
		if !reflect.DeepEqual(u.Tags, c.want) {
			t.Errorf("%s: tags %q, want %q", c.body, u.Tags, c.want)
		}
	}
}

// An update keeps the user's permissions, as in RabbitMQ; a user without
// a password can be given one.
func TestPutUserKeepsPermissions(t *testing.T) {
	a, h := testAPI(t)
	if w := do(h, "PUT", "/api/users/u", `{"tags":""}`); w.Code != 201 {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	if w := do(h, "PUT", "/api/permissions/%2F/u", `{"configure":"","write":".*","read":".*"}`); w.Code != 201 {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	if w := do(h, "PUT", "/api/users/u", `{"password":"pw","tags":"management"}`); w.Code != 204 {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	if _, ok := a.Users.Permission("u", "/"); !ok {
		t.Fatal("permission lost by the update")
	}
	if _, err := a.Users.Authenticate("u", "pw", false); err != nil {
		t.Fatal(err)
	}
}

func TestSlashSegments(t *testing.T) {
	_, h := testAPI(t)
	for path, code := range map[string]int{
		"/api/permissions/%2F/guest":     200,
		"/api/permissions/%2f/guest":     200,
		"/api/permissions/%2F%2F/guest":  404,
		"/api/users/guest/permissions":   200,
		"/api/vhosts/%2F/permissions":    200,
		"/api/topic-permissions/%2F/x":   404,
		"/api/queues/%2F":                200,
		"/api/queues/nope":               404,
		"/api/users/%2F":                 404,
		"/api/nothing/%2F/here":          404,
		"/api/permissions/%2F/guest/too": 404,
	} {
		if w := do(h, "GET", path, ""); w.Code != code {
			t.Errorf("GET %s: status %d, want %d: %s", path, w.Code, code, w.Body)
		}
	}
}
