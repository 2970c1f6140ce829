// Command gen writes config/reference_gen.go and docs/configuration.md
// from the source of package config. It runs from the config directory:
// `go generate ./config`.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/moat-registry/moat/config/internal/configdoc"
)

func main() {
	dir := flag.String("dir", ".", "directory of package config")
	goFile := flag.String("go", configdoc.GoFile, "Go file to write (config.Reference, the example)")
	docs := flag.String("docs", configdoc.DocsFile, "Markdown reference to write")
	flag.Parse()
	out, err := configdoc.Generate(*dir)
	if err == nil {
		err = os.WriteFile(*goFile, out.Go, 0o644)
	}
	if err == nil {
		err = os.WriteFile(*docs, out.Markdown, 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "configdoc:", err)
		os.Exit(1)
	}
}
