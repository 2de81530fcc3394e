package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
)

// reportMain runs the report mode: JSON lines written with -json-out (from
// any number of runs of any modes) become Markdown tables, one per
// protocol, with a row per scenario and broker: the median of the runs
// and their spread (min–max), and the ratio of UMS's medians to the other
// broker's; then issue 16's targets with where UMS stands.
func reportMain(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("umsbench report", flag.ContinueOnError)
	baseline := fs.String("baseline", "ums", "broker name (-broker-name) the others are compared with")
	targets := fs.Bool("targets", true, "add the table of issue 16's targets (scenario names of scripts/bench.sh)")
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: umsbench report [flags] FILE... (JSON lines from -json-out; - for stdin)\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return err
		}
		return errUsage
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errUsage
	}
	var all []benchResult
	for _, name := range fs.Args() {
		rs, err := readResults(name)
		if err != nil {
			return err
		}
		all = append(all, rs...)
	}
	rep := newReport(all, *baseline)
	rep.write(stdout)
	if *targets {
		rep.writeTargets(stdout)
	}
	return nil
}

// benchResult is the part of a JSON line the report reads.
type benchResult struct {
	Mode           string   `json:"mode"`
	Scenario       string   `json:"scenario"`
	Broker         string   `json:"broker"`
	ConsumedRate   *float64 `json:"consumed_per_s"`
	ReceivedRate   *float64 `json:"received_per_s"`
	DeliveredRate  *float64 `json:"delivered_per_s"`
	Lost           *int64   `json:"lost"`
	Duplicated     int64    `json:"duplicated"`
	Load1          *float64 `json:"load1"`
	Connections    float64  `json:"connections"`
	ConnectRate    float64  `json:"connects_per_s"`
	BytesPerConn   *float64 `json:"broker_bytes_per_conn"`
	IdleCPUPercent *float64 `json:"idle_cpu_percent"`
	Latency        *struct {
		P50  float64 `json:"p50_ms"`
		P99  float64 `json:"p99_ms"`
		P999 float64 `json:"p99.9_ms"`
	} `json:"latency"`
	Usage *struct {
		CPUPerMsgUS *float64 `json:"cpu_us_per_msg"`
		RSSMiB      float64  `json:"rss_mib"`
	} `json:"broker_usage"`
}

func readResults(name string) ([]benchResult, error) {
	var r io.Reader = os.Stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	var out []benchResult
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		t := strings.TrimSpace(sc.Text())
		if t == "" || t[0] != '{' {
			continue
		}
		var b benchResult
		if err := json.Unmarshal([]byte(t), &b); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, line, err)
		}
		if b.Scenario == "" {
			b.Scenario = b.Mode
		}
		if b.Broker == "" {
			b.Broker = "?"
		}
		out = append(out, b)
	}
	return out, sc.Err()
}

// rate is the delivered messages per second of a throughput mode.
func (b benchResult) rate() *float64 {
	switch {
	case b.ConsumedRate != nil:
		return b.ConsumedRate
	case b.ReceivedRate != nil:
		return b.ReceivedRate
	}
	return b.DeliveredRate
}

func (b benchResult) idle() bool { return strings.HasSuffix(b.Mode, "-idle") }

// spread is the runs' values of one figure.
type spread []float64

