// Command amqpgen generates spec_gen.go of package wire from the AMQP 0-9-1
// specification XML.
//
// It reads amqp0-9-1.stripped.extended.xml, the RabbitMQ-extended edition of
// the specification shipped with the github.com/rabbitmq/amqp091-go module
// (confirm.select, exchange.bind/unbind, basic.nack, connection.blocked and
// update-secret on top of the published 0-9-1 spec), and writes:
//
//   - the frame type, frame limit and reply code constants;
//   - class and method id constants;
//   - one struct per method with its Decode and Append codecs;
//   - the lookup tables used by NewMethod and MethodDecoder.
//
// Usage, from the package directory (this is what go generate runs):
//
//	go run ./internal/amqpgen [-spec file.xml] [-out spec_gen.go]
//
// Without -spec the XML is looked up in the module cache: first the module
// directory reported by "go list -m", then $GOMODCACHE, downloading the module
// with "go mod download" as a last resort. The output is deterministic: classes
// and methods are sorted by id, so regenerating yields the same bytes.
package main

import (
	"bytes"
	"encoding/xml"
	"errors"
	"flag"
	"fmt"
	"go/format"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"unicode"
)

const (
	specModule  = "github.com/rabbitmq/amqp091-go"
	specVersion = "v1.16.0"
	specFile    = "spec/amqp0-9-1.stripped.extended.xml"
)

func main() {
	specPath := flag.String("spec", "", "specification XML (default: found in the "+specModule+" module)")
	out := flag.String("out", "spec_gen.go", "output file")
	flag.Parse()

	if err := run(*specPath, *out); err != nil {
		fmt.Fprintln(os.Stderr, "amqpgen:", err)
		os.Exit(1)
	}
}

func run(specPath, out string) error {
	if specPath == "" {
		p, err := findSpec()
		if err != nil {
			return err
		}
		specPath = p
	}
	raw, err := os.ReadFile(specPath)
	if err != nil {
		return err
	}
	var s xmlSpec
	if err := xml.Unmarshal(raw, &s); err != nil {
		return fmt.Errorf("parse %s: %w", specPath, err)
	}
	m, err := buildModel(&s)
	if err != nil {
		return err
	}
	src := render(m)
	formatted, err := format.Source(src)
	if err != nil {
		return fmt.Errorf("format generated code: %w\n%s", err, src)
	}
	return os.WriteFile(out, formatted, 0o644)
}

// findSpec locates the specification XML inside the amqp091-go module.
func findSpec() (string, error) {
	candidate := func(dir string) (string, bool) {
		if dir == "" {
			return "", false
		}
		p := filepath.Join(dir, filepath.FromSlash(specFile))
		if _, err := os.Stat(p); err != nil {
			return "", false
		}
		return p, true
	}
	if p, ok := candidate(goOutput("list", "-m", "-f", "{{.Dir}}", specModule)); ok {
		return p, nil
	}
	version := goOutput("list", "-m", "-f", "{{.Version}}", specModule)
	if version == "" {
		version = specVersion
	}
	cacheDir := func() string {
		cache := goOutput("env", "GOMODCACHE")
		if cache == "" {
			return ""
		}
		return filepath.Join(cache, filepath.FromSlash(escapeModulePath(specModule))+"@"+version)
	}
	if p, ok := candidate(cacheDir()); ok {
		return p, nil
	}
	cmd := exec.Command("go", "mod", "download", specModule+"@"+version)
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("download %s@%s: %w", specModule, version, err)
	}
	if p, ok := candidate(goOutput("list", "-m", "-f", "{{.Dir}}", specModule)); ok {
		return p, nil
	}
	if p, ok := candidate(cacheDir()); ok {
		return p, nil
	}
	return "", errors.New("cannot find " + specFile + " in module " + specModule + "@" + version)
}

