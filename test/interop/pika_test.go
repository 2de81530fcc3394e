// Package interop runs clients other than amqp091-go against a real UMS
// broker: Python scripts using Debian's python3-pika, one per feature
// group (TTL and dead-lettering, length limits, priorities, consumer
// features, exchanges, transactions, direct reply-to, confirms), and
// python3-paho-mqtt next to pika (mqtt_*.py); and Node.js scripts in node/
// using npm's amqplib.
package interop

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/unifiedms/ums/internal/testutil"
)

// python is Debian's interpreter, where apt installs python3-pika; the
// python3 first on PATH may be another one without it.
const python = "/usr/bin/python3"

// scriptTimeout bounds one script's run.
const scriptTimeout = 60 * time.Second

// startBroker runs a broker with AMQP and MQTT on loopback ports chosen by
// the OS and a temporary data dir; it stops with the test. It returns the
// AMQP URL and the MQTT address.
func startBroker(t *testing.T) (amqpURL, mqttAddr string) {
	t.Helper()
	b := testutil.StartBroker(t, testutil.WithProtocols(testutil.AMQP, testutil.MQTT))
	return b.AMQPURL, b.MQTTAddr
}

// needPython skips the test when python3-pika or python3-paho-mqtt is
// not importable.
func needPython(t *testing.T) {
	t.Helper()
	out, err := exec.Command(python, "-c", "import pika, paho.mqtt.client").CombinedOutput()
	if err != nil {
		msg := "python3-pika or python3-paho-mqtt not installed: run scripts/interop.sh or apt-get install -y python3-pika python3-paho-mqtt"
		// Also on stderr, so that the reason shows without -v.
		fmt.Fprintf(os.Stderr, "%s: %s\n", t.Name(), msg)
		t.Logf("%s -c 'import pika, paho.mqtt.client': %v: %s", python, err, bytes.TrimSpace(out))
		t.Skip(msg)
	}
}

// scripts lists the feature scripts in this directory.
func scripts(t *testing.T) []string {
	t.Helper()
	all, err := filepath.Glob("*.py")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range all {
		if f != "interop_common.py" {
			out = append(out, f)
		}
	}
	if len(out) == 0 {
		t.Fatal("no interop scripts found")
	}
	return out
}

// TestPika runs every script against its own broker. A script prints one
// line per check and exits non-zero when one fails.
func TestPika(t *testing.T) {
	needPython(t)
	for _, script := range scripts(t) {
		name := strings.TrimSuffix(script, ".py")
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			url, mqttAddr := startBroker(t)
			ctx, cancel := context.WithTimeout(context.Background(), scriptTimeout)
			defer cancel()
			cmd := exec.CommandContext(ctx, python, script, url, mqttAddr)
			cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1")
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			start := time.Now()
			err := cmd.Run()
			took := time.Since(start).Round(time.Millisecond)
			if err != nil || testing.Verbose() {
				t.Logf("%s %s %s (%v):\n%s", python, script, url, took, out.String())
			}
			switch {
			case ctx.Err() != nil:
				t.Fatalf("%s did not finish within %v", script, scriptTimeout)
			case err != nil:
				t.Fatalf("%s failed: %v; failing checks:\n%s", script, err, failures(out.String()))
			}
		})
	}
}

// failures picks the failing checks out of a script's output.
func failures(out string) string {
	var b strings.Builder
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "FAIL") || strings.HasPrefix(line, "Traceback") || strings.HasPrefix(line, "pika.") {
			b.WriteString(line)
			b.WriteByte('\n')
		}
	}
	return b.String()
}