func (s spread) median() float64 {
	if len(s) == 0 {
		return math.NaN()
	}
	v := slices.Clone(s)
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// format writes the median and, for more than one run, (min–max).
func (s spread) format(f func(float64) string) string {
	if len(s) == 0 {
		return "–"
	}
	out := f(s.median())
	if len(s) > 1 {
		out += " (" + f(slices.Min(s)) + "–" + f(slices.Max(s)) + ")"
	}
	return out
}

// num formats a figure with about three significant digits.
func num(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 100000:
		return thousands(int64(math.Round(v/1000) * 1000))
	case a >= 1000:
		return thousands(int64(math.Round(v/10) * 10))
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.3f", v)
}

// thousands writes n with thousands separators.
func thousands(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// group is the runs of one scenario against one broker.
type group struct {
	scenario, broker, mode string
	runs                   []benchResult
}

// figure collects one figure over the runs (runs without it are left out).
func (g *group) figure(f func(benchResult) *float64) spread {
	var s spread
	for _, r := range g.runs {
		if v := f(r); v != nil {
			s = append(s, *v)
		}
	}
	return s
}

func ptr(v float64) *float64 { return &v }

var (
	figRate = func(b benchResult) *float64 { return b.rate() }
	figP50  = func(b benchResult) *float64 {
		if b.Latency == nil {
			return nil
		}
		return ptr(b.Latency.P50)
	}
	figP99 = func(b benchResult) *float64 {
		if b.Latency == nil {
			return nil
		}
		return ptr(b.Latency.P99)
	}
	figP999 = func(b benchResult) *float64 {
		if b.Latency == nil {
			return nil
		}
		return ptr(b.Latency.P999)
	}
	figCPU = func(b benchResult) *float64 {
		if b.Usage == nil {
			return nil
		}
		return b.Usage.CPUPerMsgUS
	}
	figRSS = func(b benchResult) *float64 {
		if b.Usage == nil {
			return nil
		}
		return ptr(b.Usage.RSSMiB)
	}
	figLoad        = func(b benchResult) *float64 { return b.Load1 }
	figConns       = func(b benchResult) *float64 { return ptr(b.Connections) }
	figConnectRate = func(b benchResult) *float64 { return ptr(b.ConnectRate) }
	figPerConn     = func(b benchResult) *float64 { return b.BytesPerConn }
	figIdleCPU     = func(b benchResult) *float64 { return b.IdleCPUPercent }
)

// lossText sums lost and duplicated messages over the runs.
func (g *group) lossText() string {
	var lost, dup int64
	known := false
	for _, r := range g.runs {
		if r.Lost != nil {
			lost += *r.Lost
			known = true
		}
		dup += r.Duplicated
	}
	if !known {
		return "n/a / " + thousands(dup)
	}
	return thousands(lost) + " / " + thousands(dup)
}

type report struct {
	baseline string
	groups   []*group // in the order the scenarios first appear
	byKey    map[[2]string]*group
}

func newReport(all []benchResult, baseline string) *report {
	r := &report{baseline: baseline, byKey: map[[2]string]*group{}}
	for _, b := range all {
		k := [2]string{b.Scenario, b.Broker}
		g := r.byKey[k]
		if g == nil {
			g = &group{scenario: b.Scenario, broker: b.Broker, mode: b.Mode}
			r.byKey[k] = g
			r.groups = append(r.groups, g)
		}
		g.runs = append(g.runs, b)
	}
	// Rows of a scenario together, the baseline first, then by name.
	order := map[string]int{}
	for _, g := range r.groups {
		if _, ok := order[g.scenario]; !ok {
			order[g.scenario] = len(order)
		}
	}
	slices.SortStableFunc(r.groups, func(a, b *group) int {
		if d := order[a.scenario] - order[b.scenario]; d != 0 {
			return d
		}
		if (a.broker == baseline) != (b.broker == baseline) {
			if a.broker == baseline {
				return -1
			}
			return 1
		}
		return strings.Compare(a.broker, b.broker)
	})
	return r
}

// ratio is baseline÷other of the medians of one figure, "–" when either
// is missing or zero.
func (r *report) ratio(g *group, f func(benchResult) *float64) string {
	base := r.byKey[[2]string{g.scenario, r.baseline}]
	if base == nil {
		return "–"
	}
	a, b := base.figure(f).median(), g.figure(f).median()
	if math.IsNaN(a) || math.IsNaN(b) || a == 0 || b == 0 {
		return "–"
	}
	return num(a/b) + "×"
}

var sections = []struct{ title, modes string }{
	{"AMQP 0-9-1", "amqp"},
	{"MQTT", "mqtt"},
	{"STOMP", "stomp"},
	{"Notifications (UMS only: webhook deliveries through the notification pipeline)", "notify"},
	{"Idle connections", "mqtt-idle stomp-idle"},
}

func (r *report) write(w io.Writer) {
	for _, sec := range sections {
		var gs []*group
		for _, g := range r.groups {
			if slices.Contains(strings.Fields(sec.modes), g.mode) {
				gs = append(gs, g)
			}
		}
		if len(gs) == 0 {
			continue
		}
		fmt.Fprintf(w, "### %s\n\n", sec.title)
		if gs[0].idle() {
			r.writeIdle(w, gs)
		} else {
			r.writeThroughput(w, gs)
		}
		fmt.Fprintln(w)
	}
}

func (g *group) idle() bool { return strings.HasSuffix(g.mode, "-idle") }

func (r *report) writeThroughput(w io.Writer, gs []*group) {
	fmt.Fprintf(w, "| scenario | broker | runs | delivered msg/s | p50 ms | p99 ms | p99.9 ms | broker CPU µs/msg | broker RSS MiB | lost / duplicated | %s÷broker: msg/s · p99 · CPU/msg | load (1 min) |\n", r.baseline)
	fmt.Fprintln(w, "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |")
	for _, g := range gs {
		ratios := ""
		if g.broker != r.baseline {
			ratios = r.ratio(g, figRate) + " · " + r.ratio(g, figP99) + " · " + r.ratio(g, figCPU)
		}
		fmt.Fprintf(w, "| %s | %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			g.scenario, g.broker, len(g.runs), g.figure(figRate).format(num), g.figure(figP50).format(num),
			g.figure(figP99).format(num), g.figure(figP999).format(num), g.figure(figCPU).format(num),
			g.figure(figRSS).format(num), g.lossText(), ratios, g.figure(figLoad).format(num))
	}
}

func (r *report) writeIdle(w io.Writer, gs []*group) {
	fmt.Fprintf(w, "| scenario | broker | runs | connections | connects/s | broker RSS per connection, bytes | broker RSS held, MiB | broker idle CPU %% | %s÷broker: connects/s · bytes/conn | load (1 min) |\n", r.baseline)
	fmt.Fprintln(w, "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |")
	for _, g := range gs {
		ratios := ""
		if g.broker != r.baseline {
			ratios = r.ratio(g, figConnectRate) + " · " + r.ratio(g, figPerConn)
		}
		held := g.figure(func(b benchResult) *float64 {
			if b.Usage == nil {
				return nil
			}
			return ptr(b.Usage.RSSMiB)
		})
		fmt.Fprintf(w, "| %s | %s | %d | %s | %s | %s | %s | %s | %s | %s |\n",
			g.scenario, g.broker, len(g.runs), g.figure(figConns).format(num), g.figure(figConnectRate).format(num),
			g.figure(figPerConn).format(num), held.format(num), g.figure(figIdleCPU).format(num), ratios,
			g.figure(figLoad).format(num))
	}
}

// median of one figure of one scenario and broker (NaN when not run).
func (r *report) median(scenario, broker string, f func(benchResult) *float64) float64 {
	g := r.byKey[[2]string{scenario, broker}]
	if g == nil {
		return math.NaN()
	}
	return g.figure(f).median()
}

// writeTargets writes issue 16's targets with the medians of the
// scenarios of scripts/bench.sh that check them.
func (r *report) writeTargets(w io.Writer) {
	ums := r.baseline
	type row struct{ target, measured, verdict string }
	var rows []row
	check := func(target string, v float64, unit string, ok bool, extra string) {
		if math.IsNaN(v) {
			rows = append(rows, row{target, "not run", "–"})
			return
		}
		verdict := "missed"
		if ok {
			verdict = "met"
		}
		rows = append(rows, row{target, num(v) + unit + extra, verdict})
	}
	ref := func(scenario, broker string, f func(benchResult) *float64, unit string) string {
		v := r.median(scenario, broker, f)
		if math.IsNaN(v) {
			return ""
		}
		return fmt.Sprintf("; %s %s%s", broker, num(v), unit)
	}

	v := r.median("amqp-rate5k-transient", ums, figP99)
	check("AMQP p99 at 5,000 msg/s, transient 1 KiB ≤ 0.5 ms", v, " ms", v <= 0.5, ref("amqp-rate5k-transient", "rabbitmq", figP99, " ms"))
	v = r.median("amqp-rate5k-persistent", ums, figP99)
	check("AMQP p99 at 5,000 msg/s, persistent 1 KiB with confirms ≤ 2 ms", v, " ms", v <= 2, ref("amqp-rate5k-persistent", "rabbitmq", figP99, " ms"))
	for _, p := range []string{"mqtt", "stomp"} {
		s := p + "-idle"
		v = r.median(s, ums, figPerConn)
		extra := ref(s, "mosquitto", figPerConn, " B")
		if p == "stomp" {
			extra = ref(s, "rabbitmq", figPerConn, " B")
		}
		if !math.IsNaN(v) {
			extra = fmt.Sprintf(" (%s connections; 1 million would take %s GiB)%s",
				num(r.median(s, ums, figConns)), num(v*1e6/(1<<30)), extra)
		}
		check(fmt.Sprintf("%s: broker memory per idle connection ≤ 4 KiB", strings.ToUpper(p)), v, " B", v <= 4096, extra)
	}
	v = r.median("mqtt-idle", ums, figConnectRate)
	mosq := r.median("mqtt-idle", "mosquitto", figConnectRate)
	check("MQTT connect rate ≥ 10,000/s and above Mosquitto's", v, "/s", v >= 10000 && !(mosq > v), ref("mqtt-idle", "mosquitto", figConnectRate, "/s"))
	v = r.median("mqtt-qos1-rate5k", ums, figCPU)
	mosq = r.median("mqtt-qos1-rate5k", "mosquitto", figCPU)
	check("MQTT QoS 1 at 5,000 msg/s: broker CPU per message ≤ half of Mosquitto's", v, " µs", v <= mosq/2, ref("mqtt-qos1-rate5k", "mosquitto", figCPU, " µs"))
	v = r.median("amqp-rate5k-transient", ums, figCPU)
	check("AMQP transient 1 KiB at 5,000 msg/s: broker CPU per message ≤ 25 µs", v, " µs", v <= 25, ref("amqp-rate5k-transient", "rabbitmq", figCPU, " µs"))
	for _, s := range []string{"mqtt-idle", "stomp-idle"} {
		v = r.median(s, ums, figIdleCPU)
		if !math.IsNaN(v) {
			rows = append(rows, row{"idle server's CPU with " + num(r.median(s, ums, figConns)) + " idle " + strings.ToUpper(strings.TrimSuffix(s, "-idle")) + " connections (reported, no target)", num(v) + " % of one core", "–"})
		}
	}
	// Throughput: every AMQP scenario at full speed ≥ 3× RabbitMQ;
	// MQTT QoS 0 and 1 ≥ 1.5× Mosquitto with zero loss; STOMP ≥ 3× RabbitMQ.
	through := func(target, mode, other string, factor float64, only func(string) bool) {
		var worst float64 = math.Inf(1)
		var worstName string
		lossFree := true
		for _, g := range r.groups {
			if g.mode != mode || g.broker != ums || !only(g.scenario) {
				continue
			}
			o := r.median(g.scenario, other, figRate)
			if math.IsNaN(o) || o == 0 {
				continue
			}
			if q := g.figure(figRate).median() / o; q < worst {
				worst, worstName = q, g.scenario
			}
			for _, run := range g.runs {
				if (run.Lost != nil && *run.Lost > 0) || run.Duplicated > 0 {
					lossFree = false
				}
			}
		}
		if math.IsInf(worst, 1) {
			rows = append(rows, row{target, "not run", "–"})
			return
		}
		extra := " (lowest: " + worstName + ")"
		if !lossFree {
			extra += "; some runs lost or duplicated messages"
		}
		check(target, worst, "×", worst >= factor && lossFree, extra)
	}
	unpaced := func(s string) bool { return !strings.Contains(s, "rate") }
	through("AMQP throughput ≥ 3× RabbitMQ in every scenario at full speed, no loss", "amqp", "rabbitmq", 3, unpaced)
	through("MQTT QoS 0 and 1 throughput ≥ 1.5× Mosquitto, no loss", "mqtt", "mosquitto", 1.5, func(s string) bool {
		return unpaced(s) && (strings.Contains(s, "qos0") || strings.Contains(s, "qos1"))
	})
	through("STOMP throughput ≥ 3× RabbitMQ's STOMP plugin, no loss", "stomp", "rabbitmq", 3, unpaced)
	v = r.median("notify-http-batch-redis", ums, figRate)
	check("notifications ≥ 20,000/s end to end with the guards in Redis (issue 12)", v, "/s", v >= 20000,
		ref("notify-http-batch", ums, figRate, "/s on the embedded guards"))
	rows = append(rows,
		row{"memory given back: RSS within 2× of idle 60 s after a burst above 200 MB drains", "not measured by scripts/bench.sh", "–"},
		row{"≤ 100 B of RAM per queued persistent message that is paged out", "not measured by scripts/bench.sh", "–"})

	fmt.Fprintf(w, "## Targets\n\n| target (issue 16 unless said) | %s measured (median) | status |\n| --- | --- | --- |\n", ums)
	for _, x := range rows {
		fmt.Fprintf(w, "| %s | %s | %s |\n", x.target, x.measured, x.verdict)
	}
	fmt.Fprintln(w)
}
