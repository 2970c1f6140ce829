// Package configdoc generates the configuration reference from the source
// of package config, so that it cannot drift from the Config type: the key
// tree and doc comments come from the Go source (go/parser, go/doc), the
// defaults from config.Default and config.FileDefaults, the environment
// variables from config.EnvName.
//
// It produces config/reference_gen.go (config.Reference and the example
// that `moat config example` prints) and docs/configuration.md.
package configdoc

import (
	"errors"
	"fmt"
	"go/ast"
	"go/doc"
	"go/parser"
	"go/token"
	"go/types"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/moat-registry/moat/config"
	"gopkg.in/yaml.v3"
)

// GoFile and DocsFile are where the outputs go, relative to the config
// package directory.
const (
	GoFile   = "reference_gen.go"
	DocsFile = "../docs/configuration.md"
)

// Output is what Generate produces.
type Output struct {
	Go       []byte // reference_gen.go
	Markdown []byte // docs/configuration.md
}

// node is a key of the tree: a section (a struct), a leaf, or a list of
// structs (a leaf whose items have keys of their own, path "x[].key").
type node struct {
	path   string // YAML key path
	key    string // last component
	goType string
	doc    string // doc comment, Go names replaced by YAML keys
	// for leaves and lists: the value in Default and in FileDefaults
	value, fileValue reflect.Value
	// for sections and lists: the struct type and its fields
	typeName string
	list     bool
	children []*node
}

func (n *node) isSection() bool { return n.typeName != "" && !n.list }

// inList reports whether the key is inside the items of a list.
func (n *node) inList() bool { return strings.Contains(n.path, "[]") }

// Generate reads the non-test, non-generated Go files of package config in
// dir and returns the generated files.
func Generate(dir string) (Output, error) {
	fset := token.NewFileSet()
	entries, err := os.ReadDir(dir)
	if err != nil {
		return Output{}, err
	}
	var files []*ast.File
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") || strings.HasSuffix(name, "_gen.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, parser.ParseComments)
		if err != nil {
			return Output{}, err
		}
		files = append(files, f)
	}
	pkg, err := doc.NewFromFiles(fset, files, "github.com/moat-registry/moat/config", doc.PreserveAST)
	if err != nil {
		return Output{}, err
	}
	structs := map[string]*ast.StructType{}
	typeDocs := map[string]string{}
	for _, t := range pkg.Types {
		typeDocs[t.Name] = t.Doc
		for _, spec := range t.Decl.Specs {
			if ts, ok := spec.(*ast.TypeSpec); ok {
				if st, ok := ts.Type.(*ast.StructType); ok {
					structs[ts.Name.Name] = st
				}
			}
		}
	}
	if structs["Config"] == nil {
		return Output{}, errors.New("no struct type Config in " + dir)
	}
	g := &generator{structs: structs, typeDocs: typeDocs, pkg: pkg}
	root := &node{typeName: "Config"}
	def, file := config.Default(), config.FileDefaults()
	if err := g.build(root, reflect.ValueOf(def), reflect.ValueOf(file)); err != nil {
		return Output{}, err
	}
	if err := sameLeaves(root); err != nil {
		return Output{}, err
	}
	goSrc, err := g.goFile(root)
	if err != nil {
		return Output{}, err
	}
	return Output{Go: goSrc, Markdown: g.markdown(root)}, nil
}

type generator struct {
	structs  map[string]*ast.StructType
	typeDocs map[string]string
	pkg      *doc.Package
	// valueTypes are the named non-struct types of leaves (Duration), for
	// the reference's "Value types" section.
	valueTypes []string
}

// build fills a section node from its struct type's fields.
func (g *generator) build(n *node, def, file reflect.Value) error {
	st := g.structs[n.typeName]
	// Go field name → YAML key, for rewriting the doc comments.
	names := map[string]string{}
	for _, f := range st.Fields.List {
		if key := yamlKey(f); key != "" && len(f.Names) == 1 {
			names[f.Names[0].Name] = key
		}
	}
	for _, f := range st.Fields.List {
		key := yamlKey(f)
		if key == "" {
			continue
		}
		if len(f.Names) != 1 {
			return fmt.Errorf("%s: declare one field per line (embedded or grouped fields are not supported)", n.typeName)
		}
		goName := f.Names[0].Name
		path := key
		if n.path != "" {
			path = n.path + "." + key
		}
		text := f.Doc.Text()
		if text == "" {
			text = f.Comment.Text()
		}
		if strings.TrimSpace(text) == "" {
			return fmt.Errorf("%s.%s (%s) has no doc comment: the reference is made of them", n.typeName, goName, path)
		}
		child := &node{path: path, key: key, goType: types.ExprString(f.Type), doc: renameFields(strings.TrimSpace(text), names)}
		sf, ok := def.Type().FieldByName(goName)
		if !ok {
			return fmt.Errorf("%s.%s: not in the compiled config package; is it up to date?", n.typeName, goName)
		}
		dv, fv := def.FieldByIndex(sf.Index), file.FieldByIndex(sf.Index)
		switch t := f.Type.(type) {
		case *ast.Ident:
			if g.structs[t.Name] != nil {
				child.typeName = t.Name
				if err := g.build(child, dv, fv); err != nil {
					return err
				}
				break
			}
			child.value, child.fileValue = dv, fv
			if g.typeDocs[t.Name] != "" && !slices.Contains(g.valueTypes, t.Name) {
				g.valueTypes = append(g.valueTypes, t.Name)
			}
		case *ast.ArrayType:
			child.value, child.fileValue = dv, fv
			id, ok := t.Elt.(*ast.Ident)
			if !ok || g.structs[id.Name] == nil {
				break
			}
			if dv.Len() > 0 || fv.Len() > 0 {
				return fmt.Errorf("%s: a default with items is not supported in the reference", path)
			}
			item := &node{path: path + "[]", typeName: id.Name, doc: g.typeDocs[id.Name]}
			zero := reflect.Zero(dv.Type().Elem())
			if err := g.build(item, zero, zero); err != nil {
				return err
			}
			child.typeName, child.list, child.children = id.Name, true, item.children
		default:
			child.value, child.fileValue = dv, fv
		}
		n.children = append(n.children, child)
	}
	return nil
}

