package test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-stomp/stomp/v3"

	"github.com/unifiedms/ums/internal/testutil"
)

// Other STOMP clients than go-stomp, for the common flows. They run when
// installed (scripts/test-stomp-clients.sh installs them: Debian's
// python3-stomp, npm's @stomp/stompjs) and are skipped otherwise.

// pythonWithStomp returns a Python that can import stomp.py, or "".
func pythonWithStomp() string {
	for _, p := range []string{os.Getenv("UMS_TEST_PYTHON"), "/usr/bin/python3", "python3"} {
		if p == "" {
			continue
		}
		if exec.Command(p, "-c", "import stomp").Run() == nil {
			return p
		}
	}
	return ""
}

const stompPy = `
import sys, threading, stomp
host, port = sys.argv[1].rsplit(":", 1)
got = threading.Event()
class L(stomp.ConnectionListener):
    def on_message(self, frame):
        print("GOT", frame.body, frame.headers.get("content-type"), frame.headers.get("colour"), flush=True)
        conn.ack(frame.headers["ack"])
        got.set()
    def on_error(self, frame):
        print("ERROR", frame.headers.get("message"), flush=True)
        got.set()
conn = stomp.Connection12([(host, int(port))], vhost="/", heartbeats=(1000, 1000))
conn.set_listener("l", L())
conn.connect("guest", "guest", wait=True)
conn.subscribe("/queue/from-go", id="1", ack="client-individual")
conn.send("/topic/from.python", "hello from python", content_type="text/plain", headers={"persistent": "true", "receipt": "r1"})
if not got.wait(10):
    print("TIMEOUT", flush=True)
conn.disconnect()
`

// stomp.py (Debian's python3-stomp) talks to go-stomp through UMS.
func TestStompPythonClient(t *testing.T) {
	py := pythonWithStomp()
	if py == "" {
		t.Skip("stomp.py is not installed (scripts/test-stomp-clients.sh installs python3-stomp)")
	}
	b := startStomp(t)
	c := stompDial(t, b.STOMPAddr)
	s := stompSubscribe(t, c, "/topic/from.*", stomp.AckAuto)
	stompSend(t, c, "/queue/from-go", "hello from go", stomp.SendOpt.Receipt, stomp.SendOpt.Header("colour", "blue"))
	script := filepath.Join(t.TempDir(), "client.py")
	if err := os.WriteFile(script, []byte(stompPy), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*waitFor)
	defer cancel()
	out, err := exec.CommandContext(ctx, py, script, b.STOMPAddr).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "GOT hello from go text/plain blue") {
		t.Fatalf("stomp.py: %v\n%s", err, out)
	}
	if m := stompRecv(t, s); string(m.Body) != "hello from python" || m.Header.Get("persistent") != "true" {
		t.Fatalf("from python: %q %v", m.Body, m.Header)
	}
	_, ch := newServer(b).channel(t)
	if q, err := ch.QueueDeclarePassive("from-go", true, false, false, false, nil); err != nil || q.Messages != 0 {
		t.Fatalf("from-go after stomp.py's ACK: %+v %v", q, err)
	}
}

const stompJS = `
const { Client } = require("@stomp/stompjs");
const client = new Client({
  brokerURL: "ws://" + process.argv[2] + "/ws",
  connectHeaders: { login: "guest", passcode: "guest", host: "/" },
  reconnectDelay: 0, heartbeatIncoming: 1000, heartbeatOutgoing: 1000,
});
const timer = setTimeout(() => { console.log("TIMEOUT"); process.exit(1); }, 10000);
client.onConnect = () => {
  client.subscribe("/queue/from-go-js", (m) => {
    console.log("GOT " + m.body + " " + m.headers["content-type"]);
    m.ack();
    client.publish({ destination: "/topic/from.js", body: "hello from stompjs", headers: { persistent: "true", receipt: "r1" } });
    client.watchForReceipt("r1", () => { clearTimeout(timer); client.deactivate(); });
  }, { ack: "client-individual" });
};
client.onStompError = (f) => { console.log("ERROR " + f.headers.message); process.exit(1); };
client.activate();
`

// @stomp/stompjs over WebSocket (Web-STOMP) talks to go-stomp through UMS.
// UMS_TEST_STOMPJS names the directory whose node_modules holds it.
func TestStompJSWebSocket(t *testing.T) {
	dir := os.Getenv("UMS_TEST_STOMPJS")
	if dir == "" {
		t.Skip("UMS_TEST_STOMPJS is not set (scripts/test-stomp-clients.sh installs @stomp/stompjs)")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed")
	}
	b := startStomp(t, testutil.WithProtocols(testutil.STOMPWS))
	c := stompDial(t, b.STOMPAddr)
	s := stompSubscribe(t, c, "/topic/from.*", stomp.AckAuto)
	stompSend(t, c, "/queue/from-go-js", "hello from go", stomp.SendOpt.Receipt)
	script := filepath.Join(t.TempDir(), "client.js")
	if err := os.WriteFile(script, []byte(stompJS), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*waitFor)
	defer cancel()
	// Node 20 has WebSocket behind a flag; later versions by default.
	cmd := exec.CommandContext(ctx, node, "--experimental-websocket", script, b.STOMPWSAddr)
	cmd.Env = append(os.Environ(), "NODE_PATH="+filepath.Join(dir, "node_modules"))
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "GOT hello from go text/plain") {
		t.Fatalf("stompjs: %v\n%s", err, out)
	}
	if m := stompRecv(t, s); string(m.Body) != "hello from stompjs" {
		t.Fatalf("from stompjs: %q", m.Body)
	}
}
