package main

import (
	"encoding/json"
	"strconv"
	"strings"
)

// Arguments of the object and message commands: key=value, as
// rabbitmqadmin takes them.

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
