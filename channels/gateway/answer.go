package gateway

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
)

// decodeAnswer decodes a JSON answer, keeping numbers as written.
func decodeAnswer(body []byte) (any, bool) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return nil, false
	}
	return doc, true
}

// lookup returns the value at path in doc as text. A path is keys
// separated by dots ("result.code"); a numeric key indexes an array
// ("messages.0.messageId"). Strings are returned as they are, numbers as
// written, booleans as true or false, objects and arrays as compact JSON.
// A missing value or null is not found.
func lookup(doc any, path string) (string, bool) {
	v := doc
	for key := range strings.SplitSeq(path, ".") {
		switch c := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = c[key]; !ok {
				return "", false
			}
		case []any:
			i, err := strconv.Atoi(key)
			if err != nil || i < 0 || i >= len(c) {
				return "", false
			}
			v = c[i]
		default:
			return "", false
		}
	}
	switch c := v.(type) {
	case nil:
		return "", false
	case string:
		return c, true
	case json.Number:
		return c.String(), true
	case bool:
		return strconv.FormatBool(c), true
	default:
		b, err := json.Marshal(c)
		if err != nil {
			return "", false
		}
		return string(b), true
	}
}

// validPath reports whether path is a usable answer path.
func validPath(path string) bool {
	if path == "" {
		return false
	}
	for key := range strings.SplitSeq(path, ".") {
		if key == "" {
			return false
		}
	}
	return true
}
