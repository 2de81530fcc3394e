package test

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/unifiedms/ums"

// rule says which dependencies a package (and its sub-packages) must not have.
type rule struct {
	pkg    string // package path relative to the module, "" for the root
	why    string
	forbid func(dep string) bool // dep is module-relative for our packages, full path otherwise
}

func ours(dep string) (string, bool) {
	if dep == module {
		return "", true
	}
	if strings.HasPrefix(dep, module+"/") {
		return strings.TrimPrefix(dep, module+"/"), true
	}
	return "", false
}

func under(p, dir string) bool { return p == dir || strings.HasPrefix(p, dir+"/") }

func stdlib(dep string) bool {
	first := strings.SplitN(dep, "/", 2)[0]
	return !strings.Contains(first, ".")
}

// importRules are the arrows DESIGN.md forbids.
var importRules = []rule{
	{"core", "core imports no protocol, notify, channels, config, broker or cmd", func(d string) bool {
		p, ok := ours(d)
		return ok && (under(p, "protocols") || under(p, "notify") || under(p, "channels") ||
			under(p, "config") || under(p, "internal/broker") || under(p, "cmd"))
	}},
	{"core/route", "core/route uses the standard library only", func(d string) bool { return !stdlib(d) }},
	{"core/store", "core/store uses the standard library only", func(d string) bool { return !stdlib(d) }},
	{"core/auth", "core/auth uses the standard library and x/crypto only", func(d string) bool {
		return !stdlib(d) && !strings.HasPrefix(d, "golang.org/x/crypto")
	}},
	{"protocols/amqp/wire", "the AMQP codec uses the standard library only", func(d string) bool { return !stdlib(d) }},
	{"internal/netpark", "netpark (the idle-socket poller) uses the standard library only", func(d string) bool { return !stdlib(d) }},
	{"protocols/amqp", "protocols never import each other", otherProtocol("amqp")},
	{"protocols/mqtt", "protocols never import each other", otherProtocol("mqtt")},
	{"protocols/stomp", "protocols never import each other", otherProtocol("stomp")},
	{"protocols/stomp/wire", "the STOMP codec uses the standard library and go-stomp's frame types only", func(d string) bool {
		return !stdlib(d) && d != "github.com/go-stomp/stomp/v3/frame"
	}},
	{"protocols/mgmt", "protocols never import each other", otherProtocol("mgmt")},
	{"notify", "notify never imports channels or protocols", func(d string) bool {
		p, ok := ours(d)
		return ok && (under(p, "channels") || under(p, "protocols") || under(p, "cmd"))
	}},
	{"channels", "channels know nothing of the core or protocols", func(d string) bool {
		p, ok := ours(d)
		return ok && (under(p, "core") || under(p, "protocols") || under(p, "internal/broker"))
	}},
	{"internal/metrics", "metrics reads the core only: hooks into the store and notify are wired by internal/broker", func(d string) bool {
		p, ok := ours(d)
		return ok && !under(p, "core") && !under(p, "internal/clock")
	}},
	{"cmd/umsctl", "umsctl talks to the management API only", func(d string) bool {
		p, ok := ours(d)
		return ok && !under(p, "protocols/mgmt/api")
	}},
	{"cmd/umsbench", "umsbench imports no server package (only the stdlib-only client pieces of internal/mqttraw)", func(d string) bool {
		p, ok := ours(d)
		return ok && p != "internal/mqttraw"
	}},
	{"internal/mqttraw", "mqttraw is standard library only", func(d string) bool {
		_, ok := ours(d)
		return ok
	}},
	{"", "nothing imports cmd", func(d string) bool {
		p, ok := ours(d)
		return ok && under(p, "cmd")
	}},
}

// testOnly are packages for tests: no package of the server or its commands
// may import them. internal/testutil imports internal/broker, the
// composition root, to start a real broker; that is fine for a test helper,
// and this rule keeps it from becoming a way around the others.
var testOnly = []string{"internal/testutil"}

func otherProtocol(self string) func(string) bool {
	return func(d string) bool {
		p, ok := ours(d)
		return ok && under(p, "protocols") && !under(p, "protocols/"+self) && !under(p, "protocols/mgmt/api")
	}
}

// violations applies the rules to a package→deps map (module-relative keys).
func violations(deps map[string][]string) []string {
	var out []string
	for pkg, ds := range deps {
		for _, d := range ds {
			p, ok := ours(d)
			if !ok {
				continue
			}
			for _, only := range testOnly {
				if under(p, only) && !under(pkg, only) {
					out = append(out, pkg+" -> "+d+": "+only+" is for tests only")
				}
			}
		}
		for _, r := range importRules {
			if r.pkg != "" && !under(pkg, r.pkg) {
				continue
			}
			for _, d := range ds {
				if r.pkg == "" && under(pkg, "cmd") {
					continue // commands may import their own helpers
				}
				if r.forbid(d) {
					out = append(out, pkg+" -> "+d+": "+r.why)
				}
			}
		}
	}
	return out
}

func TestImportRules(t *testing.T) {
	cmd := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Deps}} {{.}}{{end}}`, module+"/...")
	cmd.Dir = ".."
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	deps := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		p, ok := ours(f[0])
		if !ok || under(p, "test") {
			continue
		}
		deps[p] = f[1:]
	}
	if len(deps) < 5 {
		t.Fatalf("go list found only %d packages: %v", len(deps), deps)
	}
	for _, v := range violations(deps) {
		t.Error(v)
	}
}

// The checker itself must catch a forbidden arrow.
func TestImportRulesCatchViolations(t *testing.T) {
	bad := map[string][]string{
		"core":                 {module + "/protocols/amqp"},
		"core/route":           {"github.com/some/lib"},
		"protocols/mqtt":       {module + "/protocols/amqp"},
		"notify":               {module + "/channels/email"},
		"protocols/amqp/wire":  {module + "/core"},
		"protocols/stomp/wire": {module + "/core"},
		"internal/broker":      {module + "/cmd/umsd"},
		"cmd/umsd":             {module + "/internal/testutil"},
	}
	got := violations(bad)
	if len(got) != len(bad) {
		t.Fatalf("want %d violations, got %d: %v", len(bad), len(got), got)
	}
	good := map[string][]string{
		"core":                 {"sync", module + "/core/route"},
		"protocols/amqp":       {module + "/core", module + "/protocols/amqp/wire"},
		"protocols/stomp/wire": {"bufio", "github.com/go-stomp/stomp/v3/frame"},
		"internal/broker":      {module + "/protocols/amqp", module + "/config"},
		"internal/testutil":    {module + "/internal/broker", module + "/core/store"},
	}
	if v := violations(good); len(v) != 0 {
		t.Fatalf("allowed arrows reported: %v", v)
	}
}
