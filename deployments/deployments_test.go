// Package deployments checks the deployment files: the Helm chart renders
// into valid objects, and the chart, the compose file and the Dockerfile
// agree with the example configuration file (whose settings a config test
// keeps in step with the server's).
//
// Without a helm binary the chart is rendered here with text/template and
// small stand-ins for the few Helm and Sprig functions it uses. Set UMS_BIN
// to a built umsd to also run --check-config on every rendered
// configuration file.
package deployments

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"text/template"

	"gopkg.in/yaml.v3"
)

const chartDir = "helm/ums"

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// settings are the keys of the example configuration file.
func settings(t *testing.T) map[string]string {
	var m map[string]any
	readYAML(t, "ums.yaml", &m)
	out := map[string]string{}
	for k, v := range m {
		out[k] = fmt.Sprint(v)
	}
	if len(out) < 20 {
		t.Fatalf("ums.yaml has only %d settings", len(out))
	}
	return out
}

// listenPorts are the default ports of the listeners, by setting.
func listenPorts(t *testing.T) map[string]int {
	ports := map[string]int{}
	for k, v := range settings(t) {
		if strings.HasSuffix(k, "-listen") && v != "" { // "": not a listener of its own by default
			_, p, _ := strings.Cut(v, ":")
			n, err := strconv.Atoi(p)
			if err != nil {
				t.Fatalf("ums.yaml: %s: %q", k, v)
			}
			ports[k] = n
		}
	}
	return ports
}

// chart is .Chart in the templates.
type chart struct {
	APIVersion, Name, Version, AppVersion string
}

// render renders every template of the chart with values and returns the
// output of each file.
func render(t *testing.T, values map[string]any) map[string]string {
	t.Helper()
	var ch struct {
		APIVersion string `yaml:"apiVersion"`
		Name       string `yaml:"name"`
		Version    string `yaml:"version"`
		AppVersion string `yaml:"appVersion"`
	}
	readYAML(t, filepath.Join(chartDir, "Chart.yaml"), &ch)
	if ch.APIVersion != "v2" || ch.Name != "ums" || ch.Version == "" || ch.AppVersion == "" {
		t.Fatalf("Chart.yaml: %+v", ch)
	}
	root := template.New("chart").Option("missingkey=error")
	root.Funcs(helmFuncs(root))
	files, err := filepath.Glob(filepath.Join(chartDir, "templates", "*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("templates: %v %v", files, err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := root.New(filepath.Base(f)).Parse(string(data)); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
	ctx := map[string]any{
		"Values":  values,
		"Chart":   chart{APIVersion: ch.APIVersion, Name: ch.Name, Version: ch.Version, AppVersion: ch.AppVersion},
		"Release": map[string]any{"Name": "test", "Namespace": "messaging", "Service": "Helm"},
	}
	out := map[string]string{}
	for _, f := range files {
		name := filepath.Base(f)
		if strings.HasPrefix(name, "_") {
			continue
		}
		var b bytes.Buffer
		if err := root.ExecuteTemplate(&b, name, ctx); err != nil {
			t.Fatalf("render %s: %v", name, err)
		}
		out[name] = b.String()
	}
	return out
}

// helmFuncs are stand-ins for the Helm and Sprig functions the chart uses.
func helmFuncs(root *template.Template) template.FuncMap {
	empty := func(v any) bool {
		if v == nil {
			return true
		}
		rv := reflect.ValueOf(v)
		return !rv.IsValid() || rv.IsZero() || (rv.Kind() == reflect.Map || rv.Kind() == reflect.Slice) && rv.Len() == 0
	}
	toYAML := func(v any) (string, error) {
		var b bytes.Buffer
		enc := yaml.NewEncoder(&b)
		enc.SetIndent(2)
		if err := enc.Encode(v); err != nil {
			return "", err
		}
		return strings.TrimSuffix(b.String(), "\n"), enc.Close()
	}
	indent := func(n int, s string) string {
		pad := strings.Repeat(" ", n)
		return pad + strings.ReplaceAll(s, "\n", "\n"+pad)
	}
	copyMap := func(m map[string]any) map[string]any { return maps.Clone(m) }
	return template.FuncMap{
		"include": func(name string, data any) (string, error) {
			var b bytes.Buffer
			err := root.ExecuteTemplate(&b, name, data)
			return b.String(), err
		},
		"toYaml":   toYAML,
		"nindent":  func(n int, s string) string { return "\n" + indent(n, s) },
		"indent":   indent,
		"quote":    func(v any) string { return strconv.Quote(fmt.Sprint(v)) },
		"toString": func(v any) string { return fmt.Sprint(v) },
		"default": func(def any, v ...any) any {
			if len(v) == 0 || empty(v[0]) {
				return def
			}
			return v[0]
		},
		"contains":   func(sub, s string) bool { return strings.Contains(s, sub) },
		"trunc":      func(n int, s string) string { return s[:min(n, len(s))] },
		"trimSuffix": func(suf, s string) string { return strings.TrimSuffix(s, suf) },
		"replace":    func(old, new, s string) string { return strings.ReplaceAll(s, old, new) },
		"b64enc":     func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) },
		"b64dec": func(s string) (string, error) {
			b, err := base64.StdEncoding.DecodeString(s)
			return string(b), err
		},
		"randAlphaNum": func(n int) string { return strings.Repeat("x", n) },
		"sha256sum":    func(s string) string { return fmt.Sprintf("%x", sha256.Sum256([]byte(s))) },
		"lookup":       func(apiVersion, kind, ns, name string) map[string]any { return map[string]any{} },
		"dict": func(kv ...any) (map[string]any, error) {
			m := map[string]any{}
			if len(kv)%2 != 0 {
				return nil, fmt.Errorf("dict: odd number of arguments")
			}
			for i := 0; i < len(kv); i += 2 {
				m[fmt.Sprint(kv[i])] = kv[i+1]
			}
			return m, nil
		},
		"hasKey": func(m map[string]any, k string) bool { _, ok := m[k]; return ok },
		"set":    func(m map[string]any, k string, v any) map[string]any { m[k] = v; return m },
		"omit": func(m map[string]any, keys ...string) map[string]any {
			c := copyMap(m)
			if c == nil {
				c = map[string]any{}
			}
			for _, k := range keys {
				delete(c, k)
			}
			return c
		},
		"merge": func(dst map[string]any, srcs ...map[string]any) map[string]any {
			for _, s := range srcs {
				for k, v := range s {
					if _, ok := dst[k]; !ok {
						dst[k] = v
					}
				}
			}
			return dst
		},
	}
}

