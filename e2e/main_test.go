package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// TestMain runs the tests and then stops what they shared: the shared
// dockerd and the directory of the moat binary. Nothing starts here, so
// `go test -list` stays cheap.
func TestMain(m *testing.M) {
	code := m.Run()
	if err := stopSharedDockerd(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
	}
	if build.dir != "" {
		_ = os.RemoveAll(build.dir)
	}
	os.Exit(code)
}

// build is the moat binary the tests start, built once per test process.
var build struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// moatBinary builds ./cmd/moat on first use, with the race detector when
// the tests run with it, so a race in the server under real clients fails
// the test that provoked it.
func moatBinary() (string, error) {
	build.once.Do(func() {
		root, err := repoRoot()
		if err != nil {
			build.err = err
			return
		}
		build.dir, err = os.MkdirTemp("", "moat-e2e-")
		if err != nil {
			build.err = err
			return
		}
		build.path = filepath.Join(build.dir, "moat")
		args := []string{"build", "-buildvcs=false", "-o", build.path}
		if raceEnabled {
			args = append(args, "-race")
		}
		c := command{path: "go", args: append(args, "./cmd/moat"), dir: root, timeout: 10 * time.Minute}
		if _, out, err := c.output(context.Background()); err != nil {
			build.err = fmt.Errorf("$ %s\n%s\n%w", c, out, err)
		}
	})
	return build.path, build.err
}
