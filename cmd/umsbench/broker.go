package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// commonOptions are the flags every mode has: what to tell about the
// broker's process and where else the JSON line goes.
type commonOptions struct {
	brokerPID  int
	brokerName string
	scenario   string
	jsonOut    string

	before procSample // the broker's process when the run started
}

func (c *commonOptions) register(fs *flag.FlagSet) {
	fs.IntVar(&c.brokerPID, "broker-pid", 0, "process id of the broker on this machine: report its CPU time per delivered message and its RSS (read from /proc)")
	fs.StringVar(&c.brokerName, "broker-name", "", "name of the broker, copied into the JSON line (for umsbench report)")
	fs.StringVar(&c.scenario, "scenario", "", "name of the scenario, copied into the JSON line (for umsbench report)")
	fs.StringVar(&c.jsonOut, "json-out", "", "also append the JSON line to this file")
}

// start samples the broker's process before the run.
func (c *commonOptions) start() error {
	if c.brokerPID <= 0 {
		return nil
	}
	s, err := readProc(c.brokerPID)
	if err != nil {
		return fmt.Errorf("-broker-pid: %w", err)
	}
	c.before = s
	return nil
}

// procSample is a process's CPU time (user and system) and resident set.
type procSample struct {
	cpu time.Duration
	rss int64 // bytes
}

// clockTicks is USER_HZ, the unit of the times in /proc/<pid>/stat: 100
// on every Linux architecture Go runs on.
const clockTicks = 100

// readProc reads a process's CPU time from /proc/<pid>/stat and its RSS
// from /proc/<pid>/status.
func readProc(pid int) (procSample, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procSample{}, err
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return procSample{}, err
	}
	return parseProc(stat, status)
}

// parseProc reads the contents of /proc/<pid>/stat and /proc/<pid>/status.
// In stat the command name (field 2) is in parentheses and may hold
// spaces; utime and stime are fields 14 and 15.
func parseProc(stat, status []byte) (procSample, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return procSample{}, fmt.Errorf("malformed /proc stat %q", stat)
	}
	f := strings.Fields(string(stat[i+1:])) // f[0] is field 3
	if len(f) < 13 {
		return procSample{}, fmt.Errorf("malformed /proc stat %q", stat)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return procSample{}, fmt.Errorf("malformed /proc stat %q", stat)
	}
	s := procSample{cpu: time.Duration(utime+stime) * time.Second / clockTicks}
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return procSample{}, fmt.Errorf("malformed VmRSS %q", line)
			}
			s.rss = kb << 10
		}
	}
	return s, nil
}

// brokerJSON is what the JSON line says about the broker's process.
type brokerJSON struct {
	PID         int      `json:"pid"`
	CPUSeconds  float64  `json:"cpu_s"`
	CPUPerMsgUS *float64 `json:"cpu_us_per_msg,omitempty"`
	RSSMiB      float64  `json:"rss_mib"`
	RSSStartMiB float64  `json:"rss_start_mib"`
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// emit prints the broker's usage since start (when -broker-pid was given)
// as a summary line, then v as the JSON line with the scenario, the
// broker, its usage (CPU per message over delivered messages) and the
// machine's load average added, and appends that line to -json-out.
func (c *commonOptions) emit(w io.Writer, v any, delivered int64) error {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only our own plain structs are marshalled
	}
	var extra bytes.Buffer
	add := func(key string, val any) {
		k, _ := json.Marshal(key)
		x, err := json.Marshal(val)
		if err != nil {
			panic(err)
		}
		fmt.Fprintf(&extra, ",%s:%s", k, x)
	}
	if c.scenario != "" {
		add("scenario", c.scenario)
	}
	if c.brokerName != "" {
		add("broker", c.brokerName)
	}
	if c.brokerPID > 0 {
		after, err := readProc(c.brokerPID)
		if err != nil {
			return fmt.Errorf("-broker-pid: %w", err)
		}
		cpu := after.cpu - c.before.cpu
		u := brokerJSON{PID: c.brokerPID, CPUSeconds: cpu.Seconds(), RSSMiB: mib(after.rss), RSSStartMiB: mib(c.before.rss)}
		line := fmt.Sprintf("broker %d: CPU %.2fs", c.brokerPID, cpu.Seconds())
		if delivered > 0 {
			us := float64(cpu.Microseconds()) / float64(delivered)
			u.CPUPerMsgUS = &us
			line += fmt.Sprintf(" (%.1f µs per delivered message)", us)
		}
		fmt.Fprintf(w, "%s, RSS %.1f MiB (%.1f MiB at the start)\n", line, u.RSSMiB, u.RSSStartMiB)
		add("broker_usage", u)
	}
	if la, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(la)); len(f) > 0 {
			if l, err := strconv.ParseFloat(f[0], 64); err == nil {
				add("load1", l)
			}
		}
	}
	if extra.Len() > 0 && len(b) > 0 && b[len(b)-1] == '}' {
		if len(b) == 2 { // {}: no leading comma
			extra.Next(1)
		}
		b = append(append(b[:len(b)-1], extra.Bytes()...), '}')
	}
	b = append(b, '\n')
	if _, err := w.Write(b); err != nil {
		return err
	}
	if c.jsonOut != "" {
		f, err := os.OpenFile(c.jsonOut, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		if _, err := f.Write(b); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}
	return nil
}
