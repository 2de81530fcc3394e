package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func noEnv(string) string { return "" }

// --check-config loads and checks the configuration, says so and exits
// without starting anything; errors name the file and line where they
// have one.
func TestCheckConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	dataDir := filepath.Join(dir, "data")
	gateway := `gateways:
  - name: sms-kr
    url: https://sms.example.com/send
    body: '{"to": {{json .To}}, "text": {{json .Text}}}'
`
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		code int
		want string // in stdout for 0, stderr otherwise
	}{
		{"defaults", []string{"--check-config"}, nil, 0, "configuration OK"},
		{"example file", []string{"--check-config", "--config", "../../deployments/ums.yaml", "--data-dir", dataDir}, nil, 0, "configuration OK"},
		{"env asks", nil, map[string]string{"UMS_CHECK_CONFIG": "1", "UMS_DATA_DIR": dataDir}, 0, "configuration OK"},
		{"gateway", []string{"--check-config", "--config", write("gw.yaml", gateway)}, nil, 0, "configuration OK"},
		{"unknown key", []string{"--check-config", "--config", write("bad.yaml", "amqp-listen: \":1\"\nbogus: 1\n")}, nil, 1,
			filepath.Join(dir, "bad.yaml") + ":2: unknown setting \"bogus\""},
		{"bad value", []string{"--config", write("val.yaml", "log-level: debug\namqp-heartbeat: soon\n"), "--check-config=true"}, nil, 1,
			filepath.Join(dir, "val.yaml") + ":2: amqp-heartbeat: not a duration"},
		{"gateway list not a list", []string{"--check-config", "--config", write("gwmap.yaml", "log-level: info\ngateways:\n  name: x\n")}, nil, 1,
			filepath.Join(dir, "gwmap.yaml") + ":3: gateways needs a list"},
		{"gateway entry", []string{"--check-config", "--config", write("gwbad.yaml", "log-level: info\ngateways:\n  - name: x\n    url: ftp://nowhere\n")}, nil, 1,
			filepath.Join(dir, "gwbad.yaml") + ":3: gateways[0]: gateway x"},
		{"gateway env unset", []string{"--check-config", "--config", write("gwenv.yaml", strings.Replace(gateway, "sms.example.com", "${UMS_TEST_UNSET_HOST}", 1))}, nil, 1,
			"UMS_TEST_UNSET_HOST"},
		{"gateway field type", []string{"--check-config", "--config", write("gwtype.yaml", "gateways:\n  - name: [1]\n")}, nil, 1,
			filepath.Join(dir, "gwtype.yaml") + ":2: gateways"},
		{"two listeners on a port", []string{"--check-config", "--mqtt-listen", "127.0.0.1:5672"}, nil, 1, "mqtt-listen: 127.0.0.1:5672 is also amqp-listen's port"},
		{"listeners on other hosts", []string{"--check-config", "--amqp-listen", "127.0.0.1:7000", "--mqtt-listen", "127.0.0.2:7000"}, nil, 0, "configuration OK"},
		{"bad listen address", []string{"--check-config", "--http-listen", "15672"}, nil, 1, "http-listen: \"15672\" is not host:port"},
		{"sms half configured", []string{"--check-config", "--twilio-account-sid", "AC" + strings.Repeat("0", 32)}, nil, 1, "sms channel: sms: an auth token"},
		{"webhook settings", []string{"--check-config", "--webhook-secret", "s", "--webhook-timeout", "-1s"}, nil, 1, "webhook channel: webhook: negative timeout"},
		{"limits", []string{"--check-config", "--notify-rate-limit", "email=lots"}, nil, 1, "--notify-rate-limit"},
		{"redis url", []string{"--check-config", "--redis-url", "http://localhost"}, nil, 1, "--redis-url"},
		{"data dir a file", []string{"--check-config", "--data-dir", write("plain", "")}, nil, 1, "is not a directory"},
		{"flag error", []string{"--check-config", "--amqp-frame-max", "many"}, nil, 1, "--amqp-frame-max: not an integer"},
		{"validation", []string{"--check-config", "--log-level", "loud"}, nil, 1, "log-level: unknown level"},
		{"tls key missing", []string{"--check-config", "--tls-cert-file", write("cert.pem", "")}, nil, 1, "tls-cert-file, tls-key-file: set both or neither"},
		{"tls files unreadable", []string{"--check-config", "--tls-cert-file", write("cert2.pem", "x"), "--tls-key-file", write("key.pem", "y")}, nil, 1, "tls certificate"},
		{"tls verify without CA", []string{"--check-config", "--tls-verify-peer"}, nil, 1, "tls-verify-peer: needs tls-ca-file"},
		{"tls listener port clash", []string{"--check-config", "--tls-cert-file", write("cert3.pem", "x"), "--tls-key-file", write("key3.pem", "y"), "--amqps-listen", ":5672"}, nil, 1, "amqps-listen: :5672 is also amqp-listen's port"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			getenv := func(k string) string { return tc.env[k] }
			code := run(tc.args, getenv, &stdout, &stderr)
			out := stdout.String()
			if tc.code != 0 {
				out = stderr.String()
			}
			if code != tc.code || !strings.Contains(out, tc.want) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit %d with %q", code, stdout.String(), stderr.String(), tc.code, tc.want)
			}
		})
	}
	if _, err := os.Stat(dataDir); err == nil {
		t.Errorf("--check-config created the data directory")
	}
}

// Without --check-config a bad flag is a usage error (exit 2).
func TestUsageErrorExit(t *testing.T) {
	var stderr bytes.Buffer
	if code := run([]string{"--amqp-frame-max", "many"}, noEnv, &bytes.Buffer{}, &stderr); code != 2 {
		t.Fatalf("exit %d (%s), want 2", code, stderr.String())
	}
}
