// Command moat is the moat registry: `moat serve` runs it, the other verbs
// manage a running one.
package main

import (
	"fmt"
	"os"
)

func main() {
	if err := newRootCommand().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "moat: "+err.Error())
		os.Exit(1)
	}
}