// documents splits rendered output into its YAML documents, dropping
// empty ones.
func documents(t *testing.T, name, out string) []map[string]any {
	t.Helper()
	var docs []map[string]any
	dec := yaml.NewDecoder(strings.NewReader(out))
	for {
		var d map[string]any
		err := dec.Decode(&d)
		if err != nil {
			if err.Error() == "EOF" {
				break
			}
			t.Fatalf("%s renders invalid YAML: %v\n%s", name, err, out)
		}
		if d != nil {
			docs = append(docs, d)
		}
	}
	return docs
}

func get(m any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			mm, ok := m.(map[string]any)
			if !ok {
				return nil
			}
			m = mm[k]
		case int:
			s, ok := m.([]any)
			if !ok || k >= len(s) {
				return nil
			}
			m = s[k]
		}
	}
	return m
}

func defaultValues(t *testing.T) map[string]any {
	var v map[string]any
	readYAML(t, filepath.Join(chartDir, "values.yaml"), &v)
	return v
}

// Every .Values path the templates use exists in values.yaml, and the
// chart's settings are the server's.
func TestChartValues(t *testing.T) {
	values := defaultValues(t)
	ref := regexp.MustCompile(`\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)`)
	files, _ := filepath.Glob(filepath.Join(chartDir, "templates", "*"))
	for _, f := range files {
		data, _ := os.ReadFile(f)
		for _, m := range ref.FindAllStringSubmatch(string(data), -1) {
			var cur any = values
			for _, k := range strings.Split(m[1][1:], ".") {
				mm, ok := cur.(map[string]any)
				if !ok {
					t.Errorf("%s: %s: %s is not a map in values.yaml", f, m[0], k)
					break
				}
				if cur, ok = mm[k]; !ok {
					t.Errorf("%s: %s is not in values.yaml", f, m[0])
					break
				}
			}
		}
	}
	known := settings(t)
	for k := range values["config"].(map[string]any) {
		if _, ok := known[k]; !ok {
			t.Errorf("values.yaml: config: %q is not a setting of deployments/ums.yaml", k)
		}
	}
	ports := listenPorts(t)
	for name, p := range values["service"].(map[string]any)["ports"].(map[string]any) {
		s := get(p, "setting").(string)
		if ports[s] == 0 || ports[s] != get(p, "port").(int) {
			t.Errorf("values.yaml: service port %s: %s %v, ums.yaml default %d", name, s, get(p, "port"), ports[s])
		}
	}
	if len(values["service"].(map[string]any)["ports"].(map[string]any)) != len(ports) {
		t.Errorf("values.yaml has a service port for %d of the %d listeners", len(values["service"].(map[string]any)["ports"].(map[string]any)), len(ports))
	}
	for k := range values["secretEnv"].(map[string]any) {
		if !strings.HasPrefix(k, "UMS_") {
			t.Errorf("values.yaml: secretEnv: %s is not a UMS_ variable", k)
		}
	}
}

