package config

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// FileDefaults is what a configuration file starts from: Default with Dev
// off, as Load does when it is given a file.
func FileDefaults() Config {
	c := Default()
	c.Dev = false
	return c
}

// Problem is one thing wrong with a configuration.
type Problem struct {
	// Line is the line of the file the problem is on; 0 when it is not in
	// the file (a default, an environment variable, a syntax error whose
	// place is unknown).
	Line int `json:"line,omitempty"`
	// Field is the key path ("registry.name", "trustedProxies[1]"), the
	// environment variable that set it, or empty for a file that is not
	// YAML.
	Field string `json:"field,omitempty"`
	// Env is the MOAT_* variable the value came from, when it did.
	Env     string `json:"env,omitempty"`
	Message string `json:"message"`
}

// String renders the problem without the file name:
// "3: registry.name: message" or "gc.interval (MOAT_GC_INTERVAL): message".
func (p Problem) String() string {
	var b strings.Builder
	if p.Line > 0 {
		b.WriteString(strconv.Itoa(p.Line) + ": ")
	}
	if p.Field != "" {
		b.WriteString(p.Field)
		if p.Env != "" && p.Env != p.Field {
			b.WriteString(" (" + p.Env + ")")
		}
		b.WriteString(": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// Check reads a configuration file the way Load does — over FileDefaults,
// then the MOAT_* variables of environ — validates the result and returns
// it with every problem found, in file order: unknown keys, values of the
// wrong type, bad environment variables and what Validate refuses, each
// with its line when it comes from the file. No problems means Load and
// Validate accept the same file in the same environment.
func Check(b []byte, environ []string) (Config, []Problem) {
	c := FileDefaults()
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return c, []Problem{syntaxProblem(err)}
	}
	k := checker{lines: map[string]int{}}
	if len(doc.Content) > 0 {
		k.section(doc.Content[0], reflect.ValueOf(&c).Elem(), "")
	}
	// Parse is the authority on the file: when it accepts it, its result
	// is the configuration; when only it refuses, its error is reported.
	parsed := FileDefaults()
	if err := Parse(b, &parsed); err == nil {
		c = parsed
	} else if len(k.problems) == 0 {
		k.problems = append(k.problems, syntaxProblem(err))
	}

	envPaths := map[string]string{} // MOAT_X → key path
	for _, f := range Fields() {
		envPaths[EnvName(f.Path)] = f.Path
	}
	fromEnv := map[string]string{} // key path → MOAT_X
	for _, kv := range environ {
		if name, v, ok := strings.Cut(kv, "="); ok && v != "" { // as ApplyEnv
			if path, ok := envPaths[name]; ok {
				fromEnv[path] = name
			}
		}
	}
	for _, err := range unjoin(ApplyEnv(&c, environ)) {
		name, msg, _ := strings.Cut(err.Error(), ": ")
		k.problems = append(k.problems, Problem{Field: envPaths[name], Env: name, Message: msg})
	}
	// Fields already reported: a value that could not be read keeps its
	// default, and what Validate says of that is noise.
	reported := map[string]bool{}
	for _, p := range k.problems {
		reported[p.Field] = true
	}
	for _, err := range unjoin(c.Validate()) {
		field, msg, ok := strings.Cut(err.Error(), ": ")
		if !ok {
			k.problems = append(k.problems, Problem{Message: err.Error()})
			continue
		}
		if reported[field] {
			continue
		}
		p := Problem{Field: field, Message: msg}
		base, _, _ := strings.Cut(field, "[")
		if env, ok := fromEnv[base]; ok {
			p.Env = env
		} else {
			p.Line = k.line(field)
		}
		k.problems = append(k.problems, p)
	}
	// File order; what has no line (environment, defaults) last.
	slices.SortStableFunc(k.problems, func(a, b Problem) int {
		switch {
		case a.Line == b.Line:
			return 0
		case a.Line == 0:
			return 1
		case b.Line == 0:
			return -1
		}
		return a.Line - b.Line
	})
	return c, k.problems
}

// unjoin lists the errors of an errors.Join.
func unjoin(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

var yamlLine = regexp.MustCompile(`line (\d+): `)

// syntaxProblem turns a YAML error into a problem, with its line when the
// message has one.
func syntaxProblem(err error) Problem {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	msg = strings.TrimPrefix(msg, "unmarshal errors:\n")
	msg = strings.Join(strings.Fields(msg), " ")
	p := Problem{Message: msg}
	if m := yamlLine.FindStringSubmatchIndex(msg); m != nil {
		p.Line, _ = strconv.Atoi(msg[m[2]:m[3]])
		p.Message = msg[:m[0]] + msg[m[1]:]
	}
	return p
}

// checker walks a YAML document along the Config type, decoding each leaf
// on its own so that one bad value does not hide the others.
type checker struct {
	problems []Problem
	lines    map[string]int // key path (with [i] for list items) → line
}

// line is the line of a key path in the file, or of its closest
// ancestor there (a key the file leaves out is missing from its section).
func (k *checker) line(field string) int {
	for field != "" {
		if l, ok := k.lines[field]; ok {
			return l
		}
		i := strings.LastIndexAny(field, ".[")
		if i < 0 {
			break
		}
		field = field[:i]
	}
	return 0
}

func (k *checker) add(line int, field, format string, args ...any) {
	k.problems = append(k.problems, Problem{Line: line, Field: field, Message: fmt.Sprintf(format, args...)})
}

// section checks a mapping node against a struct v.
func (k *checker) section(n *yaml.Node, v reflect.Value, prefix string) {
	n = resolve(n)
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		field := prefix
		if field == "" {
			k.add(n.Line, "", "the file must be a mapping of keys (listen: …, registry: …)")
			return
		}
		k.add(n.Line, field, "expected a mapping of keys (%s)", strings.Join(keyNames(v.Type(), prefix), ", "))
		return
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := n.Content[i], n.Content[i+1]
		if key.Value == "<<" && key.Tag == "!!merge" {
			merged := resolve(val)
			if merged.Kind == yaml.SequenceNode {
				for _, m := range merged.Content {
					k.section(m, v, prefix)
				}
			} else {
				k.section(merged, v, prefix)
			}
			continue
		}
		path := key.Value
		if prefix != "" {
			path = prefix + "." + key.Value
		}
		if line, dup := seen[key.Value]; dup {
			k.add(key.Line, path, "already set on line %d", line)
			continue
		}
		seen[key.Value] = key.Line
		idx, ok := fieldIndex(v.Type(), key.Value)
		if !ok {
			k.add(key.Line, path, "unknown key%s", suggest(v.Type(), key.Value, prefix))
			continue
		}
		k.lines[path] = key.Line
		fv := v.Field(idx)
		if fv.Kind() == reflect.Struct {
			k.section(val, fv, path)
			continue
		}
		k.leaf(val, fv, path)
	}
}

// leaf decodes one value into fv, or records why it cannot. The items of
// a list of structs are checked key by key like sections.
func (k *checker) leaf(n *yaml.Node, fv reflect.Value, path string) {
	r := resolve(n)
	if r.Kind == yaml.SequenceNode {
		for i, item := range r.Content {
			k.lines[fmt.Sprintf("%s[%d]", path, i)] = item.Line
		}
		if t := fv.Type(); t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct {
			items := reflect.MakeSlice(t, 0, len(r.Content))
			for i, item := range r.Content {
				v := reflect.New(t.Elem()).Elem()
				k.section(item, v, fmt.Sprintf("%s[%d]", path, i))
				items = reflect.Append(items, v)
			}
			fv.Set(items)
			return
		}
	}
	tmp := reflect.New(fv.Type())
	tmp.Elem().Set(fv)
	if err := n.Decode(tmp.Interface()); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			k.add(n.Line, path, "%s", typeMismatch(resolve(n), fv.Type()))
		} else {
			k.add(n.Line, path, "%s", err.Error())
		}
		return
	}
	fv.Set(tmp.Elem())
}

