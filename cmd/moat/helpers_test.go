package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moat-registry/moat/auth"
	"github.com/moat-registry/moat/config"
	"github.com/moat-registry/moat/server"
)

const adminPassword = "admin-test-password"

// testServer is a real moat serving on a loopback port.
type testServer struct {
	url string
}

// shared is the one server the tests of this package share: a bcrypt of
// cost 11 takes seconds under the race detector, and each start costs two
// (bootstrap, then the admin's first login). Tests use names of their own,
// and those that change registry properties put them back (resetProperties).
var shared struct {
	once sync.Once
	ts   *testServer
	stop func()
	err  error
}

func TestMain(m *testing.M) {
	// Read by the server's bootstrap; set before any server starts.
	os.Setenv("MOAT_ADMIN_PASSWORD", adminPassword)
	code := m.Run()
	if shared.stop != nil {
		shared.stop()
	}
	os.Exit(code)
}

// sharedServer starts the shared server on first use.
func sharedServer(t *testing.T) *testServer {
	t.Helper()
	shared.once.Do(func() {
		dir, err := os.MkdirTemp("", "moat-cli-test-")
		if err != nil {
			shared.err = err
			return
		}
		var stop func()
		shared.ts, stop, shared.err = launch(dir)
		shared.stop = func() {
			stop()
			os.RemoveAll(dir)
		}
	})
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.ts
}

// launch starts moat in-process on a loopback port with Dev off, data in
// dir and the admin password of MOAT_ADMIN_PASSWORD, and waits until
// /readyz answers 200.
func launch(dir string) (*testServer, func(), error) {
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.Data = dir
	cfg.Dev = false
	// Many tests share the server and some log in wrongly on purpose: no
	// throttle on password guessing, or they would throttle each other.
	cfg.Limits.AuthFailuresPerMinute = 0
	srv, err := server.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return nil, nil, err
	}
	if err := srv.Start(); err != nil {
		_ = srv.Shutdown(context.Background())
		return nil, nil, err
	}
	stop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}
	ts := &testServer{url: "http://" + srv.Addr().String()}
	deadline := time.Now().Add(time.Minute)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		resp, err := http.Get(ts.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return ts, stop, nil
			}
		}
		if time.Now().After(deadline) {
			stop()
			return nil, nil, fmt.Errorf("moat at %s not ready within a minute (last: %v)", ts.url, err)
		}
		<-tick.C
	}
}

// resetProperties puts the registry properties back to the defaults when
// the test ends.
func (ts *testServer) resetProperties(t *testing.T) {
	t.Cleanup(func() {
		ts.api(t, http.MethodPatch, "/registry", map[string]any{"properties": auth.DefaultRegistryProperties()})
	})
}

// result is what one CLI run printed and its exit status.
type result struct {
	stdout, stderr string
	code           int
}

// adminEnv is an environment with the server and the admin's credentials
// in MOAT_* variables, and a login file location of the test's own.
func (ts *testServer) adminEnv(t *testing.T) map[string]string {
	dir := t.TempDir()
	return map[string]string{
		"MOAT_SERVER":   ts.url,
		"MOAT_USERNAME": "admin",
		"MOAT_PASSWORD": adminPassword,
		"MOAT_CONFIG":   filepath.Join(dir, "no-login.json"),
		"HOME":          dir,
	}
}

// envWith is env with the given variables set ("" removes one).
func envWith(env map[string]string, kv ...string) map[string]string {
	out := maps.Clone(env)
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			delete(out, kv[i])
		} else {
			out[kv[i]] = kv[i+1]
		}
	}
	return out
}

// runCLI runs the moat command line in-process.
func runCLI(t *testing.T, env map[string]string, stdin string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	getenv := func(k string) string { return env[k] }
	code := run(context.Background(), args, strings.NewReader(stdin), &out, &errb, getenv)
	return result{stdout: out.String(), stderr: errb.String(), code: code}
}

// admin runs the CLI as the admin and fails the test when it fails.
func (ts *testServer) admin(t *testing.T, args ...string) result {
	t.Helper()
	r := runCLI(t, ts.adminEnv(t), "", args...)
	if r.code != 0 {
		t.Fatalf("moat %s: exit %d, stderr %q", strings.Join(args, " "), r.code, r.stderr)
	}
	return r
}

// adminFails runs the CLI as the admin and expects a failure with one
// line on stderr that contains want.
func (ts *testServer) adminFails(t *testing.T, want string, args ...string) {
	t.Helper()
	expectFailure(t, runCLI(t, ts.adminEnv(t), "", args...), want, args)
}

func expectFailure(t *testing.T, r result, want string, args []string) {
	t.Helper()
	if r.code == 0 {
		t.Fatalf("moat %s: exit 0, want a failure (stdout %q)", strings.Join(args, " "), r.stdout)
	}
	if !strings.HasPrefix(r.stderr, "moat: ") || strings.Count(r.stderr, "\n") != 1 || !strings.HasSuffix(r.stderr, "\n") {
		t.Errorf("moat %s: stderr %q, want one line starting with \"moat: \"", strings.Join(args, " "), r.stderr)
	}
	if !strings.Contains(r.stderr, want) {
		t.Errorf("moat %s: stderr %q, want it to contain %q", strings.Join(args, " "), r.stderr, want)
	}
}

// api calls the admin API directly as the admin and returns the body.
func (ts *testServer) api(t *testing.T, method, path string, body any) []byte {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, ts.url+adminPrefix+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("admin", adminPassword)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	return b
}

// basicStatus is the status of GET /v2/ with Basic credentials.
func (ts *testServer) basicStatus(t *testing.T, username, password string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, ts.url+"/v2/", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(username, password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// sameJSON fails unless got and want are equal JSON documents.
func sameJSON(t *testing.T, got, want []byte) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, got)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatalf("API answer is not JSON: %v\n%s", err, want)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("JSON differs:\n got: %s\nwant: %s", got, want)
	}
}

// decodeOut decodes a command's JSON output.
func decodeOut[T any](t *testing.T, r result) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		t.Fatalf("output is not the expected JSON: %v\n%s", err, r.stdout)
	}
	return v
}

// tableRows splits table output into rows of fields (header first).
func tableRows(out string) [][]string {
	var rows [][]string
	for line := range strings.Lines(out) {
		if f := strings.Fields(line); len(f) > 0 {
			rows = append(rows, f)
		}
	}
	return rows
}

// hasRow reports whether some row of the table starts with fields.
func hasRow(out string, fields ...string) bool {
	for _, row := range tableRows(out) {
		if len(row) >= len(fields) && reflect.DeepEqual(row[:len(fields)], fields) {
			return true
		}
	}
	return false
}
