package test

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/unifiedms/ums/core/auth"
	"github.com/unifiedms/ums/internal/testutil"
)

// startMgmtAt runs a broker with AMQP and HTTP on loopback ports on dataDir,
// which outlives it. stop shuts it down; the test's cleanup does too.
func startMgmtAt(t *testing.T, dataDir string) (s *server, base string, stop func()) {
	t.Helper()
	b := testutil.StartBroker(t, testutil.WithDataDir(dataDir), testutil.WithProtocols(testutil.AMQP, testutil.HTTP))
	return newServer(b), b.HTTPURL, b.Stop
}

// api sends a request with basic auth (none when user is "") and an
// optional JSON body, and returns the status and the body.
func api(t *testing.T, method, u, user, pass, body string) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, data
}

// apiWant is api that fails the test unless the status is want.
func apiWant(t *testing.T, want int, method, u, user, pass, body string) []byte {
	t.Helper()
	code, data := api(t, method, u, user, pass, body)
	if code != want {
		t.Fatalf("%s %s: status %d, want %d: %s", method, u, code, want, data)
	}
	return data
}

// apiError checks an error answer: its status and its JSON body
// {"error": ..., "reason": ...}, whose reason must contain reason.
func apiError(t *testing.T, want int, reason, method, u, user, pass, body string) {
	t.Helper()
	data := apiWant(t, want, method, u, user, pass, body)
	var e struct{ Error, Reason string }
	if err := json.Unmarshal(data, &e); err != nil || e.Error == "" {
		t.Fatalf("%s %s: error body %q (%v)", method, u, data, err)
	}
	if !strings.Contains(e.Reason, reason) {
		t.Fatalf("%s %s: reason %q, want it to contain %q", method, u, e.Reason, reason)
	}
}

func decodeInto(t *testing.T, data []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("decoding %s: %v", data, err)
	}
}

type apiUser struct {
	Name             string   `json:"name"`
	PasswordHash     string   `json:"password_hash"`
	HashingAlgorithm string   `json:"hashing_algorithm"`
	Tags             []string `json:"tags"`
}

type apiPerm struct {
	User, Vhost, Configure, Write, Read string
}

type apiTopicPerm struct {
	User, Vhost, Exchange, Write, Read string
}

