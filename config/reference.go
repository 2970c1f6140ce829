package config

// The reference of every key (Reference, in reference_gen.go) and
// docs/configuration.md are generated from the Config type: its field doc
// comments, Default and EnvName. A test fails when they are out of date.

//go:generate go run ./internal/configdoc/gen

// Key documents one configuration key.
type Key struct {
	// Path is the YAML key path, e.g. "registry.name".
	Path string
	// Type is the field's Go type, e.g. "string", "[]string", "Duration".
	Type string
	// Default is the value in Default (no config file), in YAML syntax.
	Default string
	// FileDefault is the value a config file starts from (FileDefaults).
	FileDefault string
	// Env is the environment variable that overrides the key.
	Env string
	// Doc is the field's doc comment, with Go field names replaced by
	// their YAML keys.
	Doc string
}

// Example is a commented configuration file that sets every key to the
// value a file starts from (FileDefaults), with each key's documentation.
func Example() []byte { return []byte(exampleYAML) }
