// Package packaging holds the Dockerfile's config, the systemd unit and
// an example configuration; its tests keep them valid.
package packaging_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/moat-registry/moat/config"
)

func TestConfigsValidate(t *testing.T) {
	for _, f := range []string{"moat.yaml", "container.yaml"} {
		t.Run(f, func(t *testing.T) {
			c, err := config.Load(f)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
			if c.ListenIsLoopback() {
				t.Errorf("listen %s: a packaged moat serves beyond loopback", c.Listen)
			}
		})
	}
}

// The commented-out sections of moat.yaml are valid once uncommented.
func TestCommentedExamplesValidate(t *testing.T) {
	b, err := os.ReadFile("moat.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var yaml strings.Builder
	in := false
	for line := range strings.SplitSeq(string(b), "\n") {
		if line == "#notifications:" || line == "#tracing:" {
			in = true
		} else if !strings.HasPrefix(line, "#") {
			in = false
		}
		if in {
			yaml.WriteString(strings.TrimPrefix(line, "#") + "\n")
		}
	}
	c := config.Default()
	if err := config.Parse([]byte(yaml.String()), &c); err != nil {
		t.Fatalf("%v\n%s", err, yaml.String())
	}
	if len(c.Notifications.Endpoints) == 0 || c.Tracing.Endpoint == "" {
		t.Fatalf("no notifications or tracing example found in:\n%s", yaml.String())
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`(?m)^FROM golang:1\.26 AS build$`,
		`CGO_ENABLED=0 go build -trimpath`,
		`-X github.com/moat-registry/moat/server\.Version=\$\{VERSION\}`,
		`(?m)^FROM gcr\.io/distroless/static-debian12:nonroot$`,
		`(?m)^USER 65532:65532$`,
		`(?m)^EXPOSE 5000$`,
		`(?m)^VOLUME /data$`,
		`(?m)^COPY packaging/container\.yaml /etc/moat/moat\.yaml$`,
		`(?m)^ENTRYPOINT \["/usr/local/bin/moat", "serve", "--config", "/etc/moat/moat\.yaml"\]$`,
	} {
		if !regexp.MustCompile(want).Match(b) {
			t.Errorf("Dockerfile does not match %s", want)
		}
	}
}

func TestSystemdUnit(t *testing.T) {
	b, err := os.ReadFile("moat.service")
	if err != nil {
		t.Fatal(err)
	}
	unit := string(b)
	for _, want := range []string{
		"ExecStart=/usr/local/bin/moat serve --config /etc/moat/moat.yaml",
		"DynamicUser=yes", "StateDirectory=moat", "NoNewPrivileges=yes", "ProtectSystem=strict",
		"ProtectHome=yes", "PrivateTmp=yes", "PrivateDevices=yes", "CapabilityBoundingSet=\n",
		"RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX", "SystemCallFilter=@system-service",
		"MemoryDenyWriteExecute=yes", "Environment=MOAT_DATA=/var/lib/moat",
	} {
		if !strings.Contains(unit, want) {
			t.Errorf("moat.service has no %q", strings.TrimSpace(want))
		}
	}
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("no systemd-analyze to verify the unit with")
	}
	// verify wants the binary to exist; check everything else.
	dir := t.TempDir()
	path := filepath.Join(dir, "moat.service")
	if err := os.WriteFile(path, []byte(strings.Replace(unit, "ExecStart=/usr/local/bin/moat", "ExecStart=/bin/true", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
