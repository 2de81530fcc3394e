package config

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// exampleFile is the example configuration file with every setting.
const exampleFile = "../deployments/ums.yaml"

var update = flag.Bool("update", false, "rewrite "+exampleFile+" from the settings table")

// plainValue is a value written without quotes in the example file.
var plainValue = regexp.MustCompile(`^[A-Za-z0-9./_][A-Za-z0-9./_-]*$`)

// example renders the example configuration file from the settings table:
// every setting with its meaning, flag, environment variable and default,
// set to its default.
func example() []byte {
	var b bytes.Buffer
	b.WriteString(`# UMS configuration file: every setting, set to its default.
#
# Generated from config/config.go by
#   go test ./config/ -run TestExampleFile -update
# (the test fails when this file and the settings disagree).
#
# Use it with umsd --config FILE (or UMS_CONFIG=FILE); check it with
#   umsd --config FILE --check-config
# Keys are the flag names. Flags beat environment variables beat this file
# beat the built-in defaults, so a value here is only used when neither
# the flag nor its UMS_ variable is set. Remove the settings you keep at
# their default if you prefer a short file; keep secrets (passwords,
# tokens, keys) in UMS_ environment variables rather than here.
#
# A listen address of off disables that listener. Durations are Go
# durations (10s, 5m, 24h) or a number of seconds.
#
# HTTP gateways (SMS and KakaoTalk providers) are a list under gateways:,
# documented with two working examples in gateways.example.yaml.
`)
	for _, s := range settings {
		b.WriteString("\n")
		help := strings.ToUpper(s.help[:1]) + s.help[1:]
		if !strings.HasSuffix(help, ".") {
			help += "."
		}
		for _, line := range wrap(help, 74) {
			b.WriteString("# " + line + "\n")
		}
		def := s.def
		shown := quote(def)
		if def == "" {
			shown = "none"
		}
		if commandLineOnly(s.flag) {
			fmt.Fprintf(&b, "# Flag --%s %s, env %s; default %s. Not in this file.\n", s.flag, s.meta, s.env, shown)
			continue
		}
		fmt.Fprintf(&b, "# Flag --%s %s, env %s; default %s.\n", s.flag, s.meta, s.env, shown)
		fmt.Fprintf(&b, "%s: %s\n", s.flag, quote(def))
	}
	return b.Bytes()
}

func quote(v string) string {
	if plainValue.MatchString(v) {
		return v
	}
	return strconv.Quote(v)
}

// wrap splits text into lines of at most width bytes at spaces.
func wrap(text string, width int) []string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(text) {
		if line != "" && len(line)+1+len(w) > width {
			lines = append(lines, line)
			line = w
			continue
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	return append(lines, line)
}

// The example file lists every setting with its default, and loading it
// gives the built-in defaults.
func TestExampleFile(t *testing.T) {
	want := example()
	if *update {
		if err := os.WriteFile(exampleFile, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(exampleFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range settings {
		if !bytes.Contains(got, []byte("--"+s.flag+" ")) || !bytes.Contains(got, []byte(s.env)) {
			t.Errorf("%s lacks --%s / %s", exampleFile, s.flag, s.env)
		}
		if !commandLineOnly(s.flag) && !bytes.Contains(got, []byte("\n"+s.flag+": ")) {
			t.Errorf("%s does not set %s", exampleFile, s.flag)
		}
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is out of date: go test ./config/ -run TestExampleFile -update", exampleFile)
	}
	path, _ := filepath.Abs(exampleFile)
	c, err := Load([]string{"--config", path}, env(nil), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	d := Default()
	d.ConfigFile = path
	if !reflect.DeepEqual(c, d) {
		t.Errorf("%s does not load as the defaults:\n got %+v\nwant %+v", exampleFile, c, d)
	}
}

// --check-config is given on the command line or in the environment, not
// in a file.
func TestCheckConfigSetting(t *testing.T) {
	c, err := Load([]string{"--check-config"}, env(nil), &bytes.Buffer{})
	if err != nil || !c.CheckConfig {
		t.Fatalf("bare flag: %v, %v", c, err)
	}
	c, err = Load(nil, env(map[string]string{"UMS_CHECK_CONFIG": "true"}), &bytes.Buffer{})
	if err != nil || !c.CheckConfig {
		t.Fatalf("env: %v, %v", c, err)
	}
	file := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(file, []byte("check-config: true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load([]string{"--config", file}, env(nil), &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), file+":1: unknown setting") {
		t.Fatalf("in a file: %v", err)
	}
}
