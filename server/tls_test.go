package server

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moat-registry/moat/config"
)

// TestCertificateReloadFailureIsLoggedOnce: a broken certificate file is
// reported at ERROR once, not at every handshake, and the previous
// certificate keeps serving; a new failure is reported again.
func TestCertificateReloadFailureIsLoggedOnce(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	cert, err := selfSigned(nil)
	if err != nil {
		t.Fatal(err)
	}
	key, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key}), 0o600); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var logs bytes.Buffer
	cs, err := newCertSource(config.TLSConfig{Cert: certFile, Key: keyFile}, nil,
		slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, nil)))
	if err != nil {
		t.Fatal(err)
	}
	good := cs.cert
	breakCert := func(content string, mod time.Time) {
		t.Helper()
		if err := os.WriteFile(certFile, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(certFile, mod, mod); err != nil {
			t.Fatal(err)
		}
	}
	handshakes := func(n int) {
		t.Helper()
		for range n {
			cs.mu.Lock()
			cs.checked = time.Time{} // past the check interval
			cs.mu.Unlock()
			if c, _ := cs.getCertificate(nil); c != good {
				t.Fatal("the previous certificate is no longer served")
			}
		}
	}
	errorLines := func() int {
		mu.Lock()
		defer mu.Unlock()
		return strings.Count(logs.String(), "level=ERROR")
	}
	breakCert("not a certificate", time.Now().Add(time.Minute))
	handshakes(5)
	if n := errorLines(); n != 1 {
		t.Errorf("%d ERROR lines for one broken file, want 1:\n%s", n, logs.String())
	}
	breakCert("still not a certificate", time.Now().Add(2*time.Minute))
	handshakes(5)
	if n := errorLines(); n != 2 {
		t.Errorf("%d ERROR lines after a second broken version, want 2:\n%s", n, logs.String())
	}
}
