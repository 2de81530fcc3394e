package test

import (
	"encoding/json"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestMgmtAPIRabbitmqadmin drives Debian's rabbitmqadmin (package
// rabbitmq-server) against the management API: declare, publish, get,
// delete and export, as an operator used to RabbitMQ would.
func TestMgmtAPIRabbitmqadmin(t *testing.T) {
	bin, err := exec.LookPath("rabbitmqadmin")
	if err != nil {
		t.Skip("rabbitmqadmin not installed (Debian package rabbitmq-server provides it): skipping")
	}
	_, base := startMgmt(t)
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) string {
		t.Helper()
		all := append([]string{"-H", u.Hostname(), "-P", u.Port(), "-u", "guest", "-p", "guest", "-V", "/"}, args...)
		out, err := exec.Command(bin, all...).CombinedOutput()
		if err != nil {
			t.Fatalf("rabbitmqadmin %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	run("declare", "queue", "name=admin-q", "durable=true", `arguments={"x-max-length":5}`)
	run("declare", "exchange", "name=admin-x", "type=fanout")
	run("declare", "binding", "source=admin-x", "destination=admin-q", "routing_key=k")
	if out := run("-f", "tsv", "-q", "list", "queues", "name"); !strings.Contains(out, "admin-q") {
		t.Fatalf("list queues: %q", out)
	}
	if out := run("publish", "exchange=admin-x", "routing_key=k", "payload=hello from admin"); !strings.Contains(out, "Message published") ||
		strings.Contains(out, "NOT routed") {
		t.Fatalf("publish: %q", out)
	}
	run("publish", "routing_key=admin-q", "payload=second")

	var msgs []struct {
		Payload      string `json:"payload"`
		Exchange     string `json:"exchange"`
		MessageCount int    `json:"message_count"`
		Redelivered  bool   `json:"redelivered"`
	}
	out := run("-f", "raw_json", "get", "queue=admin-q", "count=2", "ackmode=ack_requeue_true")
	if err := json.Unmarshal([]byte(out), &msgs); err != nil {
		t.Fatalf("get: %v: %q", err, out)
	}
	if len(msgs) != 2 || msgs[0].Payload != "hello from admin" || msgs[0].Exchange != "admin-x" || msgs[1].Payload != "second" {
		t.Fatalf("get: %+v", msgs)
	}
	out = run("-f", "raw_json", "get", "queue=admin-q", "ackmode=ack_requeue_false")
	if err := json.Unmarshal([]byte(out), &msgs); err != nil || len(msgs) != 1 || !msgs[0].Redelivered || msgs[0].MessageCount != 1 {
		t.Fatalf("get after requeue: %v %+v", err, msgs)
	}
	run("purge", "queue", "name=admin-q")

	file := filepath.Join(t.TempDir(), "defs.json")
	run("export", file)
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	defs := parseDefs(t, data)
	if !defs.has("queues", map[string]any{"name": "admin-q", "durable": true}) ||
		!defs.has("bindings", map[string]any{"source": "admin-x", "destination": "admin-q", "routing_key": "k"}) {
		t.Fatalf("export: %s", data)
	}
	run("delete", "binding", "source=admin-x", "destination=admin-q", "destination_type=queue", "properties_key=k")
	run("delete", "queue", "name=admin-q")
	run("delete", "exchange", "name=admin-x")
	if out := run("-f", "tsv", "-q", "list", "queues", "name"); strings.Contains(out, "admin-q") {
		t.Fatalf("queue still listed: %q", out)
	}
	run("import", file)
	if out := run("-f", "tsv", "-q", "list", "bindings", "source", "destination"); !strings.Contains(out, "admin-x\tadmin-q") {
		t.Fatalf("after import: %q", out)
	}

	// The node's lists and a new vhost.
	if out := run("-f", "tsv", "-q", "list", "nodes", "name", "type"); !strings.Contains(out, "ums@") || !strings.Contains(out, "disc") {
		t.Fatalf("list nodes: %q", out)
	}
	run("list", "channels")
	run("list", "consumers")
	run("list", "policies")
	run("declare", "vhost", "name=admin-vhost")
	if out := run("-f", "tsv", "-q", "list", "vhosts", "name"); !strings.Contains(out, "admin-vhost") {
		t.Fatalf("list vhosts after declare: %q", out)
	}
}
