package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// The parts of OpenAPI 3 that the reference shows.
type document struct {
	Info struct {
		Title       string `json:"title"`
		Version     string `json:"version"`
		Description string `json:"description"`
	} `json:"info"`
	Servers []struct {
		URL string `json:"url"`
	} `json:"servers"`
	Tags       []tag                               `json:"tags"`
	Paths      ordered[map[string]json.RawMessage] `json:"paths"`
	Components struct {
		SecuritySchemes ordered[struct {
			Scheme      string `json:"scheme"`
			Description string `json:"description"`
		}] `json:"securitySchemes"`
		Parameters ordered[*parameter] `json:"parameters"`
		Responses  ordered[*response]  `json:"responses"`
		Headers    ordered[*header]    `json:"headers"`
		Schemas    ordered[*schema]    `json:"schemas"`
	} `json:"components"`
}

type tag struct {
	Name        string `json:"name"`
	Description string `json:"description"`
}

type operation struct {
	OperationID string       `json:"operationId"`
	Summary     string       `json:"summary"`
	Description string       `json:"description"`
	Tags        []string     `json:"tags"`
	Parameters  []*parameter `json:"parameters"`
	RequestBody *struct {
		Required    bool                              `json:"required"`
		Description string                            `json:"description"`
		Content     ordered[struct{ Schema *schema }] `json:"content"`
	} `json:"requestBody"`
	Responses ordered[*response]     `json:"responses"`
	Security  *[]map[string][]string `json:"security"`
}

type parameter struct {
	Ref         string  `json:"$ref"`
	Name        string  `json:"name"`
	In          string  `json:"in"`
	Description string  `json:"description"`
	Required    bool    `json:"required"`
	Schema      *schema `json:"schema"`
}

type response struct {
	Ref         string                            `json:"$ref"`
	Description string                            `json:"description"`
	Content     ordered[struct{ Schema *schema }] `json:"content"`
	Headers     ordered[*header]                  `json:"headers"`
}

type header struct {
	Ref         string  `json:"$ref"`
	Description string  `json:"description"`
	Schema      *schema `json:"schema"`
}

type schema struct {
	Ref                  string           `json:"$ref"`
	Type                 string           `json:"type"`
	Format               string           `json:"format"`
	Description          string           `json:"description"`
	Enum                 []any            `json:"enum"`
	Items                *schema          `json:"items"`
	Properties           ordered[*schema] `json:"properties"`
	Required             []string         `json:"required"`
	AdditionalProperties json.RawMessage  `json:"additionalProperties"`
	AllOf                []*schema        `json:"allOf"`
	AnyOf                []*schema        `json:"anyOf"`
	OneOf                []*schema        `json:"oneOf"`
	Nullable             bool             `json:"nullable"`
	ReadOnly             bool             `json:"readOnly"`
	Default              any              `json:"default"`
	Pattern              string           `json:"pattern"`
	MaxLength            *int             `json:"maxLength"`
	MaxItems             *int             `json:"maxItems"`
	Minimum              *float64         `json:"minimum"`
	Maximum              *float64         `json:"maximum"`
}

// ordered is a JSON object that keeps its keys in document order.
type ordered[T any] struct {
	keys []string
	vals map[string]T
}

func (o *ordered[T]) UnmarshalJSON(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return fmt.Errorf("want an object, got %s", b)
	}
	o.vals = map[string]T{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		k := t.(string)
		var v T
		if err := dec.Decode(&v); err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
		o.keys = append(o.keys, k)
		o.vals[k] = v
	}
	return nil
}

func (o *ordered[T]) get(k string) (T, bool) {
	v, ok := o.vals[k]
	return v, ok
}

// methods in the order the reference lists them.
var methods = []string{"get", "put", "post", "patch", "delete"}

// op is one operation with where it lives.
type op struct {
	method, path string
	pathParams   []*parameter
	*operation
}

// Render turns an OpenAPI 3 document into the Markdown reference.
func Render(doc []byte) ([]byte, error) {
	var d document
	if err := json.Unmarshal(doc, &d); err != nil {
		return nil, err
	}
	r := &renderer{d: &d}
	return r.render()
}

type renderer struct {
	d *document
	b bytes.Buffer
}

func (r *renderer) p(format string, args ...any) { fmt.Fprintf(&r.b, format, args...) }

