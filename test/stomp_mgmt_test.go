package test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"

	"github.com/unifiedms/ums/internal/testutil"
)

// STOMP connections are listed by the management API, which can close
// them: the client gets an ERROR (connection_forced) and its unacknowledged
// messages go back to the queue. A broker shutdown does the same.
func TestStompManagementAndShutdown(t *testing.T) {
	b := startStomp(t, testutil.WithProtocols(testutil.HTTP))
	r := dialRawStomp(t, b.STOMPAddr)
	r.connect("accept-version:1.2")
	r.write("SEND\ndestination:/queue/held\n\nkeep me\x00SUBSCRIBE\nid:1\ndestination:/queue/held\nack:client\n\n\x00")
	r.expect("MESSAGE")

	var conns []struct {
		Name     string `json:"name"`
		User     string `json:"user"`
		Protocol string `json:"protocol"`
	}
	resp := httpDo(t, "GET", b.HTTPURL+"/api/connections/", "guest", "guest")
	if err := json.NewDecoder(resp.Body).Decode(&conns); err != nil {
		t.Fatal(err)
	}
	name := ""
	for _, c := range conns {
		if c.Protocol == "STOMP 1.2" && c.User == "guest" {
			name = c.Name
		}
	}
	if name == "" {
		t.Fatalf("STOMP connection not listed: %+v", conns)
	}
	resp = httpDo(t, "DELETE", b.HTTPURL+"/api/connections/"+url.PathEscape(name), "guest", "guest")
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("delete: status %d", resp.StatusCode)
	}
	r.expectError("connection_forced")

	r = dialRawStomp(t, b.STOMPAddr)
	r.connect("accept-version:1.2")
	r.write("SUBSCRIBE\nid:1\ndestination:/queue/held\nack:client\n\n\x00")
	if m := r.expect("MESSAGE"); string(m.Body) != "keep me" || m.Header.Get("redelivered") != "true" {
		t.Fatalf("after the close: %q %v", m.Body, headers(m))
	}
	b.Stop()
	r.expectError("connection_forced")
}
