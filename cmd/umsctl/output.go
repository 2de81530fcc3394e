package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
)

// keyValues reads key=value arguments; a key given twice or an argument
// without "=" is a usage error.
func keyValues(args []string) (map[string]string, error) {
	kv := map[string]string{}
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if !ok || k == "" {
			return nil, usagef("expected key=value, got %q", a)
		}
		if _, dup := kv[k]; dup {
			return nil, usagef("%s= given twice", k)
		}
		kv[k] = v
	}
	return kv, nil
}

// only checks that kv holds only the keys allowed and those required.
func only(kv map[string]string, required []string, optional ...string) error {
	for _, k := range required {
		if _, ok := kv[k]; !ok {
			return usagef("%s= is required", k)
		}
	}
	for k := range kv {
		if !contains(required, k) && !contains(optional, k) {
			return usagef("unknown argument %s= (known: %s)", k, strings.Join(append(required, optional...), "= "))
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// boolArg reads a boolean argument (true/false, 1/0, t/f).
func boolArg(kv map[string]string, key string, def bool) (bool, error) {
	v, ok := kv[key]
	if !ok {
		return def, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, usagef("%s= must be true or false, not %q", key, v)
	}
	return b, nil
}

// intArg reads a non-negative integer argument.
func intArg(kv map[string]string, key string, def int) (int, error) {
	v, ok := kv[key]
	if !ok {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, usagef("%s= must be a whole number, not %q", key, v)
	}
	return n, nil
}

// objectArg reads a JSON object argument (arguments=, properties=).
func objectArg(kv map[string]string, key string) (map[string]any, error) {
	v, ok := kv[key]
	if !ok || v == "" {
		return map[string]any{}, nil
	}
	var m map[string]any
	dec := json.NewDecoder(strings.NewReader(v))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil || m == nil {
		return nil, usagef("%s= must be a JSON object, such as '{\"x-max-length\": 10}'", key)
	}
	return m, nil
}

// readInput reads a file, or stdin for "-".
func (e *env) readInput(name string) ([]byte, error) {
	if name == "-" {
		return io.ReadAll(e.stdin)
	}
	return os.ReadFile(name)
}

// writeOutput writes data to a file, or stdout for "-".
func (e *env) writeOutput(name string, data []byte) error {
	if name == "-" {
		_, err := e.stdout.Write(data)
		return err
	}
	return os.WriteFile(name, data, 0o600)
}

// printJSON writes v indented.
func (e *env) printJSON(v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return err
	}
	_, err := e.stdout.Write(buf.Bytes())
	return err
}

// printTable writes rows under the column names, aligned.
func (e *env) printTable(columns []string, rows []map[string]any) error {
	tw := tabwriter.NewWriter(e.stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(columns, "\t"))
	for _, r := range rows {
		cells := make([]string, len(columns))
		for i, c := range columns {
			cells[i] = cell(r[c])
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

// cell shows one value in a table: strings as they are (an empty one as
// ""), lists comma-separated, numbers without exponent, objects as JSON.
func cell(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		if x == "" {
			return `""`
		}
		return strings.NewReplacer("\t", `\t`, "\n", `\n`).Replace(x)
	case json.Number:
		return x.String()
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	case []any:
		parts := make([]string, len(x))
		for i, p := range x {
			parts[i] = cell(p)
		}
		return strings.Join(parts, ",")
	}
	b, _ := json.Marshal(v)
	return string(b)
}