func (r *renderer) render() ([]byte, error) {
	d := r.d
	var ops []op
	for _, path := range d.Paths.keys {
		item := d.Paths.vals[path]
		var shared []*parameter
		if raw, ok := item["parameters"]; ok {
			if err := json.Unmarshal(raw, &shared); err != nil {
				return nil, fmt.Errorf("%s parameters: %w", path, err)
			}
		}
		for k := range item {
			if k != "parameters" && !slices.Contains(methods, k) {
				return nil, fmt.Errorf("%s: unknown key %q", path, k)
			}
		}
		for _, m := range methods {
			raw, ok := item[m]
			if !ok {
				continue
			}
			o := &operation{}
			if err := json.Unmarshal(raw, o); err != nil {
				return nil, fmt.Errorf("%s %s: %w", m, path, err)
			}
			ops = append(ops, op{method: strings.ToUpper(m), path: path, pathParams: shared, operation: o})
		}
	}
	base := ""
	if len(d.Servers) > 0 {
		base = d.Servers[0].URL
	}

	r.p("<!-- Code generated by tools/apidoc from api/openapi.json; DO NOT EDIT. -->\n")
	r.p("<!-- Run `go generate ./tools/apidoc` after changing the OpenAPI document. -->\n\n")
	r.p("# Admin API reference\n\n")
	r.p("%s, version %s. The server serves this document at `%s/openapi.json`; paths below are relative to `%s`.\n\n", d.Info.Title, d.Info.Version, base, base)
	r.p("%s\n\n", d.Info.Description)
	r.p("## Authentication\n\n")
	for _, k := range d.Components.SecuritySchemes.keys {
		s := d.Components.SecuritySchemes.vals[k]
		r.p("- **%s** (`%s`): %s\n", k, s.Scheme, oneLine(s.Description))
	}
	r.p("\n## Operations\n\n")
	r.p("| method | path | summary |\n|---|---|---|\n")
	for _, t := range d.Tags {
		for _, o := range ops {
			if o.tag() == t.Name {
				r.p("| %s | [`%s`](#%s) | %s |\n", o.method, o.path, anchor(o.OperationID), cell(o.Summary))
			}
		}
	}
	for _, t := range d.Tags {
		r.p("\n## %s\n\n", t.Name)
		if t.Description != "" {
			r.p("%s\n\n", t.Description)
		}
		for _, o := range ops {
			if o.tag() == t.Name {
				if err := r.operation(o); err != nil {
					return nil, err
				}
			}
		}
	}
	for _, o := range ops {
		if !slices.ContainsFunc(d.Tags, func(t tag) bool { return t.Name == o.tag() }) {
			return nil, fmt.Errorf("%s %s: tag %q is not declared", o.method, o.path, o.tag())
		}
	}
	r.p("\n## Common responses\n\n")
	r.p("| name | description | body |\n|---|---|---|\n")
	for _, k := range d.Components.Responses.keys {
		resp := d.Components.Responses.vals[k]
		r.p("| <a id=\"response-%s\"></a>%s | %s | %s |\n", strings.ToLower(k), k, cell(resp.Description), r.bodies(resp.Content))
	}
	r.p("\n## Schemas\n")
	for _, name := range d.Components.Schemas.keys {
		s := d.Components.Schemas.vals[name]
		r.p("\n### %s\n\n", name)
		if s.Description != "" {
			r.p("%s\n\n", s.Description)
		}
		if s.Properties.keys == nil && len(s.AllOf) == 0 {
			r.p("%s\n", r.typeOf(s))
			continue
		}
		for _, part := range s.AllOf {
			if part.Ref != "" {
				r.p("All the fields of %s, and:\n\n", r.typeOf(part))
			}
		}
		r.p("| field | type | required | description |\n|---|---|---|---|\n")
		r.fields("", s)
		for _, part := range s.AllOf {
			if part.Ref == "" {
				r.fields("", part)
			}
		}
	}
	return r.b.Bytes(), nil
}

func (o op) tag() string {
	if len(o.Tags) == 0 {
		return ""
	}
	return o.Tags[0]
}

func (r *renderer) operation(o op) error {
	r.p("### <a id=\"%s\"></a>`%s %s`\n\n", anchor(o.OperationID), o.method, o.path)
	r.p("%s (`%s`)", o.Summary, o.OperationID)
	if o.Security != nil && len(*o.Security) == 0 {
		r.p(" — no authentication")
	}
	r.p("\n\n")
	if o.Description != "" {
		r.p("%s\n\n", o.Description)
	}
	params := append(slices.Clone(o.pathParams), o.Parameters...)
	if len(params) > 0 {
		r.p("| parameter | in | type | required | description |\n|---|---|---|---|---|\n")
		for _, p := range params {
			p, err := r.param(p)
			if err != nil {
				return fmt.Errorf("%s %s: %w", o.method, o.path, err)
			}
			r.p("| `%s` | %s | %s | %s | %s |\n", p.Name, p.In, r.typeOf(p.Schema), yes(p.Required || p.In == "path"), cell(p.Description))
		}
		r.p("\n")
	}
	if rb := o.RequestBody; rb != nil {
		req := "optional"
		if rb.Required {
			req = "required"
		}
		r.p("**Request body** (%s): %s", req, r.bodies(rb.Content))
		if rb.Description != "" {
			r.p(" — %s", oneLine(rb.Description))
		}
		r.p("\n\n")
	}
	r.p("| status | description | body | headers |\n|---|---|---|---|\n")
	codes := slices.Clone(o.Responses.keys)
	slices.Sort(codes)
	for _, code := range codes {
		resp := o.Responses.vals[code]
		desc := resp.Description
		if resp.Ref != "" {
			name := refName(resp.Ref)
			shared, ok := r.d.Components.Responses.get(name)
			if !ok {
				return fmt.Errorf("%s %s: %s: no response %s", o.method, o.path, code, resp.Ref)
			}
			resp = shared
			desc = fmt.Sprintf("[%s](#response-%s)", name, strings.ToLower(name))
		}
		var hs []string
		for _, h := range resp.Headers.keys {
			hs = append(hs, "`"+h+"`")
		}
		r.p("| %s | %s | %s | %s |\n", code, cell(desc), r.bodies(resp.Content), strings.Join(hs, ", "))
	}
	r.p("\n")
	return nil
}

