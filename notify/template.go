package notify

import (
	"bytes"
	"fmt"
	htmltemplate "html/template"
	"sort"
	"strings"
	"text/template"
	"text/template/parse"
)

// Template is a stored notification template (PUT /api/v1/templates/{id}):
// per-locale variants of a subject, a text and an HTML body. Subject and
// text are text/template, HTML is html/template (values are escaped).
type Template struct {
	Locales       map[string]TemplateContent `json:"locales"`
	DefaultLocale string                     `json:"default_locale"`
}

// TemplateContent is one locale's variant.
type TemplateContent struct {
	Subject string `json:"subject,omitempty"`
	Text    string `json:"text,omitempty"`
	HTML    string `json:"html,omitempty"`
}

// CompiledTemplate is a parsed Template, ready to render.
type CompiledTemplate struct {
	def     string
	locales map[string]*compiledLocale
}

type compiledLocale struct {
	subject, text *template.Template
	html          *htmltemplate.Template
	vars          []string
}

// Compile parses every variant; errors are *InvalidError naming the field
// (for example locales.ko.subject), so the API answers them with 422.
func (t *Template) Compile() (*CompiledTemplate, error) {
	if len(t.Locales) == 0 {
		return nil, invalid("locales", "at least one locale required")
	}
	def := t.DefaultLocale
	if def == "" {
		if len(t.Locales) != 1 {
			return nil, invalid("default_locale", "required when there are several locales")
		}
		for l := range t.Locales {
			def = l
		}
	}
	if _, ok := t.Locales[def]; !ok {
		return nil, invalid("default_locale", "no locale %q", def)
	}
	c := &CompiledTemplate{def: def, locales: make(map[string]*compiledLocale, len(t.Locales))}
	for name, v := range t.Locales {
		field := "locales." + name
		if name == "" || len(name) > MaxNameBytes {
			return nil, invalid("locales", "invalid locale name %q", name)
		}
		if v.Text == "" && v.HTML == "" {
			return nil, invalid(field, "text or html required")
		}
		if strings.ContainsAny(v.Subject, "\r\n") {
			return nil, invalid(field+".subject", "line breaks are not allowed")
		}
		cl := &compiledLocale{}
		vars := map[string]bool{}
		var err error
		if cl.subject, err = parseText(field+".subject", v.Subject, vars); err != nil {
			return nil, err
		}
		if cl.text, err = parseText(field+".text", v.Text, vars); err != nil {
			return nil, err
		}
		cl.html, err = htmltemplate.New("html").Option("missingkey=error").Parse(v.HTML)
		if err != nil {
			return nil, invalid(field+".html", "%v", err)
		}
		if cl.html.Tree != nil {
			collectVars(cl.html.Tree.Root, vars)
		}
		for k := range vars {
			cl.vars = append(cl.vars, k)
		}
		sort.Strings(cl.vars)
		c.locales[name] = cl
	}
	return c, nil
}

func parseText(field, src string, vars map[string]bool) (*template.Template, error) {
	t, err := template.New(field).Option("missingkey=error").Parse(src)
	if err != nil {
		return nil, invalid(field, "%v", err)
	}
	if t.Tree != nil {
		collectVars(t.Tree.Root, vars)
	}
	return t, nil
}

// collectVars records the top-level data fields a template uses ({{.code}},
// {{if .name}}, {{range .items}}...).
func collectVars(n parse.Node, vars map[string]bool) {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return
		}
		for _, c := range n.Nodes {
			collectVars(c, vars)
		}
	case *parse.ActionNode:
		collectVars(n.Pipe, vars)
	case *parse.PipeNode:
		if n == nil {
			return
		}
		for _, c := range n.Cmds {
			collectVars(c, vars)
		}
	case *parse.CommandNode:
		for _, a := range n.Args {
			collectVars(a, vars)
		}
	case *parse.FieldNode:
		if len(n.Ident) > 0 {
			vars[n.Ident[0]] = true
		}
	case *parse.ChainNode:
		collectVars(n.Node, vars)
	case *parse.IfNode:
		collectVars(n.Pipe, vars)
		collectVars(n.List, vars)
		collectVars(n.ElseList, vars)
	case *parse.RangeNode:
		// Inside range and with, '.' is the element: only the pipeline
		// names top-level data.
		collectVars(n.Pipe, vars)
		collectVars(n.ElseList, vars)
	case *parse.WithNode:
		collectVars(n.Pipe, vars)
		collectVars(n.ElseList, vars)
	}
}

// locale returns the variant for locale, the default one when locale is
// empty; ok is false when the template has no such locale.
func (c *CompiledTemplate) locale(locale string) (*compiledLocale, bool) {
	if locale == "" {
		locale = c.def
	}
	cl, ok := c.locales[locale]
	return cl, ok
}

// Vars returns the top-level data fields the variant for locale uses, for
// Rules.Template.
func (c *CompiledTemplate) Vars(locale string) ([]string, bool) {
	cl, ok := c.locale(locale)
	if !ok {
		return nil, false
	}
	return cl.vars, true
}

// Render renders the variant for locale with data.
func (c *CompiledTemplate) Render(locale string, data map[string]any) (Content, error) {
	cl, ok := c.locale(locale)
	if !ok {
		return Content{}, invalid("locale", "no locale %q", locale)
	}
	var out Content
	var b bytes.Buffer
	if err := cl.subject.Execute(&b, data); err != nil {
		return Content{}, fmt.Errorf("rendering the subject: %w", err)
	}
	out.Subject = b.String()
	if strings.ContainsAny(out.Subject, "\r\n") {
		return Content{}, invalid("data", "the subject would contain a line break")
	}
	b.Reset()
	if err := cl.text.Execute(&b, data); err != nil {
		return Content{}, fmt.Errorf("rendering the text: %w", err)
	}
	out.Text = b.String()
	b.Reset()
	if err := cl.html.Execute(&b, data); err != nil {
		return Content{}, fmt.Errorf("rendering the html: %w", err)
	}
	out.HTML = b.String()
	return out, nil
}
