package api_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/routers/gorillamux"
	"golang.org/x/crypto/bcrypt"

	"github.com/moat-registry/moat/api"
	"github.com/moat-registry/moat/config"
	"github.com/moat-registry/moat/server"
)

// The bootstrap admin's secret is hashed with bcrypt at cost 11, which
// takes seconds under the race detector; so does every first login with
// it. Each test's server therefore starts on a copy of a template data
// directory, bootstrapped once per test process, in which the admin's
// secret is the same password imported as a cost-4 hash (bcryptHash, the
// htpasswd import). The copies start with MOAT_ADMIN_PASSWORD empty, so
// their bootstrap has nothing to do.
var template struct {
	once sync.Once
	dir  string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if template.dir != "" {
		_ = os.RemoveAll(template.dir)
	}
	os.Exit(code)
}

// cheapHash is a cost-4 bcrypt hash of password, for identities that
// tests log in with (importing it needs Owner).
func cheapHash(t testing.TB, password string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// templateDir returns the bootstrapped template data directory.
func templateDir(t *testing.T) string {
	t.Helper()
	template.once.Do(func() {
		template.dir, template.err = makeTemplate(t)
	})
	if template.err != nil {
		t.Fatalf("preparing the template data directory: %v", template.err)
	}
	return template.dir
}

func makeTemplate(t *testing.T) (string, error) {
	dir, err := os.MkdirTemp("", "moat-api-template-")
	if err != nil {
		return "", err
	}
	t.Setenv("MOAT_ADMIN_PASSWORD", adminPassword)
	srv, base, err := serve(dir)
	if err != nil {
		return dir, err
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()
	client := &http.Client{Timeout: time.Minute}
	defer client.CloseIdleConnections()
	if err := waitReady(client, base); err != nil {
		return dir, err
	}
	send := func(method, path, body string, want int) error {
		req, err := http.NewRequest(method, base+api.Prefix+path, strings.NewReader(body))
		if err != nil {
			return err
		}
		req.SetBasicAuth(admin.user, admin.pass)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, b)
		}
		return nil
	}
	if err := send(http.MethodPost, "/identities/admin/secrets", `{"bcryptHash":"`+cheapHash(t, adminPassword)+`"}`, http.StatusCreated); err != nil {
		return dir, err
	}
	return dir, send(http.MethodDelete, "/identities/admin/secrets/bootstrap", "", http.StatusNoContent)
}

// serve starts a server on data dir (Dev off, a free loopback port).
func serve(dataDir string) (*server.Server, string, error) {
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.Data = dataDir
	cfg.Dev = false
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := server.New(cfg, logger)
	if err != nil {
		return nil, "", fmt.Errorf("server.New: %w", err)
	}
	if err := srv.Start(); err != nil {
		return nil, "", fmt.Errorf("Start: %w", err)
	}
	return srv, "http://" + srv.Addr().String(), nil
}

// waitReady polls /readyz until it answers 200 or a deadline passes.
func waitReady(client *http.Client, base string) error {
	deadline := time.Now().Add(time.Minute)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		resp, err := client.Get(base + "/readyz")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready within a minute: %w", err)
		}
		<-tick.C
	}
}

// start runs a fresh server for the test on a copy of the template data
// directory and waits until it is ready; it stops with the test.
func start(t *testing.T) *env {
	t.Helper()
	d, err := doc()
	if err != nil {
		t.Fatalf("loading the OpenAPI document: %v", err)
	}
	router, err := gorillamux.NewRouter(d)
	if err != nil {
		t.Fatalf("routing the OpenAPI document: %v", err)
	}
	data := t.TempDir()
	if err := os.CopyFS(data, os.DirFS(templateDir(t))); err != nil {
		t.Fatal(err)
	}
	t.Setenv("MOAT_ADMIN_PASSWORD", "")
	srv, base, err := serve(data)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	e := &env{
		srv: srv, base: base, doc: d, router: router,
		client:  &http.Client{Timeout: 30 * time.Second},
		covered: map[string]bool{},
		vars:    map[string]string{},
	}
	t.Cleanup(e.client.CloseIdleConnections)
	if err := waitReady(e.client, base); err != nil {
		t.Fatal(err)
	}
	return e
}
