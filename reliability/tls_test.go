package reliability

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestTLSSelfSigned: `moat serve --tls-self-signed` serves HTTPS with
// HTTP/2 and a certificate valid for 127.0.0.1, and refuses TLS 1.0 and
// 1.1 handshakes.
func TestTLSSelfSigned(t *testing.T) {
	p := startMoat(t, t.TempDir(), procOptions{Args: []string{"--tls-self-signed"}})
	if !strings.HasPrefix(p.Base, "https://") {
		t.Fatalf("moat logged tls=false: serving %s", p.Base)
	}
	cert := servedCert(t, p.Addr)

	// A client that trusts exactly the served certificate verifies it for
	// 127.0.0.1 and speaks HTTP/2.
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"},
		ForceAttemptHTTP2: true,
	}}
	defer client.CloseIdleConnections()
	resp, err := client.Get(p.Base + "/v2/")
	if err != nil {
		t.Fatalf("GET /v2/ with the certificate trusted: %v", err)
	}
	resp.Body.Close()
	if resp.TLS == nil {
		t.Fatalf("GET %s/v2/ was not answered over TLS", p.Base)
	}
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 || resp.TLS.Version < tls.VersionTLS12 {
		t.Errorf("GET /v2/: %s over %s and %s; want 200 over HTTP/2 and TLS 1.2+", resp.Status, resp.Proto, tls.VersionName(resp.TLS.Version))
	}

	for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11} {
		t.Run(tls.VersionName(v), func(t *testing.T) {
			conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", p.Addr,
				&tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS10, MaxVersion: v})
			if err == nil {
				conn.Close()
				t.Fatalf("a %s handshake succeeded; moat must refuse TLS older than 1.2", tls.VersionName(v))
			}
			// Any dial error is not enough (a dead server gives one too):
			// moat must answer with the protocol_version alert.
			if a, ok := remoteAlert(err); !ok || a != alertProtocolVersion {
				t.Errorf("a %s handshake failed with %v; want the server's protocol_version alert (%d)", tls.VersionName(v), err, alertProtocolVersion)
			}
			// The same server still completes a TLS 1.2 handshake.
			conn, err = tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", p.Addr,
				&tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS12})
			if err != nil {
				t.Fatalf("a TLS 1.2 handshake after the refused %s one: %v", tls.VersionName(v), err)
			}
			conn.Close()
		})
	}
}

// alertProtocolVersion is the TLS protocol_version alert (RFC 8446 6.2).
const alertProtocolVersion = 70

// remoteAlert is the alert the peer sent, if err is one. crypto/tls (Go
// 1.26) reports a received alert as a *net.OpError "remote error" wrapping
// its unexported alert type, a uint8, which tls.AlertError does not
// match: the code is read from that value.
func remoteAlert(err error) (uint8, bool) {
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "remote error" || oe.Err == nil {
		return 0, false
	}
	if a, ok := oe.Err.(tls.AlertError); ok {
		return uint8(a), true
	}
	v := reflect.ValueOf(oe.Err)
	if v.Kind() != reflect.Uint8 {
		return 0, false
	}
	return uint8(v.Uint()), true
}

// TestTLSCertReload: a config with tls.cert and tls.key serves those
// files; a certificate file that does not load leaves the previous one
// served; and a certificate written over them is served without a
// restart.
func TestTLSCertReload(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeCert(t, certFile, keyFile, 1001)
	cfg := filepath.Join(dir, "moat.yaml")
	yaml := "tls:\n  cert: " + certFile + "\n  key: " + keyFile + "\n"
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startMoat(t, t.TempDir(), procOptions{Args: []string{"--config", cfg}})
	if got := servedCert(t, p.Addr).SerialNumber.Int64(); got != 1001 {
		t.Fatalf("served serial %d, want 1001 from %s", got, certFile)
	}
	// A broken certificate file: the previous certificate stays served
	// past the reload check (every 2s).
	if err := os.WriteFile(certFile+".new", []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(certFile+".new", certFile); err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(500 * time.Millisecond) {
		if got := servedCert(t, p.Addr).SerialNumber.Int64(); got != 1001 {
			t.Fatalf("with a broken certificate file: served serial %d, want 1001", got)
		}
	}
	writeCert(t, certFile, keyFile, 1002)
	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		got := servedCert(t, p.Addr).SerialNumber.Int64()
		if got == 1002 {
			break
		}
		if got != 1001 {
			t.Fatalf("served serial %d, want 1001 or 1002", got)
		}
		if time.Now().After(deadline) {
			t.Fatal("the replaced certificate was not served within 20s")
		}
		<-tick.C
	}
}

// servedCert is the leaf certificate a TLS handshake with addr presents.
func servedCert(t *testing.T, addr string) *x509.Certificate {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("TLS handshake with %s: %v", addr, err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0]
}

// writeCert writes a self-signed certificate for 127.0.0.1 with the given
// serial, and its key, replacing each file by a rename.
func writeCert(t *testing.T, certFile, keyFile string, serial int64) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: "reliability test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	replace := func(path string, block *pem.Block) {
		tmp := path + ".new"
		if err := os.WriteFile(tmp, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	replace(keyFile, &pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	replace(certFile, &pem.Block{Type: "CERTIFICATE", Bytes: der})
}