// The chart renders into a StatefulSet with a volume, a Service per
// protocol, a ConfigMap holding a configuration umsd accepts and a Secret.
func TestChartRenders(t *testing.T) {
	umsd := os.Getenv("UMS_BIN")
	for _, tc := range []struct {
		name   string
		change func(v map[string]any)
		svcs   int
		secret bool
	}{
		{"defaults", func(map[string]any) {}, 6, true},
		{"options", func(v map[string]any) {
			v["existingSecret"] = "ums-credentials"
			ports := v["service"].(map[string]any)["ports"].(map[string]any)
			ports["stomp"].(map[string]any)["enabled"] = false
			ports["stomp-ws"].(map[string]any)["enabled"] = false
			v["config"].(map[string]any)["redis-url"] = "redis://redis:6379/0"
			v["config"].(map[string]any)["amqp-listen"] = ":1"
			v["gateways"] = []any{map[string]any{"name": "sms-kr", "url": "https://sms.example.com/send",
				"body": `{"to": {{json .To}}}`}}
			v["extraEnv"] = []any{map[string]any{"name": "UMS_LOG_LEVEL", "value": "debug"}}
			v["nodeSelector"] = map[string]any{"disk": "ssd"}
		}, 4, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			values := defaultValues(t)
			tc.change(values)
			out := render(t, values)
			kinds := map[string]int{}
			var sts, cm, secret map[string]any
			if !strings.Contains(out["NOTES.txt"], "svc/test-ums-http") {
				t.Errorf("NOTES.txt:\n%s", out["NOTES.txt"])
			}
			delete(out, "NOTES.txt")
			for name, o := range out {
				for _, d := range documents(t, name, o) {
					kind, _ := d["kind"].(string)
					if d["apiVersion"] == nil || kind == "" || get(d, "metadata", "name") == nil {
						t.Errorf("%s: object without apiVersion, kind or name: %v", name, d)
					}
					kinds[kind]++
					switch kind {
					case "StatefulSet":
						sts = d
					case "ConfigMap":
						cm = d
					case "Secret":
						secret = d
					case "Service":
						if get(d, "spec", "clusterIP") != "None" && get(d, "metadata", "name") == "test-ums-http" {
							if get(d, "metadata", "annotations", "prometheus.io/scrape") != "true" ||
								get(d, "metadata", "annotations", "prometheus.io/port") != "15672" {
								t.Errorf("http Service lacks the scrape annotations: %v", d["metadata"])
							}
						}
					}
				}
			}
			if kinds["StatefulSet"] != 1 || kinds["ConfigMap"] != 1 || kinds["Service"] != tc.svcs+1 || (kinds["Secret"] == 1) != tc.secret {
				t.Fatalf("objects: %v", kinds)
			}
			c := get(sts, "spec", "template", "spec", "containers", 0)
			if get(c, "readinessProbe", "httpGet", "path") != "/readyz" || get(c, "livenessProbe", "httpGet", "path") != "/healthz" ||
				get(c, "readinessProbe", "httpGet", "port") != "http" {
				t.Errorf("probes: %v %v", get(c, "readinessProbe"), get(c, "livenessProbe"))
			}
			wantSecret := "test-ums"
			if !tc.secret {
				wantSecret = "ums-credentials"
			}
			if get(c, "envFrom", 0, "secretRef", "name") != wantSecret {
				t.Errorf("envFrom: %v", get(c, "envFrom"))
			}
			if get(sts, "spec", "volumeClaimTemplates", 0, "metadata", "name") != "data" ||
				get(c, "volumeMounts", 0, "mountPath") != "/var/lib/ums" {
				t.Errorf("no persistent /var/lib/ums: %v", get(c, "volumeMounts"))
			}
			if get(sts, "spec", "template", "metadata", "annotations", "prometheus.io/path") != "/metrics" {
				t.Errorf("pod annotations: %v", get(sts, "spec", "template", "metadata", "annotations"))
			}
			if secret != nil {
				for k, v := range secret["data"].(map[string]any) {
					if _, err := base64.StdEncoding.DecodeString(v.(string)); err != nil || !strings.HasPrefix(k, "UMS_") {
						t.Errorf("secret %s: %v", k, err)
					}
				}
				if get(secret, "data", "UMS_DEFAULT_PASS") == nil {
					t.Errorf("secret without a default password: %v", secret["data"])
				}
			}
			file, _ := get(cm, "data", "ums.yaml").(string)
			var conf map[string]any
			if err := yaml.Unmarshal([]byte(file), &conf); err != nil {
				t.Fatalf("ConfigMap ums.yaml: %v\n%s", err, file)
			}
			if conf["data-dir"] != "/var/lib/ums" || (tc.secret && conf["stomp-listen"] != ":61613") || (!tc.secret && conf["stomp-listen"] != "off") ||
				conf["amqp-listen"] != ":5672" {
				t.Errorf("ConfigMap ums.yaml:\n%s", file)
			}
			if umsd == "" {
				t.Log("UMS_BIN not set: the rendered configuration is not checked with umsd --check-config")
				return
			}
			path := filepath.Join(t.TempDir(), "ums.yaml")
			if err := os.WriteFile(path, []byte(file), 0o644); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(umsd, "--config", path, "--data-dir", filepath.Join(t.TempDir(), "data"), "--check-config")
			cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("umsd --check-config on the rendered configuration: %v\n%s\n%s", err, b, file)
			}
		})
	}
}