func (r *renderer) param(p *parameter) (*parameter, error) {
	if p.Ref == "" {
		return p, nil
	}
	shared, ok := r.d.Components.Parameters.get(refName(p.Ref))
	if !ok {
		return nil, fmt.Errorf("no parameter %s", p.Ref)
	}
	return shared, nil
}

// bodies names the schema of each media type of a request or response.
func (r *renderer) bodies(content ordered[struct{ Schema *schema }]) string {
	var out []string
	for _, mt := range content.keys {
		s := content.vals[mt].Schema
		t := "—"
		if s != nil {
			t = r.typeOf(s)
		}
		if mt == "application/json" {
			out = append(out, t)
		} else {
			out = append(out, t+" (`"+mt+"`)")
		}
	}
	if len(out) == 0 {
		return "—"
	}
	return strings.Join(out, ", ")
}

// fields writes one table row per property, inline objects flattened
// into dotted names.
func (r *renderer) fields(prefix string, s *schema) {
	for _, name := range s.Properties.keys {
		f := s.Properties.vals[name]
		path := prefix + name
		desc := f.Description
		var notes []string
		if f.ReadOnly {
			notes = append(notes, "read-only")
		}
		if f.Default != nil {
			notes = append(notes, fmt.Sprintf("default `%v`", f.Default))
		}
		if f.Pattern != "" {
			notes = append(notes, "pattern `"+f.Pattern+"`")
		}
		if f.MaxLength != nil {
			notes = append(notes, fmt.Sprintf("at most %d characters", *f.MaxLength))
		}
		if f.MaxItems != nil {
			notes = append(notes, fmt.Sprintf("at most %d items", *f.MaxItems))
		}
		if len(notes) > 0 {
			if desc != "" {
				desc += " "
			}
			desc += "(" + strings.Join(notes, "; ") + ")"
		}
		r.p("| `%s` | %s | %s | %s |\n", path, r.typeOf(f), yes(slices.Contains(s.Required, name)), cell(desc))
		switch {
		case f.Ref == "" && f.Properties.keys != nil:
			r.fields(path+".", f)
		case f.Ref == "" && f.Items != nil && f.Items.Ref == "" && f.Items.Properties.keys != nil:
			r.fields(path+"[].", f.Items)
		}
	}
}

// typeOf is a schema's type in a table cell: a link for a named schema.
func (r *renderer) typeOf(s *schema) string {
	if s == nil {
		return "—"
	}
	var t string
	switch {
	case s.Ref != "":
		name := refName(s.Ref)
		t = fmt.Sprintf("[%s](#%s)", name, strings.ToLower(name))
	case len(s.AllOf) > 0:
		t = r.join(s.AllOf, " and ")
	case len(s.AnyOf) > 0:
		t = r.join(s.AnyOf, " or ")
	case len(s.OneOf) > 0:
		t = r.join(s.OneOf, " or ")
	case s.Type == "array":
		t = "array of " + r.typeOf(s.Items)
	case s.Type == "object" && len(s.AdditionalProperties) > 0 && s.AdditionalProperties[0] == '{':
		var v schema
		if json.Unmarshal(s.AdditionalProperties, &v) == nil {
			t = "map of " + r.typeOf(&v)
		} else {
			t = "object"
		}
	default:
		t = s.Type
		if s.Format != "" {
			t += " (" + s.Format + ")"
		}
		if t == "" {
			t = "any"
		}
	}
	var vals []string
	for _, e := range s.Enum {
		if e != nil {
			vals = append(vals, fmt.Sprintf("`%v`", e))
		}
	}
	if len(vals) > 0 {
		t += ": " + strings.Join(vals, ", ")
	}
	if s.Minimum != nil || s.Maximum != nil {
		lo, hi := "", ""
		if s.Minimum != nil {
			lo = fmt.Sprint(*s.Minimum)
		}
		if s.Maximum != nil {
			hi = fmt.Sprint(*s.Maximum)
		}
		t += fmt.Sprintf(" [%s…%s]", lo, hi)
	}
	if s.Nullable {
		t += ", nullable"
	}
	return t
}

func (r *renderer) join(list []*schema, sep string) string {
	var out []string
	for _, s := range list {
		out = append(out, r.typeOf(s))
	}
	return strings.Join(out, sep)
}

func refName(ref string) string { return ref[strings.LastIndexByte(ref, '/')+1:] }

func anchor(id string) string { return "op-" + strings.ToLower(id) }

func yes(b bool) string {
	if b {
		return "yes"
	}
	return ""
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// cell makes s safe in a Markdown table cell.
func cell(s string) string { return strings.ReplaceAll(oneLine(s), "|", `\|`) }
