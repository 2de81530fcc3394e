package test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/unifiedms/ums/config"
)

func mgmtServer(t *testing.T) (*server, string) {
	s := startServer(t, func(c *config.Config) { c.HTTPListen = "127.0.0.1:0" })
	return s, "http://" + s.Addr("http").String()
}

func httpDo(t *testing.T, method, u, user, pass string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestMgmtRequiresAuth(t *testing.T) {
	_, base := mgmtServer(t)
	for _, creds := range [][2]string{{"", ""}, {"guest", "wrong"}} {
		resp := httpDo(t, "GET", base+"/api/overview", creds[0], creds[1])
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%v: status %d, want 401", creds, resp.StatusCode)
		}
	}
	resp := httpDo(t, "GET", base+"/api/nothing-here", "guest", "guest")
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown path: status %d, want 404", resp.StatusCode)
	}
}

func TestMgmtListsAndClosesConnections(t *testing.T) {
	s, base := mgmtServer(t)
	props := amqp.NewConnectionProperties()
	props.SetClientConnectionName("mgmt-test-conn")
	conn, err := amqp.DialConfig(s.URL, amqp.Config{Properties: props})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare("mgmt-q", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))

	var conns []struct {
		Name             string         `json:"name"`
		User             string         `json:"user"`
		Vhost            string         `json:"vhost"`
		Channels         int            `json:"channels"`
		ClientProperties map[string]any `json:"client_properties"`
	}
	resp := httpDo(t, "GET", base+"/api/connections/", "guest", "guest")
	if err := json.NewDecoder(resp.Body).Decode(&conns); err != nil {
		t.Fatal(err)
	}
	var name string
	for _, c := range conns {
		if c.ClientProperties["connection_name"] == "mgmt-test-conn" {
			name = c.Name
			if c.User != "guest" || c.Vhost != "/" || c.Channels != 1 {
				t.Errorf("connection listed as %+v", c)
			}
		}
	}
	if name == "" {
		t.Fatalf("connection not listed: %+v", conns)
	}

	var queues []struct {
		Name     string `json:"name"`
		Messages int    `json:"messages"`
	}
	resp = httpDo(t, "GET", base+"/api/queues/"+url.PathEscape("/"), "guest", "guest")
	if err := json.NewDecoder(resp.Body).Decode(&queues); err != nil {
		t.Fatal(err)
	}
	// Besides the notification pipeline's own queues (ums.notify.*), the
	// one declared here.
	var mine []string
	for _, q := range queues {
		if !strings.HasPrefix(q.Name, "ums.notify.") {
			mine = append(mine, q.Name)
		}
	}
	if len(mine) != 1 || mine[0] != "mgmt-q" {
		t.Errorf("queues: %+v", queues)
	}

	resp = httpDo(t, "DELETE", base+"/api/connections/"+url.PathEscape(name), "guest", "guest")
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("delete: status %d", resp.StatusCode)
	}
	select {
	case e := <-closed:
		if e == nil || e.Code != amqp.ConnectionForced {
			t.Fatalf("closed with %v, want 320", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("connection not closed")
	}
	// Once closed, the connection is no longer listed.
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp = httpDo(t, "GET", base+"/api/connections/"+url.PathEscape(name), "guest", "guest")
		if resp.StatusCode == http.StatusNotFound {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("closed connection still listed: status %d", resp.StatusCode)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
