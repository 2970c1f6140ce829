package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// dockerd is the docker daemon the docker tests share: one per test
// process, started on first use with its own socket, data root and exec
// root, and stopped by TestMain. Tests that use it must not run in
// parallel with each other unless they use distinct image names.
var dockerd struct {
	once   sync.Once
	daemon *dockerDaemon
	err    error
}

// dockerDaemon is a running dockerd.
type dockerDaemon struct {
	// host is its -H address: unix://<dir>/docker.sock.
	host    string
	dir     string
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
}

const (
	dockerdReadyTimeout = 90 * time.Second
	dockerdStopTimeout  = 30 * time.Second
)

// dockerClient is a docker CLI talking to the shared dockerd, which it
// starts on first use. It needs dockerd on $PATH and root.
func dockerClient(t testing.TB) *client {
	t.Helper()
	c := newClient(t, "docker")
	daemonPath := lookTool(t, "dockerd")
	if os.Geteuid() != 0 {
		unavailable(t, "the docker tests start their own dockerd, which needs root")
	}
	dockerd.once.Do(func() {
		dockerd.daemon, dockerd.err = startDockerd(c, daemonPath)
	})
	if dockerd.err != nil {
		t.Fatal(dockerd.err)
	}
	c.globalArgs = []string{"-H", dockerd.daemon.host}
	return c
}

// startDockerd starts dockerd with vfs storage and no networking set-up
// (no iptables, no bridge), then polls `docker version` until the daemon
// answers. cli is the client it polls with.
func startDockerd(cli *client, daemonPath string) (*dockerDaemon, error) {
	// A unix socket path must stay under 108 bytes: keep it short.
	dir, err := os.MkdirTemp("/tmp", "d")
	if err != nil {
		return nil, err
	}
	d := &dockerDaemon{host: "unix://" + filepath.Join(dir, "docker.sock"), dir: dir, exited: make(chan struct{})}
	config := filepath.Join(dir, "daemon.json")
	if err := os.WriteFile(config, []byte("{}\n"), 0o600); err != nil {
		return nil, err
	}
	logFile, err := os.Create(filepath.Join(dir, "dockerd.log"))
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	d.cmd = exec.Command(daemonPath,
		"--config-file", config, // not /etc/docker/daemon.json
		"--storage-driver=vfs",
		"--iptables=false", "--ip6tables=false", "--bridge=none",
		"--data-root", filepath.Join(dir, "data"),
		"--exec-root", filepath.Join(dir, "exec"),
		"--pidfile", filepath.Join(dir, "docker.pid"),
		"-H", d.host,
	)
	d.cmd.Stdout, d.cmd.Stderr = logFile, logFile
	d.cmd.SysProcAttr = childProcAttr()
	if err := d.cmd.Start(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("start dockerd: %w", err)
	}
	go func() {
		d.waitErr = d.cmd.Wait()
		close(d.exited)
	}()
	if err := d.waitReady(cli); err != nil {
		_ = d.stop()
		return nil, err
	}
	return d, nil
}

// waitReady polls `docker version` with a growing pause until it
// succeeds, dockerd exits or dockerdReadyTimeout passes.
func (d *dockerDaemon) waitReady(cli *client) error {
	ctx, cancel := context.WithTimeout(context.Background(), dockerdReadyTimeout)
	defer cancel()
	version := cli.cmd("-H", d.host, "version")
	version.timeout = 10 * time.Second
	pause := 50 * time.Millisecond
	for {
		_, out, err := version.output(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-d.exited:
			return fmt.Errorf("dockerd exited: %v\n%s", d.waitErr, d.log())
		case <-ctx.Done():
			return fmt.Errorf("dockerd did not answer within %s: %v\n%s\ndockerd log:\n%s", dockerdReadyTimeout, err, out, d.log())
		case <-time.After(pause):
		}
		pause = min(2*pause, time.Second)
	}
}

func (d *dockerDaemon) log() string {
	b, _ := os.ReadFile(filepath.Join(d.dir, "dockerd.log"))
	return tail(string(b), 60)
}

// stop ends dockerd with SIGTERM (SIGKILL after dockerdStopTimeout) and
// removes its directory.
func (d *dockerDaemon) stop() error {
	var err error
	select {
	case <-d.exited:
	default:
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.exited:
		case <-time.After(dockerdStopTimeout):
			_ = d.cmd.Process.Kill()
			<-d.exited
			err = fmt.Errorf("dockerd did not stop within %s of SIGTERM", dockerdStopTimeout)
		}
	}
	detachMounts(d.dir)
	return errors.Join(err, os.RemoveAll(d.dir))
}

// stopSharedDockerd stops the shared dockerd if a test started it.
func stopSharedDockerd() error {
	if dockerd.daemon == nil {
		return nil
	}
	return dockerd.daemon.stop()
}

// TestDocker imports a root filesystem into docker, pushes it to moat,
// removes it locally, pulls it back and checks that docker's repo digest
// is the digest moat serves.
func TestDocker(t *testing.T) {
	docker := dockerClient(t)
	docker.logVersion(t)
	m := startMoat(t, moatOptions{})
	engineRoundTrip(t, m, imageEngine{cli: docker}, "docker/app", "1")
}
