// Command apidoc writes docs/api.md, the admin API reference, from the
// OpenAPI document the server serves (api/openapi.json): every path and
// method with its parameters, request body, status codes and response
// bodies, then every schema with its fields. The test in this folder
// fails when docs/api.md is stale.
//
//	go generate ./tools/apidoc
//
//go:generate go run . -o ../../docs/api.md
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/moat-registry/moat/api"
)

func main() {
	out := flag.String("o", "", "write to this file (default: standard output)")
	flag.Parse()
	md, err := Render(api.OpenAPI())
	if err != nil {
		fmt.Fprintln(os.Stderr, "apidoc:", err)
		os.Exit(1)
	}
	if *out == "" {
		_, err = os.Stdout.Write(md)
	} else {
		err = os.WriteFile(*out, md, 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "apidoc:", err)
		os.Exit(1)
	}
}