func yamlKey(f *ast.Field) string {
	if f.Tag == nil {
		return ""
	}
	tag, err := strconv.Unquote(f.Tag.Value)
	if err != nil {
		return ""
	}
	key, _, _ := strings.Cut(reflect.StructTag(tag).Get("yaml"), ",")
	if key == "-" {
		return ""
	}
	return key
}

// renameFields replaces the Go names of a struct's fields in a doc
// comment by their YAML keys ("Burst is how many requests above Rate" →
// "burst is how many requests above rate").
func renameFields(text string, names map[string]string) string {
	if len(names) == 0 {
		return text
	}
	goNames := make([]string, 0, len(names))
	for n := range names {
		goNames = append(goNames, regexp.QuoteMeta(n))
	}
	slices.Sort(goNames)
	re := regexp.MustCompile(`\b(` + strings.Join(goNames, "|") + `)\b`)
	return re.ReplaceAllStringFunc(text, func(s string) string { return names[s] })
}

// leaves lists the leaf nodes in order, each list followed by the keys of
// its items.
func leaves(n *node) []*node {
	var out []*node
	for _, c := range n.children {
		if !c.isSection() {
			out = append(out, c)
		}
		if c.typeName != "" {
			out = append(out, leaves(c)...)
		}
	}
	return out
}

// sameLeaves checks the tree read from the source against the keys
// config.Fields finds by reflection, so that a field the source walk
// misses cannot go undocumented.
func sameLeaves(root *node) error {
	var fromSource, fromReflect []string
	for _, l := range leaves(root) {
		if !l.inList() {
			fromSource = append(fromSource, l.path)
		}
	}
	for _, f := range config.Fields() {
		fromReflect = append(fromReflect, f.Path)
	}
	if !slices.Equal(fromSource, fromReflect) {
		return fmt.Errorf("the keys found in the source differ from config.Fields():\nsource:  %v\nreflect: %v", fromSource, fromReflect)
	}
	return nil
}

// yamlValue renders a default in YAML flow syntax.
func yamlValue(v reflect.Value) string {
	if d, ok := v.Interface().(config.Duration); ok {
		return formatDuration(time.Duration(d))
	}
	switch v.Kind() {
	case reflect.Slice:
		items := make([]string, v.Len())
		for i := range items {
			items[i] = flowScalar(v.Index(i))
		}
		return "[" + strings.Join(items, ", ") + "]"
	case reflect.Map:
		keys := v.MapKeys()
		slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(a.String(), b.String()) })
		items := make([]string, len(keys))
		for i, k := range keys {
			items[i] = flowScalar(k) + ": " + flowScalar(v.MapIndex(k))
		}
		return "{" + strings.Join(items, ", ") + "}"
	}
	return scalar(v.Interface())
}

// flowScalar renders a scalar inside a flow collection.
func flowScalar(v reflect.Value) string {
	s := scalar(v.Interface())
	if strings.ContainsAny(s, ",[]{}") {
		s = strconv.Quote(v.String())
	}
	return s
}

// envName is the variable that sets a key, or "" when the environment
// cannot set it (maps, lists of structs, keys of list items): config.ApplyEnv
// is asked.
func envName(n *node) string {
	if n.inList() {
		return ""
	}
	name := config.EnvName(n.path)
	c := config.Default()
	if err := config.ApplyEnv(&c, []string{name + "=x"}); err != nil && strings.Contains(err.Error(), "cannot be set from the environment") {
		return ""
	}
	return name
}

func scalar(v any) string {
	b, err := yaml.Marshal(v)
	if err != nil {
		panic(err) // strings, numbers and booleans always marshal
	}
	return strings.TrimSuffix(string(b), "\n")
}

// formatDuration writes 24h rather than 24h0m0s.
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
