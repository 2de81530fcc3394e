package notify

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestTemplateRender(t *testing.T) {
	tpl := &Template{DefaultLocale: "en", Locales: map[string]TemplateContent{
		"en": {Subject: "Your code {{.code}}", Text: "Code {{.code}} for {{.name}}", HTML: "<p>Hi {{.name}}</p>{{range .items}}<i>{{.}}</i>{{end}}"},
		"ko": {Subject: "인증번호 {{.code}}", Text: "{{if .name}}{{.name}}님 {{end}}인증번호 {{.code}}"},
	}}
	c, err := tpl.Compile()
	if err != nil {
		t.Fatal(err)
	}
	if vars, ok := c.Vars(""); !ok || !reflect.DeepEqual(vars, []string{"code", "items", "name"}) {
		t.Fatalf("default locale vars %v %v", vars, ok)
	}
	if vars, ok := c.Vars("ko"); !ok || !reflect.DeepEqual(vars, []string{"code", "name"}) {
		t.Fatalf("ko vars %v %v", vars, ok)
	}
	if _, ok := c.Vars("fr"); ok {
		t.Fatal("a missing locale reported vars")
	}
	out, err := c.Render("", map[string]any{"code": "123456", "name": "<Ann>", "items": []string{"a&b"}})
	if err != nil {
		t.Fatal(err)
	}
	want := Content{Subject: "Your code 123456", Text: "Code 123456 for <Ann>", HTML: "<p>Hi &lt;Ann&gt;</p><i>a&amp;b</i>"}
	if !reflect.DeepEqual(out, want) {
		t.Fatalf("rendered %+v, want %+v", out, want)
	}
	out, err = c.Render("ko", map[string]any{"code": "9", "name": "민수"})
	if err != nil || out.Text != "민수님 인증번호 9" || out.Subject != "인증번호 9" {
		t.Fatalf("ko rendered %+v, %v", out, err)
	}
	// A variable missing at render time is an error, not "<no value>".
	if _, err := c.Render("en", map[string]any{"name": "x", "items": nil}); err == nil {
		t.Fatal("rendering without code succeeded")
	}
	// Data that would break the subject line is refused.
	if _, err := c.Render("ko", map[string]any{"code": "1\r\nBcc: x@y", "name": ""}); err == nil {
		t.Fatal("a line break reached the subject")
	}
}

func TestTemplateCompileErrors(t *testing.T) {
	for _, c := range []struct {
		tpl   Template
		field string
	}{
		{Template{}, "locales"},
		{Template{Locales: map[string]TemplateContent{"en": {Text: "x"}, "ko": {Text: "y"}}}, "default_locale"},
		{Template{DefaultLocale: "fr", Locales: map[string]TemplateContent{"en": {Text: "x"}}}, "default_locale"},
		{Template{Locales: map[string]TemplateContent{"en": {Subject: "s"}}}, "locales.en"},
		{Template{Locales: map[string]TemplateContent{"en": {Text: "{{.code"}}}, "locales.en.text"},
		{Template{Locales: map[string]TemplateContent{"en": {Text: "x", HTML: "{{if}}"}}}, "locales.en.html"},
		{Template{Locales: map[string]TemplateContent{"en": {Text: "x", Subject: "a\nb"}}}, "locales.en.subject"},
	} {
		_, err := c.tpl.Compile()
		var ie *InvalidError
		if !errors.As(err, &ie) || ie.Field != c.field {
			t.Errorf("%+v: got %v, want invalid %s", c.tpl, err, c.field)
		}
	}
	// A single locale is its own default.
	c, err := (&Template{Locales: map[string]TemplateContent{"ko": {Text: "{{.a}}"}}}).Compile()
	if err != nil {
		t.Fatal(err)
	}
	if vars, ok := c.Vars(""); !ok || strings.Join(vars, ",") != "a" {
		t.Fatalf("single-locale default: %v %v", vars, ok)
	}
}