// typeMismatch says what a value should have been.
func typeMismatch(n *yaml.Node, t reflect.Type) string {
	var want string
	switch t.Kind() {
	case reflect.Bool:
		want = "true or false"
	case reflect.Int, reflect.Int64:
		want = "an integer"
	case reflect.Float64:
		want = "a number"
	case reflect.Slice:
		want = "a list of " + kindName(t.Elem()) + "s"
	default:
		want = "a " + kindName(t)
	}
	if n.Kind == yaml.ScalarNode {
		return fmt.Sprintf("%q is not %s", n.Value, want)
	}
	return "expected " + want
}

func kindName(t reflect.Type) string {
	if t.Kind() == reflect.Slice {
		return "list"
	}
	return t.Kind().String()
}

func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

// fieldIndex finds the field of struct type t whose YAML key is name.
func fieldIndex(t reflect.Type, name string) (int, bool) {
	for i := range t.NumField() {
		if tag, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); tag == name {
			return i, true
		}
	}
	return 0, false
}

// keyNames lists the YAML key paths of struct type t's fields.
func keyNames(t reflect.Type, prefix string) []string {
	var out []string
	for i := range t.NumField() {
		tag, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if tag == "" || tag == "-" {
			continue
		}
		if prefix != "" {
			tag = prefix + "." + tag
		}
		out = append(out, tag)
	}
	return out
}

// suggest proposes the key that was probably meant: one differing only in
// case, or by at most two edits.
func suggest(t reflect.Type, name, prefix string) string {
	best, bestDist := "", 3
	for _, path := range keyNames(t, prefix) {
		key := path[strings.LastIndexByte(path, '.')+1:]
		d := editDistance(strings.ToLower(name), strings.ToLower(key))
		if d < bestDist {
			best, bestDist = path, d
		}
	}
	if best == "" {
		return ""
	}
	return " (did you mean " + best + "?)"
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