// The compose file runs UMS with Redis, its data on a volume.
func TestCompose(t *testing.T) {
	var c struct {
		Services map[string]struct {
			Build struct {
				Context    string `yaml:"context"`
				Dockerfile string `yaml:"dockerfile"`
			} `yaml:"build"`
			Image       string            `yaml:"image"`
			Command     []string          `yaml:"command"`
			Environment map[string]string `yaml:"environment"`
			Ports       []string          `yaml:"ports"`
			Volumes     []string          `yaml:"volumes"`
			DependsOn   map[string]any    `yaml:"depends_on"`
		} `yaml:"services"`
		Volumes map[string]any `yaml:"volumes"`
	}
	readYAML(t, "compose.yaml", &c)
	ums, redis := c.Services["ums"], c.Services["redis"]
	if _, err := os.Stat(filepath.Join(ums.Build.Context, "deployments", filepath.Base(ums.Build.Dockerfile))); err != nil || ums.Build.Context != ".." {
		t.Errorf("ums build: %+v %v", ums.Build, err)
	}
	if !strings.HasPrefix(redis.Image, "redis:") || ums.DependsOn["redis"] == nil {
		t.Errorf("redis service: %+v, depends_on %v", redis, ums.DependsOn)
	}
	if len(ums.Command) != 2 || ums.Command[0] != "--redis-url" || !strings.HasPrefix(ums.Command[1], "redis://redis:") {
		t.Errorf("ums command: %v", ums.Command)
	}
	if len(ums.Volumes) != 1 || !strings.HasSuffix(ums.Volumes[0], ":/var/lib/ums") {
		t.Errorf("ums volumes: %v", ums.Volumes)
	}
	for k := range ums.Environment {
		if _, ok := envNames(t)[k]; !ok {
			t.Errorf("ums environment: %s is not a setting's variable", k)
		}
	}
	var published []int
	for _, p := range ums.Ports {
		host, _, _ := strings.Cut(p, ":")
		n, _ := strconv.Atoi(host)
		published = append(published, n)
	}
	if want := sortedPorts(t); !reflect.DeepEqual(sorted(published), want) {
		t.Errorf("ums ports %v, listeners %v", published, want)
	}
}

// envNames are the settings' environment variables named in ums.yaml.
func envNames(t *testing.T) map[string]bool {
	data, err := os.ReadFile("ums.yaml")
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, m := range regexp.MustCompile(`env (UMS_[A-Z0-9_]+)`).FindAllSubmatch(data, -1) {
		names[string(m[1])] = true
	}
	return names
}

func sorted(s []int) []int { sort.Ints(s); return s }

func sortedPorts(t *testing.T) []int {
	var ports []int
	for _, p := range listenPorts(t) {
		ports = append(ports, p)
	}
	return sorted(ports)
}

// The Dockerfile builds a static binary, runs it as a non-root user with
// /var/lib/ums as its data volume, exposes every listener's port and checks
// /healthz.
func TestDockerfile(t *testing.T) {
	data, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	d := string(data)
	for _, want := range []string{"CGO_ENABLED=0", "VOLUME [\"/var/lib/ums\"]", "UMS_DATA_DIR=/var/lib/ums", "USER ums",
		"HEALTHCHECK", "http://127.0.0.1:15672/healthz", "ENTRYPOINT [\"/usr/local/bin/umsd\"]"} {
		if !strings.Contains(d, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	if n := strings.Count(d, "\nFROM "); n < 2 {
		t.Errorf("Dockerfile has %d stages, want a build and a runtime stage", n)
	}
	var exposed []int
	for _, line := range strings.Split(d, "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == "EXPOSE" {
			for _, p := range f[1:] {
				n, _ := strconv.Atoi(p)
				exposed = append(exposed, n)
			}
		}
	}
	if want := sortedPorts(t); !reflect.DeepEqual(sorted(exposed), want) {
		t.Errorf("EXPOSE %v, listeners %v", exposed, want)
	}
}