// checkSensorUser checks that user "sensor" (password "pw") may publish to
// amq.topic with keys "sensors.*" only.
func checkSensorUser(t *testing.T, s *server) {
	t.Helper()
	_, admin := s.channel(t)
	q := declareQueue(t, admin, "")
	bindQueue(t, admin, q, "amq.topic", "#", nil)
	d := consume(t, admin, q, true)

	conn, err := amqp.Dial(s.urlWith(t, "sensor", "pw", ""))
	if err != nil {
		t.Fatalf("dial as sensor: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	ch := confirmChannel(t, conn)
	publishConfirmed(t, ch, "amq.topic", "sensors.x", amqp.Publishing{Body: []byte("ok")})
	if m := recv(t, d); string(m.Body) != "ok" {
		t.Fatalf("got %q", m.Body)
	}
	closed := notifyClose(ch)
	publish(t, ch, "amq.topic", "other.x", "refused")
	closedWith(t, closed, amqp.AccessRefused, "ACCESS_REFUSED - write access to topic 'other.x'")
	noRecv(t, d)
	// No access to another vhost's resources: the vhost permission is on "/"
	// only, and configure is limited to "^sensor-".
	ch = newChannel(t, conn)
	closed = notifyClose(ch)
	_, err = ch.QueueDeclare("not-mine", false, true, false, false, nil)
	wantReply(t, err, amqp.AccessRefused, "ACCESS_REFUSED - access to queue 'not-mine'")
	closedWith(t, closed, amqp.AccessRefused, "")
	ch = newChannel(t, conn)
	declareQueue(t, ch, "sensor-q")
}

// Users, permissions and topic permissions created through the API work
// for AMQP clients and survive a restart; the default user is not created
// again once deleted.
func TestMgmtUsersPermissionsPersist(t *testing.T) {
	dir := t.TempDir()
	s, base, stop := startMgmtAt(t, dir)
	vh := url.PathEscape("/")

	// A new user is 201, an update 204; tags as a string or a list.
	apiWant(t, 201, "PUT", base+"/api/users/sensor", "guest", "guest", `{"password":"pw","tags":"management, monitoring"}`)
	apiWant(t, 204, "PUT", base+"/api/users/sensor", "guest", "guest", `{"password":"pw","tags":["management"]}`)
	var u apiUser
	decodeInto(t, apiWant(t, 200, "GET", base+"/api/users/sensor", "guest", "guest", ""), &u)
	if u.Name != "sensor" || u.HashingAlgorithm != auth.HashSHA256 || len(u.Tags) != 1 || u.Tags[0] != "management" {
		t.Fatalf("user %+v", u)
	}
	if h, err := base64.StdEncoding.DecodeString(u.PasswordHash); err != nil || len(h) != 36 {
		t.Fatalf("password_hash %q: %v", u.PasswordHash, err)
	}

	apiWant(t, 201, "PUT", base+"/api/permissions/"+vh+"/sensor", "guest", "guest", `{"configure":"^sensor-","write":".*","read":".*"}`)
	apiWant(t, 204, "PUT", base+"/api/permissions/"+vh+"/sensor", "guest", "guest", `{"configure":"^sensor-","write":".*","read":".*"}`)
	apiWant(t, 201, "PUT", base+"/api/topic-permissions/"+vh+"/sensor", "guest", "guest", `{"exchange":"amq.topic","write":"^sensors\\.","read":".*"}`)
	apiWant(t, 204, "PUT", base+"/api/topic-permissions/"+vh+"/sensor", "guest", "guest", `{"exchange":"amq.direct","write":"^$","read":"^$"}`)

	// A user given by hash, and an administrator to replace guest.
	hash := base64.StdEncoding.EncodeToString(auth.HashPassword("hashed-pw"))
	apiWant(t, 201, "PUT", base+"/api/users/byhash", "guest", "guest",
		`{"password_hash":"`+hash+`","hashing_algorithm":"rabbit_password_hashing_sha256","tags":["monitoring"]}`)
	apiWant(t, 201, "PUT", base+"/api/users/root", "guest", "guest", `{"password":"rootpw","tags":"administrator"}`)
	apiWant(t, 201, "PUT", base+"/api/permissions/"+vh+"/root", "guest", "guest", `{"configure":".*","write":".*","read":".*"}`)
	apiWant(t, 200, "GET", base+"/api/overview", "byhash", "hashed-pw", "")

	checkSensorUser(t, s)
	checkListings := func() {
		t.Helper()
		var users []apiUser
		decodeInto(t, apiWant(t, 200, "GET", base+"/api/users", "root", "rootpw", ""), &users)
		var names []string
		for _, u := range users {
			names = append(names, u.Name)
		}
		if got := strings.Join(names, ","); got != "byhash,guest,root,sensor" && got != "byhash,root,sensor" {
			t.Fatalf("users %s", got)
		}
		var perms []apiPerm
		decodeInto(t, apiWant(t, 200, "GET", base+"/api/users/sensor/permissions", "root", "rootpw", ""), &perms)
		if len(perms) != 1 || perms[0] != (apiPerm{"sensor", "/", "^sensor-", ".*", ".*"}) {
			t.Fatalf("sensor's permissions %+v", perms)
		}
		var p apiPerm
		decodeInto(t, apiWant(t, 200, "GET", base+"/api/permissions/"+vh+"/sensor", "root", "rootpw", ""), &p)
		if p != perms[0] {
			t.Fatalf("permission %+v", p)
		}
		decodeInto(t, apiWant(t, 200, "GET", base+"/api/permissions", "root", "rootpw", ""), &perms)
		found := false
		for _, p := range perms {
			found = found || p == (apiPerm{"sensor", "/", "^sensor-", ".*", ".*"})
		}
		if !found {
			t.Fatalf("permissions %+v", perms)
		}
		wantTopics := []apiTopicPerm{{"sensor", "/", "amq.direct", "^$", "^$"}, {"sensor", "/", "amq.topic", `^sensors\.`, ".*"}}
		for _, path := range []string{"/api/topic-permissions", "/api/topic-permissions/" + vh + "/sensor", "/api/users/sensor/topic-permissions"} {
			var tps []apiTopicPerm
			decodeInto(t, apiWant(t, 200, "GET", base+path, "root", "rootpw", ""), &tps)
			if len(tps) != 2 || tps[0] != wantTopics[0] || tps[1] != wantTopics[1] {
				t.Fatalf("%s: %+v", path, tps)
			}
		}
	}
	checkListings()

	// guest goes; it must not come back at the restart.
	apiWant(t, 204, "DELETE", base+"/api/users/guest", "root", "rootpw", "")
	stop()

	s, base, _ = startMgmtAt(t, dir)
	apiError(t, 401, "", "GET", base+"/api/users", "guest", "guest", "")
	checkListings()
	apiWant(t, 200, "GET", base+"/api/overview", "byhash", "hashed-pw", "")
	s.URL = "amqp://root:rootpw@" + s.Addr("amqp").String() + "/"
	checkSensorUser(t, s)

	// Changes after the restart are stored too.
	apiWant(t, 204, "DELETE", base+"/api/topic-permissions/"+vh+"/sensor", "root", "rootpw", "")
	apiWant(t, 204, "DELETE", base+"/api/permissions/"+vh+"/sensor", "root", "rootpw", "")
	apiWant(t, 404, "GET", base+"/api/topic-permissions/"+vh+"/sensor", "root", "rootpw", "")
	apiWant(t, 404, "GET", base+"/api/permissions/"+vh+"/sensor", "root", "rootpw", "")
	apiWant(t, 204, "DELETE", base+"/api/users/byhash", "root", "rootpw", "")
}

// A fresh node gets the default user; a restarted one keeps what is stored
// even when the configured default user differs.
func TestMgmtUsersDefaultUserOnlyOnFreshNode(t *testing.T) {
	dir := t.TempDir()
	_, base, stop := startMgmtAt(t, dir)
	apiWant(t, 204, "PUT", base+"/api/users/guest", "guest", "guest", `{"password":"changed","tags":"administrator"}`)
	stop()
	_, base, _ = startMgmtAt(t, dir)
	apiError(t, 401, "Login failed", "GET", base+"/api/overview", "guest", "guest", "")
	var u apiUser
	decodeInto(t, apiWant(t, 200, "GET", base+"/api/users/guest", "guest", "changed", ""), &u)
	if len(u.Tags) != 1 || u.Tags[0] != "administrator" {
		t.Fatalf("guest %+v", u)
	}
}

func TestMgmtUsersErrors(t *testing.T) {
	s, base := mgmtServer(t)
	vh := url.PathEscape("/")
	g := func(want int, reason, method, path, body string) {
		t.Helper()
		apiError(t, want, reason, method, base+path, "guest", "guest", body)
	}
	apiWant(t, 201, "PUT", base+"/api/users/mon", "guest", "guest", `{"password":"pw","tags":"monitoring"}`)
	apiWant(t, 201, "PUT", base+"/api/users/plain", "guest", "guest", `{"password":"pw","tags":""}`)

	// Bad bodies.
	g(400, "invalid JSON", "PUT", "/api/users/x", `{"password":`)
	g(400, "invalid JSON", "PUT", "/api/users/x", `[1]`)
	g(400, "invalid JSON", "PUT", "/api/permissions/"+vh+"/mon", `not json`)
	g(400, "invalid JSON", "PUT", "/api/topic-permissions/"+vh+"/mon", `{`)
	g(400, "both_password_and_password_hash_are_provided", "PUT", "/api/users/x", `{"password":"a","password_hash":"","tags":""}`)
	g(400, "base64", "PUT", "/api/users/x", `{"password_hash":"***","tags":""}`)
	g(400, "invalid password hash", "PUT", "/api/users/x", `{"password_hash":"AAAA","tags":""}`)
	g(400, "does not fit", "PUT", "/api/users/x", `{"password_hash":"`+base64.StdEncoding.EncodeToString(auth.HashPassword("p"))+`","hashing_algorithm":"rabbit_password_hashing_md5","tags":""}`)
	g(400, "unknown hashing_algorithm", "PUT", "/api/users/x", `{"password":"a","hashing_algorithm":"bcrypt","tags":""}`)
	g(400, "tags", "PUT", "/api/users/x", `{"password":"a","tags":7}`)
	g(400, "key_missing: read", "PUT", "/api/permissions/"+vh+"/mon", `{"configure":".*","write":".*"}`)
	g(400, "key_missing: exchange", "PUT", "/api/topic-permissions/"+vh+"/mon", `{"write":".*","read":".*"}`)
	if _, ok := s.Users.User("x"); ok {
		t.Fatal("user x created by a bad request")
	}

	// Bad regular expressions, with the reason.
	g(400, "configure regular expression \"(\"", "PUT", "/api/permissions/"+vh+"/mon", `{"configure":"(","write":".*","read":".*"}`)
	g(400, "topic write regular expression \"[\"", "PUT", "/api/topic-permissions/"+vh+"/mon", `{"exchange":"amq.topic","write":"[","read":".*"}`)
	g(400, "without an exchange", "PUT", "/api/topic-permissions/"+vh+"/mon", `{"exchange":"","write":".*","read":".*"}`)
	if _, ok := s.Users.Permission("mon", "/"); ok {
		t.Fatal("permission set by a bad request")
	}

	// Unknown users and vhosts: 404, except for PUT, where RabbitMQ answers
	// 400 vhost_or_user_not_found.
	for _, path := range []string{
		"/api/users/nobody", "/api/users/nobody/permissions", "/api/users/nobody/topic-permissions",
		"/api/permissions/" + vh + "/nobody", "/api/permissions/nope/guest", "/api/permissions/" + vh + "/mon",
		"/api/topic-permissions/" + vh + "/nobody", "/api/topic-permissions/nope/guest", "/api/topic-permissions/" + vh + "/mon",
		"/api/vhosts/nope/permissions", "/api/vhosts/nope/topic-permissions",
	} {
		g(404, "Object Not Found", "GET", path, "")
	}
	for _, path := range []string{"/api/users/nobody", "/api/permissions/" + vh + "/nobody", "/api/permissions/nope/guest",
		"/api/topic-permissions/" + vh + "/nobody", "/api/topic-permissions/" + vh + "/mon"} {
		g(404, "Object Not Found", "DELETE", path, "")
	}
	g(400, "vhost_or_user_not_found", "PUT", "/api/permissions/"+vh+"/nobody", `{"configure":".*","write":".*","read":".*"}`)
	g(400, "vhost_or_user_not_found", "PUT", "/api/permissions/nope/mon", `{"configure":".*","write":".*","read":".*"}`)
	g(400, "vhost_or_user_not_found", "PUT", "/api/topic-permissions/nope/mon", `{"exchange":"amq.topic","write":".*","read":".*"}`)

	// Administrators only: no or wrong credentials, a user without a
	// management tag and a monitoring user are all refused with 401.
	for _, path := range []string{"/api/users", "/api/users/guest", "/api/permissions", "/api/permissions/" + vh + "/guest",
		"/api/topic-permissions", "/api/users/guest/permissions", "/api/vhosts/" + vh + "/permissions"} {
		apiError(t, 401, "", "GET", base+path, "", "", "")
		apiError(t, 401, "Login failed", "GET", base+path, "guest", "wrong", "")
		apiError(t, 401, "Not management user", "GET", base+path, "plain", "pw", "")
		apiError(t, 401, "Not administrator user", "GET", base+path, "mon", "pw", "")
	}
	apiError(t, 401, "Not administrator user", "PUT", base+"/api/users/mon", "mon", "pw", `{"password":"pw","tags":"administrator"}`)
	apiError(t, 401, "Not administrator user", "DELETE", base+"/api/users/guest", "mon", "pw", "")
	apiWant(t, 200, "GET", base+"/api/overview", "mon", "pw", "")
	if u, _ := s.Users.User("mon"); u.HasTag("administrator") {
		t.Fatal("monitoring user promoted itself")
	}

	// A user without a password cannot log in.
	apiWant(t, 204, "PUT", base+"/api/users/mon", "guest", "guest", `{"tags":"administrator"}`)
	apiError(t, 401, "Login failed", "GET", base+"/api/overview", "mon", "pw", "")
}

// "%2F" names the vhost "/" in every route, not only as the last segment,
// and a listing for it leaves other vhosts out.
func TestMgmtSlashVhostRoutes(t *testing.T) {
	s, base := mgmtServer(t)
	s.Core.AddVhost("other")
	var xs []struct{ Name, Vhost string }
	decodeInto(t, apiWant(t, 200, "GET", base+"/api/exchanges/%2F", "guest", "guest", ""), &xs)
	if len(xs) == 0 {
		t.Fatal("no exchanges in /")
	}
	for _, x := range xs {
		if x.Vhost != "/" {
			t.Fatalf("exchange %+v listed for vhost /", x)
		}
	}
	decodeInto(t, apiWant(t, 200, "GET", base+"/api/exchanges/other", "guest", "guest", ""), &xs)
	for _, x := range xs {
		if x.Vhost != "other" {
			t.Fatalf("exchange %+v listed for vhost other", x)
		}
	}
	// Lower-case escapes too, and a user named "/".
	apiWant(t, 201, "PUT", base+"/api/users/%2f", "guest", "guest", `{"password":"pw","tags":""}`)
	apiWant(t, 201, "PUT", base+"/api/permissions/%2f/%2F", "guest", "guest", `{"configure":"","write":"","read":""}`)
	var p apiPerm
	decodeInto(t, apiWant(t, 200, "GET", base+"/api/permissions/%2F/%2F", "guest", "guest", ""), &p)
	if p != (apiPerm{User: "/", Vhost: "/"}) {
		t.Fatalf("permission %+v", p)
	}
	if _, ok := s.Users.Permission("/", "/"); !ok {
		t.Fatal("permission not set")
	}
}
