package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"sync"
	"time"

	"github.com/moat-registry/moat/config"
)

// certSource serves the TLS certificate: from cert/key files, reloaded
// when either file changes (checked at most every few seconds), or a
// self-signed one generated at start for development.
type certSource struct {
	certFile, keyFile string
	log               *slog.Logger

	mu      sync.Mutex
	cert    *tls.Certificate
	modCert time.Time
	modKey  time.Time
	checked time.Time
	// failed is the last reload failure logged, so that one is logged
	// once, not at every handshake; "" after a success.
	failed string
}

func newCertSource(c config.TLSConfig, hosts []string, log *slog.Logger) (*certSource, error) {
	if c.SelfSigned {
		cert, err := selfSigned(hosts)
		if err != nil {
			return nil, err
		}
		return &certSource{cert: cert, log: log}, nil
	}
	cs := &certSource{certFile: c.Cert, keyFile: c.Key, log: log}
	if err := cs.load(); err != nil {
		return nil, err
	}
	return cs, nil
}

func (cs *certSource) load() error {
	ci, err := os.Stat(cs.certFile)
	if err != nil {
		return err
	}
	ki, err := os.Stat(cs.keyFile)
	if err != nil {
		return err
	}
	cert, err := tls.LoadX509KeyPair(cs.certFile, cs.keyFile)
	if err != nil {
		return err
	}
	cs.cert, cs.modCert, cs.modKey = &cert, ci.ModTime(), ki.ModTime()
	return nil
}

// getCertificate reloads the files when they changed; a failed reload
// keeps serving the previous certificate and is logged at ERROR, once
// for each distinct failure.
func (cs *certSource) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.certFile != "" && time.Since(cs.checked) > 2*time.Second {
		cs.checked = time.Now()
		ci, err1 := os.Stat(cs.certFile)
		ki, err2 := os.Stat(cs.keyFile)
		var err error
		switch {
		case err1 != nil || err2 != nil:
			err = errors.Join(err1, err2)
		case !ci.ModTime().Equal(cs.modCert) || !ki.ModTime().Equal(cs.modKey):
			if err = cs.load(); err == nil {
				cs.log.Info("reloaded the TLS certificate", "cert", cs.certFile)
				cs.failed = ""
			} else {
				// Another attempt at the same files fails the same way.
				err = fmt.Errorf("%w (cert modified %s, key modified %s)", err, ci.ModTime().Format(time.RFC3339Nano), ki.ModTime().Format(time.RFC3339Nano))
			}
		default: // the files loaded last, back in place
			cs.failed = ""
		}
		if err != nil && err.Error() != cs.failed {
			cs.failed = err.Error()
			cs.log.Error("reloading the TLS certificate failed; still serving the previous one", "cert", cs.certFile, "key", cs.keyFile, "err", err)
		}
	}
	return cs.cert, nil
}

// config is the TLS configuration of moat's listeners: TLS 1.2 or newer,
// HTTP/2 offered.
func (cs *certSource) config() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: cs.getCertificate,
		NextProtos:     []string{"h2", "http/1.1"},
	}
}

// selfSigned makes a development certificate for the given hosts and the
// loopback names.
func selfSigned(hosts []string) (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "moat development certificate"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" && h != "localhost" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
