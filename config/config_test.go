package config

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestDefaults(t *testing.T) {
	c, err := Load(nil, env(nil), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"amqp": ":5672", "mqtt": ":1883", "mqtt-ws": ":15675", "stomp": ":61613",
		"stomp-ws": ":15674", "http": ":15672", "data": "./data", "log": "info"}
	got := map[string]string{"amqp": c.AMQPListen, "mqtt": c.MQTTListen, "mqtt-ws": c.MQTTWSListen, "stomp": c.STOMPListen,
		"stomp-ws": c.STOMPWSListen, "http": c.HTTPListen, "data": c.DataDir, "log": c.LogLevel}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: got %q, want %q", k, got[k], v)
		}
	}
	if c.RedisURL != "" || c.DefaultUser != "guest" || c.DefaultUserAnyHost {
		t.Errorf("unexpected defaults: %+v", c)
	}
}

func TestPrecedenceFlagsEnvFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "ums.yaml")
	if err := os.WriteFile(file, []byte("amqp-listen: \":1111\"\nstomp-listen: \":2222\"\nlog-level: debug\ndata-dir: /from/file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e := env(map[string]string{"UMS_CONFIG": file, "UMS_STOMP_LISTEN": ":3333", "UMS_LOG_LEVEL": "warn"})
	c, err := Load([]string{"--log-level", "error"}, e, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if c.AMQPListen != ":1111" {
		t.Errorf("file value lost: amqp-listen %q", c.AMQPListen)
	}
	if c.STOMPListen != ":3333" {
		t.Errorf("env should beat file: stomp-listen %q", c.STOMPListen)
	}
	if c.LogLevel != "error" {
		t.Errorf("flag should beat env and file: log-level %q", c.LogLevel)
	}
	if c.DataDir != "/from/file" || c.ConfigFile != file {
		t.Errorf("data-dir %q config %q", c.DataDir, c.ConfigFile)
	}
}

func TestFileErrorsNameTheLine(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ body, want string }{
		{"amqp-listen: \":1\"\nbogus: 1\n", ":2: unknown setting \"bogus\""},
		{"amqp-frame-max: lots\n", ":1: amqp-frame-max: not an integer"},
		{"log-level:\n  - a\n", ":2: setting \"log-level\" needs a single value"},
	} {
		file := filepath.Join(dir, "c.yaml")
		if err := os.WriteFile(file, []byte(tc.body), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Load([]string{"--config", file}, env(nil), &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), file+tc.want) {
			t.Errorf("%q: got %v, want %q", tc.body, err, file+tc.want)
		}
	}
}

func TestValidation(t *testing.T) {
	for _, args := range [][]string{
		{"--log-level", "loud"}, {"--amqp-frame-max", "100"}, {"--memory-high-watermark", "2"}, {"--data-dir", ""},
	} {
		if _, err := Load(args, env(nil), &bytes.Buffer{}); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
	if _, err := Load([]string{"--amqp-listen", "off"}, env(nil), &bytes.Buffer{}); err != nil {
		t.Errorf("off rejected: %v", err)
	}
}

func TestHelpListsEveryFlagWithEnv(t *testing.T) {
	var out bytes.Buffer
	_, err := Load([]string{"--help"}, env(nil), &out)
	if !errors.Is(err, ErrHelp) {
		t.Fatalf("got %v, want ErrHelp", err)
	}
	for _, s := range settings {
		if !strings.Contains(out.String(), "--"+s.flag) || !strings.Contains(out.String(), s.env) {
			t.Errorf("help lacks --%s / %s", s.flag, s.env)
		}
	}
}

func TestMQTTAnonymousSettings(t *testing.T) {
	d := Default()
	if !d.MQTTAllowAnonymous || d.MQTTDefaultUser != "guest" || d.MQTTDefaultPass != "guest" {
		t.Fatalf("defaults: allow %v user %q pass %q", d.MQTTAllowAnonymous, d.MQTTDefaultUser, d.MQTTDefaultPass)
	}
	file := filepath.Join(t.TempDir(), "ums.yaml")
	if err := os.WriteFile(file, []byte("mqtt-default-user: fromfile\nmqtt-default-pass: secret\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e := env(map[string]string{"UMS_CONFIG": file, "UMS_MQTT_DEFAULT_USER": "fromenv", "UMS_MQTT_ALLOW_ANONYMOUS": "true"})
	c, err := Load([]string{"--mqtt-allow-anonymous=false"}, e, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if c.MQTTAllowAnonymous || c.MQTTDefaultUser != "fromenv" || c.MQTTDefaultPass != "secret" {
		t.Fatalf("allow %v user %q pass %q", c.MQTTAllowAnonymous, c.MQTTDefaultUser, c.MQTTDefaultPass)
	}
}

// A boolean setting given bare on the command line means true.
func TestBareBooleanFlag(t *testing.T) {
	c, err := Load([]string{"--webhook-allow-http", "--webhook-allow-private=false", "--data-dir", "/tmp/x"},
		func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !c.WebhookAllowHTTP || c.WebhookAllowPrivate || c.DataDir != "/tmp/x" {
		t.Fatalf("allow-http %v, allow-private %v, data-dir %q", c.WebhookAllowHTTP, c.WebhookAllowPrivate, c.DataDir)
	}
}

func TestLimitSettings(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "ums.yaml")
	if err := os.WriteFile(file, []byte("max-consumers-per-queue: 7\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e := env(map[string]string{"UMS_CONFIG": file, "UMS_MAX_CONNECTIONS_PER_USER": "3"})
	c, err := Load([]string{"--max-connections", "100", "--login-failure-delay", "250ms"}, e, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if c.MaxConnections != 100 || c.MaxConnectionsPerUser != 3 || c.MaxConsumersPerQueue != 7 || c.LoginFailureDelay.Milliseconds() != 250 {
		t.Fatalf("got %d %d %d %v", c.MaxConnections, c.MaxConnectionsPerUser, c.MaxConsumersPerQueue, c.LoginFailureDelay)
	}
	d := Default()
	if d.MaxConnections != 0 || d.MaxConnectionsPerUser != 0 || d.MaxConsumersPerQueue != 0 || d.LoginFailureDelay.Seconds() != 1 {
		t.Fatalf("defaults: %d %d %d %v", d.MaxConnections, d.MaxConnectionsPerUser, d.MaxConsumersPerQueue, d.LoginFailureDelay)
	}
	for _, args := range [][]string{
		{"--max-connections", "-1"},
		{"--max-connections-per-user", "many"},
		{"--max-consumers-per-queue", "-5"},
		{"--login-failure-delay", "10s"},
		{"--login-failure-delay", "-1s"},
	} {
		if _, err := Load(args, env(nil), &bytes.Buffer{}); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}