// goOutput runs the go command and returns its trimmed standard output, or
// "" if it fails.
func goOutput(args ...string) string {
	out, err := exec.Command("go", args...).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// escapeModulePath applies the module cache's case encoding: each upper-case
// letter becomes '!' followed by its lower-case form.
func escapeModulePath(p string) string {
	var b strings.Builder
	for _, r := range p {
		if unicode.IsUpper(r) {
			b.WriteByte('!')
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// The XML schema, reduced to what the generator needs.
type (
	xmlSpec struct {
		Major     int           `xml:"major,attr"`
		Minor     int           `xml:"minor,attr"`
		Revision  int           `xml:"revision,attr"`
		Constants []xmlConstant `xml:"constant"`
		Domains   []xmlDomain   `xml:"domain"`
		Classes   []xmlClass    `xml:"class"`
	}
	xmlConstant struct {
		Name  string `xml:"name,attr"`
		Value int    `xml:"value,attr"`
		Class string `xml:"class,attr"`
	}
	xmlDomain struct {
		Name string `xml:"name,attr"`
		Type string `xml:"type,attr"`
	}
	xmlClass struct {
		Name    string      `xml:"name,attr"`
		Index   int         `xml:"index,attr"`
		Fields  []xmlField  `xml:"field"`
		Methods []xmlMethod `xml:"method"`
	}
	xmlMethod struct {
		Name        string        `xml:"name,attr"`
		Index       int           `xml:"index,attr"`
		Synchronous int           `xml:"synchronous,attr"`
		Content     int           `xml:"content,attr"`
		Deprecated  int           `xml:"deprecated,attr"`
		Chassis     []xmlChassis  `xml:"chassis"`
		Responses   []xmlResponse `xml:"response"`
		Fields      []xmlField    `xml:"field"`
	}
	xmlChassis struct {
		Name string `xml:"name,attr"`
	}
	xmlResponse struct {
		Name string `xml:"name,attr"`
	}
	xmlField struct {
		Name     string `xml:"name,attr"`
		Domain   string `xml:"domain,attr"`
		Type     string `xml:"type,attr"`
		Reserved int    `xml:"reserved,attr"`
	}
)

// Field kinds, one per AMQP primitive type plus "bytes", a longstr that
// carries binary data and is decoded into []byte.
const (
	kindOctet     = "octet"
	kindShort     = "short"
	kindLong      = "long"
	kindLonglong  = "longlong"
	kindBit       = "bit"
	kindShortstr  = "shortstr"
	kindLongstr   = "longstr"
	kindBytes     = "bytes"
	kindTimestamp = "timestamp"
	kindTable     = "table"
)

var goTypes = map[string]string{
	kindOctet:     "uint8",
	kindShort:     "uint16",
	kindLong:      "uint32",
	kindLonglong:  "uint64",
	kindBit:       "bool",
	kindShortstr:  "string",
	kindLongstr:   "string",
	kindBytes:     "[]byte",
	kindTimestamp: "time.Time",
	kindTable:     "Table",
}

// binaryFields are the longstr fields that carry opaque SASL data rather than
// text; they are decoded into []byte.
var binaryFields = map[string]bool{
	"connection.start-ok.response":  true,
	"connection.secure.challenge":   true,
	"connection.secure-ok.response": true,
}

// fieldRenames maps XML field names whose plain Go name would clash with a
// method of the Method interface, or break naming consistency, to Go names.
var fieldRenames = map[string]string{
	"class-id":  "FailingClassID",
	"method-id": "FailingMethodID",
	"nowait":    "NoWait",
}

// frameTypes are the constants that name frame types; they are typed uint8.
var frameTypes = map[string]bool{
	"frame-method":    true,
	"frame-header":    true,
	"frame-body":      true,
	"frame-heartbeat": true,
}

type model struct {
	major, minor, revision int
	frameTypes             []constant
	limits                 []constant
	replyCodes             []constant
	classes                []*class
	basicProps             []field
	usesTime               bool
}

type constant struct {
	xmlName string
	goName  string
	value   int
	class   string // "", "soft-error" or "hard-error"
}

type class struct {
	name    string
	goName  string
	index   int
	methods []*method
}

type method struct {
	class      *class
	name       string // e.g. "publish"
	goName     string // e.g. "BasicPublish"
	index      int
	sync       bool
	content    bool
	deprecated bool
	responses  []string
	sender     string
	fields     []field
}

func (m *method) fullName() string  { return m.class.name + "." + m.name }
func (m *method) constName() string { return "Method" + m.goName }
func (m *method) setField() string  { return lowerFirst(m.goName) }

type field struct {
	xmlName  string
	goName   string
	kind     string
	domain   string
	reserved bool
}

func buildModel(s *xmlSpec) (*model, error) {
	m := &model{major: s.Major, minor: s.Minor, revision: s.Revision}
	for _, c := range s.Constants {
		k := constant{xmlName: c.Name, goName: goName(c.Name), value: c.Value, class: c.Class}
		switch {
		case frameTypes[c.Name]:
			m.frameTypes = append(m.frameTypes, k)
		case c.Class == "soft-error" || c.Class == "hard-error" || strings.HasPrefix(c.Name, "reply-"):
			m.replyCodes = append(m.replyCodes, k)
		case strings.HasPrefix(c.Name, "frame-"):
			m.limits = append(m.limits, k)
		default:
			return nil, fmt.Errorf("constant %s: unknown kind", c.Name)
		}
	}

	domains := map[string]string{}
	for _, d := range s.Domains {
		domains[d.Name] = d.Type
	}
	resolve := func(f xmlField) (string, error) {
		t := f.Type
		if f.Domain != "" {
			var ok bool
			if t, ok = domains[f.Domain]; !ok {
				return "", fmt.Errorf("field %s: unknown domain %q", f.Name, f.Domain)
			}
		}
		if _, ok := goTypes[t]; !ok || t == kindBytes {
			return "", fmt.Errorf("field %s: unsupported type %q", f.Name, t)
		}
		return t, nil
	}
	newField := func(owner string, f xmlField) (field, error) {
		kind, err := resolve(f)
		if err != nil {
			return field{}, fmt.Errorf("%s: %w", owner, err)
		}
		if binaryFields[owner+"."+f.Name] {
			if kind != kindLongstr {
				return field{}, fmt.Errorf("%s.%s: binary field is not a longstr", owner, f.Name)
			}
			kind = kindBytes
		}
		name := goName(f.Name)
		if r, ok := fieldRenames[f.Name]; ok {
			name = r
		}
		domain := f.Domain
		if domain == "" {
			domain = f.Type
		}
		return field{xmlName: f.Name, goName: name, kind: kind, domain: domain, reserved: f.Reserved == 1}, nil
	}

	for _, xc := range s.Classes {
		c := &class{name: xc.Name, goName: goName(xc.Name), index: xc.Index}
		if xc.Name == "basic" {
			for _, f := range xc.Fields {
				pf, err := newField("basic", f)
				if err != nil {
					return nil, err
				}
				m.basicProps = append(m.basicProps, pf)
			}
		}
		responses := map[string]bool{}
		for _, xm := range xc.Methods {
			for _, r := range xm.Responses {
				responses[r.Name] = true
			}
		}
		for _, xm := range xc.Methods {
			me := &method{
				class:      c,
				name:       xm.Name,
				goName:     c.goName + goName(xm.Name),
				index:      xm.Index,
				content:    xm.Content == 1,
				deprecated: xm.Deprecated == 1,
				sender:     sender(xm.Chassis),
			}
			if who, ok := senderFixes[c.name+"."+xm.Name]; ok {
				me.sender = who
			}
			// The XML marks both halves of a synchronous exchange as
			// synchronous; Sync reports only the request half.
			isResponse := responses[xm.Name] || strings.HasSuffix(xm.Name, "-ok")
			me.sync = xm.Synchronous == 1 && !isResponse
			for _, r := range xm.Responses {
				me.responses = append(me.responses, c.name+"."+r.Name)
			}
			for _, f := range xm.Fields {
				mf, err := newField(me.fullName(), f)
				if err != nil {
					return nil, err
				}
				if mf.kind == kindTimestamp {
					m.usesTime = true
				}
				me.fields = append(me.fields, mf)
			}
			c.methods = append(c.methods, me)
		}
		sort.Slice(c.methods, func(i, j int) bool { return c.methods[i].index < c.methods[j].index })
		for i := 1; i < len(c.methods); i++ {
			if c.methods[i].index == c.methods[i-1].index {
				return nil, fmt.Errorf("class %s: duplicate method index %d", c.name, c.methods[i].index)
			}
		}
		m.classes = append(m.classes, c)
	}
	sort.Slice(m.classes, func(i, j int) bool { return m.classes[i].index < m.classes[j].index })
	return m, nil
}

// senderFixes corrects the chassis of methods the XML gets backwards: its
// connection.update-secret names the client as the implementer, but the
// client sends it (amqp091-go's Connection.UpdateSecret, amqplib's
// updateSecret) and RabbitMQ answers with update-secret-ok.
var senderFixes = map[string]string{
	"connection.update-secret":    "the client",
	"connection.update-secret-ok": "the server",
}

// sender describes who sends a method. A chassis element names a peer that
// implements (receives) the method, so the sender is the other peer.
func sender(ch []xmlChassis) string {
	var client, server bool
	for _, c := range ch {
		switch c.Name {
		case "client":
			client = true
		case "server":
			server = true
		}
	}
	switch {
	case client && server:
		return "either peer"
	case server:
		return "the client"
	case client:
		return "the server"
	}
	return "either peer"
}

// goName turns an XML name such as "routing-key" or "class-id" into an
// exported Go identifier ("RoutingKey", "ClassID").
func goName(s string) string {
	var b strings.Builder
	for _, part := range strings.FieldsFunc(s, func(r rune) bool { return r == '-' || r == '_' || r == ' ' }) {
		if part == "id" {
			b.WriteString("ID")
			continue
		}
		b.WriteString(strings.ToUpper(part[:1]))
		b.WriteString(part[1:])
	}
	return b.String()
}

func lowerFirst(s string) string {
	return strings.ToLower(s[:1]) + s[1:]
}

// screamingName turns "not-found" into "NOT_FOUND", the form RabbitMQ uses at
// the start of reply texts.
func screamingName(s string) string {
	return strings.ToUpper(strings.ReplaceAll(s, "-", "_"))
}

type writer struct{ bytes.Buffer }

func (w *writer) p(format string, args ...any) {
	fmt.Fprintf(&w.Buffer, format, args...)
	w.WriteByte('\n')
}

func render(m *model) []byte {
	var w writer
	w.p("// Code generated by amqpgen. DO NOT EDIT.")
	w.p("")
	w.p("package wire")
	w.p("")
	if m.usesTime {
		w.p("import (")
		w.p("\t%q", "encoding/binary")
		w.p("\t%q", "time")
		w.p(")")
	} else {
		w.p("import %q", "encoding/binary")
	}
	w.p("")

	w.p("// Protocol version implemented by this package.")
	w.p("const (")
	w.p("\tVersionMajor = %d", m.major)
	w.p("\tVersionMinor = %d", m.minor)
	w.p("\tVersionRevision = %d", m.revision)
	w.p(")")
	w.p("")

	w.p("// Frame types (AMQP 0-9-1 section 4.2.3).")
	w.p("const (")
	for _, c := range m.frameTypes {
		w.p("\t// %s is the %s constant of the specification.", c.goName, c.xmlName)
		w.p("\t%s uint8 = %d", c.goName, c.value)
	}
	w.p(")")
	w.p("")

	w.p("// Frame limits and markers.")
	w.p("const (")
	for _, c := range m.limits {
		w.p("\t// %s is the %s constant of the specification.", c.goName, c.xmlName)
		w.p("\t%s = %d", c.goName, c.value)
	}
	w.p(")")
	w.p("")

	w.p("// Reply codes, sent in connection.close, channel.close and basic.return.")
	w.p("// Soft errors close the channel, hard errors close the connection.")
	w.p("const (")
	for _, c := range m.replyCodes {
		what := "the " + c.xmlName + " reply code"
		switch c.class {
		case "soft-error":
			what += ", a soft (channel) error"
		case "hard-error":
			what += ", a hard (connection) error"
		}
		w.p("\t// %s is %s.", c.goName, what)
		w.p("\t%s = %d", c.goName, c.value)
	}
	w.p(")")
	w.p("")

	w.p("// ReplyCodeName returns the upper-case name of a reply code, such as")
	w.p("// \"NOT_FOUND\" for 404, or \"\" for a code the specification does not define.")
	w.p("func ReplyCodeName(code uint16) string {")
	w.p("\tswitch code {")
	for _, c := range m.replyCodes {
		w.p("\tcase %s:", c.goName)
		w.p("\t\treturn %q", screamingName(c.xmlName))
	}
	w.p("\t}")
	w.p("\treturn \"\"")
	w.p("}")
	w.p("")

	w.p("// IsHardError reports whether the specification classes a reply code as a")
	w.p("// hard error, one that must close the whole connection.")
	w.p("func IsHardError(code uint16) bool {")
	w.p("\tswitch code {")
	var hard []string
	for _, c := range m.replyCodes {
		if c.class == "hard-error" {
			hard = append(hard, c.goName)
		}
	}
	w.p("\tcase %s:", strings.Join(hard, ", "))
	w.p("\t\treturn true")
	w.p("\t}")
	w.p("\treturn false")
	w.p("}")
	w.p("")

	w.p("// Class ids.")
	w.p("const (")
	for _, c := range m.classes {
		w.p("\t// Class%s is the id of the %s class.", c.goName, c.name)
		w.p("\tClass%s = %d", c.goName, c.index)
	}
	w.p(")")
	w.p("")

	w.p("// Method ids, unique within their class.")
	w.p("const (")
	for _, c := range m.classes {
		for _, me := range c.methods {
			w.p("\t// %s is the id of %s.", me.constName(), me.fullName())
			w.p("\t%s = %d", me.constName(), me.index)
		}
	}
	w.p(")")
	w.p("")

	w.p("// basicPropertyFields lists the basic class content properties in flag")
	w.p("// order, as the specification declares them.")
	w.p("var basicPropertyFields = [...]string{")
	for _, f := range m.basicProps {
		w.p("\t%q,", f.xmlName+" "+f.kind)
	}
	w.p("}")
	w.p("")

	for _, c := range m.classes {
		for _, me := range c.methods {
			renderMethod(&w, me)
		}
	}

	renderLookup(&w, m)
	return w.Bytes()
}

func renderMethod(w *writer, me *method) {
	full := me.fullName()
	w.p("// %s is the %s method (class %d, method %d), sent by %s.", me.goName, full, me.class.index, me.index, me.sender)
	switch {
	case me.sync && len(me.responses) > 0:
		w.p("// It is a synchronous request answered by %s.", strings.Join(me.responses, " or "))
	case me.sync:
		w.p("// It is a synchronous request.")
	}
	if me.content {
		w.p("// It carries content: a content header frame and body frames follow it.")
	}
	if me.deprecated {
		// Not a "Deprecated:" marker: servers must still accept the method.
		w.p("// The specification deprecates it, but peers may still send it.")
	}
	w.p("type %s struct {", me.goName)
	for _, f := range me.fields {
		note := f.xmlName
		if f.domain != f.xmlName {
			note += " (" + f.domain + ")"
		}
		if f.reserved {
			note += ", reserved"
		}
		if f.kind == kindBytes {
			note += ", binary"
		}
		w.p("\t%s %s // %s", f.goName, goTypes[f.kind], note)
	}
	w.p("}")
	w.p("")

	recv := "(*" + me.goName + ")"
	w.p("// ClassID returns Class%s.", me.class.goName)
	w.p("func %s ClassID() uint16 { return Class%s }", recv, me.class.goName)
	w.p("")
	w.p("// MethodID returns %s.", me.constName())
	w.p("func %s MethodID() uint16 { return %s }", recv, me.constName())
	w.p("")
	w.p("// Name returns %q.", full)
	w.p("func %s Name() string { return %q }", recv, full)
	w.p("")
	w.p("// HasContent reports whether content frames follow the method.")
	w.p("func %s HasContent() bool { return %t }", recv, me.content)
	w.p("")
	w.p("// Sync reports whether the method is a synchronous request.")
	w.p("func %s Sync() bool { return %t }", recv, me.sync)
	w.p("")

	// Decode.
	w.p("// Decode decodes the method arguments, which follow the class and method")
	w.p("// ids in a method frame payload.")
	w.p("func (m *%s) Decode(args []byte) error {", me.goName)
	w.p("\td := decoder{b: args}")
	bitsDeclared := false
	for i := 0; i < len(me.fields); {
		f := me.fields[i]
		if f.kind == kindBit {
			j := i
			for j < len(me.fields) && me.fields[j].kind == kindBit && j-i < 8 {
				j++
			}
			if bitsDeclared {
				w.p("\tbits = d.octet()")
			} else {
				w.p("\tbits := d.octet()")
				bitsDeclared = true
			}
			for k := i; k < j; k++ {
				w.p("\tm.%s = bits&(1<<%d) != 0", me.fields[k].goName, k-i)
			}
			i = j
			continue
		}
		switch f.kind {
		case kindOctet:
			w.p("\tm.%s = d.octet()", f.goName)
		case kindShort:
			w.p("\tm.%s = d.short()", f.goName)
		case kindLong:
			w.p("\tm.%s = d.long()", f.goName)
		case kindLonglong:
			w.p("\tm.%s = d.longlong()", f.goName)
		case kindShortstr:
			w.p("\tm.%s = d.shortstr(m.%s)", f.goName, f.goName)
		case kindLongstr:
			w.p("\tm.%s = d.longstr(m.%s)", f.goName, f.goName)
		case kindBytes:
			w.p("\tm.%s = d.bytes()", f.goName)
		case kindTimestamp:
			w.p("\tm.%s = d.timestamp()", f.goName)
		case kindTable:
			w.p("\tm.%s = d.table()", f.goName)
		}
		i++
	}
	w.p("\treturn d.finish(%q)", full)
	w.p("}")
	w.p("")

	// Append.
	w.p("// Append appends the encoded method arguments to b.")
	if len(me.fields) == 0 {
		w.p("func %s Append(b []byte) []byte { return b }", recv)
		w.p("")
		return
	}
	w.p("func (m *%s) Append(b []byte) []byte {", me.goName)
	for i := 0; i < len(me.fields); {
		f := me.fields[i]
		if f.kind == kindBit {
			j := i
			for j < len(me.fields) && me.fields[j].kind == kindBit && j-i < 8 {
				j++
			}
			var terms []string
			for k := i; k < j; k++ {
				if k == i {
					terms = append(terms, fmt.Sprintf("bit(m.%s)", me.fields[k].goName))
				} else {
					terms = append(terms, fmt.Sprintf("bit(m.%s)<<%d", me.fields[k].goName, k-i))
				}
			}
			w.p("\tb = append(b, %s)", strings.Join(terms, "|"))
			i = j
			continue
		}
		switch f.kind {
		case kindOctet:
			w.p("\tb = append(b, m.%s)", f.goName)
		case kindShort:
			w.p("\tb = binary.BigEndian.AppendUint16(b, m.%s)", f.goName)
		case kindLong:
			w.p("\tb = binary.BigEndian.AppendUint32(b, m.%s)", f.goName)
		case kindLonglong:
			w.p("\tb = binary.BigEndian.AppendUint64(b, m.%s)", f.goName)
		case kindShortstr:
			w.p("\tb = appendShortstr(b, m.%s)", f.goName)
		case kindLongstr:
			w.p("\tb = appendLongstr(b, m.%s)", f.goName)
		case kindBytes:
			w.p("\tb = appendLongstr(b, m.%s)", f.goName)
		case kindTimestamp:
			w.p("\tb = appendTimestamp(b, m.%s)", f.goName)
		case kindTable:
			w.p("\tb = appendTableLossy(b, m.%s)", f.goName)
		}
		i++
	}
	w.p("\treturn b")
	w.p("}")
	w.p("")
}

func renderLookup(w *writer, m *model) {
	w.p("// methodSet holds one instance of every method, for MethodDecoder.")
	w.p("type methodSet struct {")
	for _, c := range m.classes {
		for _, me := range c.methods {
			w.p("\t%s %s", me.setField(), me.goName)
		}
	}
	w.p("}")
	w.p("")

	w.p("// get returns the set's instance of a method, or nil for unknown ids.")
	w.p("func (s *methodSet) get(classID, methodID uint16) Method {")
	w.p("\tswitch classID {")
	for _, c := range m.classes {
		w.p("\tcase Class%s:", c.goName)
		w.p("\t\tswitch methodID {")
		for _, me := range c.methods {
			w.p("\t\tcase %s:", me.constName())
			w.p("\t\t\treturn &s.%s", me.setField())
		}
		w.p("\t\t}")
	}
	w.p("\t}")
	w.p("\treturn nil")
	w.p("}")
	w.p("")

	w.p("// newMethod returns a new instance of a method, or nil for unknown ids.")
	w.p("func newMethod(classID, methodID uint16) Method {")
	w.p("\tswitch classID {")
	for _, c := range m.classes {
		w.p("\tcase Class%s:", c.goName)
		w.p("\t\tswitch methodID {")
		for _, me := range c.methods {
			w.p("\t\tcase %s:", me.constName())
			w.p("\t\t\treturn new(%s)", me.goName)
		}
		w.p("\t\t}")
	}
	w.p("\t}")
	w.p("\treturn nil")
	w.p("}")
	w.p("")

	w.p("// knownClass reports whether the specification defines a class id.")
	w.p("func knownClass(classID uint16) bool {")
	var ids []string
	for _, c := range m.classes {
		ids = append(ids, "Class"+c.goName)
	}
	w.p("\tswitch classID {")
	w.p("\tcase %s:", strings.Join(ids, ", "))
	w.p("\t\treturn true")
	w.p("\t}")
	w.p("\treturn false")
	w.p("}")
	w.p("")

	w.p("// allMethodIDs lists the class and method id of every method, in order.")
	w.p("var allMethodIDs = [...][2]uint16{")
	for _, c := range m.classes {
		for _, me := range c.methods {
			w.p("\t{Class%s, %s},", c.goName, me.constName())
		}
	}
	w.p("}")
}
