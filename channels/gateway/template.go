package gateway

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
	"text/template"
	"time"
)

// Data is what the URL, Body and Headers templates are rendered with.
type Data struct {
	// Gateway is the gateway's Name.
	Gateway string
	// The message's fields (see notify.Message).
	ID, Channel, To, Subject, Text, HTML, Class, Tenant string
	Tags                                                []string
	Media                                               []string
	Data                                                map[string]any
	Attempt                                             int

	// Values of this request, the same in every template of it.
	Now       time.Time // the send time, UTC
	Timestamp string    // the send time in Unix milliseconds
	Unix      string    // the send time in Unix seconds
	Nonce     string    // 32 random hex digits

	// Method and Path (the rendered URL's path and query) are set for
	// Headers, to sign requests with; so is Body, the rendered body.
	Method, Path, Body string
}

// funcs are the template functions, besides text/template's own.
var funcs = template.FuncMap{
	// json is the JSON encoding of v: {{json .Text}} is a quoted,
	// escaped JSON string.
	"json": func(v any) (string, error) {
		b, err := json.Marshal(v)
		return string(b), err
	},
	// jsonEscape is s escaped for the inside of a JSON string literal,
	// without the quotes.
	"jsonEscape": func(s string) string {
		b, _ := json.Marshal(s)
		return string(b[1 : len(b)-1])
	},
	"hmacSHA256": func(key, msg string) string {
		m := hmac.New(sha256.New, []byte(key))
		m.Write([]byte(msg))
		return string(m.Sum(nil))
	},
	"sha256": func(s string) string {
		sum := sha256.Sum256([]byte(s))
		return string(sum[:])
	},
	"base64":     func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) },
	"hex":        func(s string) string { return hex.EncodeToString([]byte(s)) },
	"hasPrefix":  strings.HasPrefix,
	"trimPrefix": strings.TrimPrefix,
	"replace":    func(s, old, new string) string { return strings.ReplaceAll(s, old, new) },
	"lower":      strings.ToLower,
	"upper":      strings.ToUpper,
	// localNumber turns an E.164 number of the country whose code is
	// prefix (e.g. "+82") into its national form with the trunk prefix
	// (e.g. "0"): +821012345678 becomes 01012345678. Other numbers are
	// returned as they are.
	"localNumber": func(number, prefix, trunk string) string {
		if rest, ok := strings.CutPrefix(number, prefix); ok {
			return trunk + rest
		}
		return number
	},
}

// parse parses one of the gateway's templates. A missing map key is an
// error, not "<no value>": use index for optional keys of .Data.
func parse(name, text string) (*template.Template, error) {
	return template.New(name).Funcs(funcs).Option("missingkey=error").Parse(text)
}

// render executes t with d.
func render(t *template.Template, d *Data) (string, error) {
	var b strings.Builder
	if err := t.Execute(&b, d); err != nil {
		return "", err
	}
	return b.String(), nil
}

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// expandEnv replaces each ${NAME} in s with the environment variable
// NAME. Unset variables are an error. Only configuration text is
// expanded, never rendered message content.
func expandEnv(s string, lookup func(string) (string, bool)) (string, error) {
	var missing []string
	out := envRef.ReplaceAllStringFunc(s, func(ref string) string {
		name := ref[2 : len(ref)-1]
		v, ok := lookup(name)
		if !ok {
			missing = append(missing, name)
		}
		return v
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("environment variable %s is not set", strings.Join(missing, ", "))
	}
	return out, nil
}

// lookupEnv is the environment of expandEnv.
var lookupEnv = os.LookupEnv
