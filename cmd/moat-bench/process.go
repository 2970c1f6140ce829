package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Process is a server the bench started: a registry or the ceiling
// server.
type Process struct {
	Name    string
	URL     string
	Data    string // its data directory, if any
	Startup time.Duration

	spec    procSpec
	cmd     *exec.Cmd
	logFile *os.File
	done    chan struct{}
	waitErr error
}

// procSpec says how to start a server and when it is up.
type procSpec struct {
	name string
	bin  string
	args []string
	env  []string
	addr string // host:port it listens on
	data string
	log  string // where its stdout and stderr go
	// ready reports whether an answer of GET /v2/ means the server is up.
	ready func(status int) bool
}

// only200 is the readiness of a registry without authentication.
func only200(status int) bool { return status == http.StatusOK }

// upOrAuth is the readiness of a registry that wants credentials.
func upOrAuth(status int) bool { return status == http.StatusOK || status == http.StatusUnauthorized }

// startProcess execs spec and polls GET /v2/ tightly until it answers;
// Startup is the time from exec to that answer.
func startProcess(spec procSpec) (*Process, error) {
	lf, err := os.OpenFile(spec.log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(spec.bin, spec.args...)
	cmd.Env = append(os.Environ(), spec.env...)
	cmd.Stdout, cmd.Stderr = lf, lf
	p := &Process{Name: spec.name, URL: "http://" + spec.addr, Data: spec.data, spec: spec, cmd: cmd, logFile: lf, done: make(chan struct{})}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("starting %s: %w", spec.name, err)
	}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	d, err := waitReady(p.URL, start, 60*time.Second, p.done, spec.ready)
	if err != nil {
		_ = p.Stop()
		return nil, fmt.Errorf("%s: %w (log: %s%s)", spec.name, err, spec.log, tail(spec.log))
	}
	p.Startup = d
	return p, nil
}

// Restart stops the process and starts it again on the same data.
func (p *Process) Restart() (*Process, error) {
	if err := p.Stop(); err != nil {
		return nil, err
	}
	return startProcess(p.spec)
}

// waitReady polls GET base/v2/ on fresh connections, every 100µs, until
// ready accepts the status; it returns the time since start.
func waitReady(base string, start time.Time, timeout time.Duration, exited <-chan struct{}, ready func(int) bool) (time.Duration, error) {
	tr := &http.Transport{DisableKeepAlives: true, Proxy: nil}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	for {
		resp, err := hc.Get(base + "/v2/")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if ready(resp.StatusCode) {
				return time.Since(start), nil
			}
		}
		select {
		case <-exited:
			return 0, errors.New("exited before answering /v2/")
		default:
		}
		if time.Since(start) > timeout {
			return 0, fmt.Errorf("no answer on /v2/ after %s (last: %v)", timeout, err)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// Stop sends SIGTERM and waits (SIGKILL after 30s).
func (p *Process) Stop() error {
	defer p.logFile.Close()
	select {
	case <-p.done:
		return nil
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	return nil
}

// CPUTime is the user and system CPU time the process has used.
func (p *Process) CPUTime() (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.Pid()))
	if err != nil {
		return 0, err
	}
	// The fields after the command's closing parenthesis start with the
	// state (field 3); utime and stime are fields 14 and 15, in ticks.
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	if i < 0 || len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", p.Pid())
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", p.Pid())
	}
	const tick = 10 * time.Millisecond // USER_HZ is 100 on Linux
	return time.Duration(utime+stime) * tick, nil
}

// Pid is the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// StatusKB reads a "kB" field of /proc/<pid>/status (VmRSS, VmHWM).
func (p *Process) StatusKB(field string) (int64, error) {
	return procStatusKB(p.Pid(), field)
}

func procStatusKB(pid int, field string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || k != field {
			continue
		}
		num, _, _ := strings.Cut(strings.TrimSpace(v), " ")
		return strconv.ParseInt(num, 10, 64)
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("/proc/%d/status has no %s", pid, field)
}

// load1 is the 1-minute load average (0 when unknown).
func load1() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f, _, _ := strings.Cut(string(b), " ")
	v, _ := strconv.ParseFloat(f, 64)
	return v
}

// kbToMB converts a /proc kB (KiB) figure to MB (10^6 bytes).
func kbToMB(kb int64) float64 { return float64(kb) * 1024 / 1e6 }

// freeAddr finds a free loopback port.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// tail is the end of a log file, for an error message.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil || len(b) == 0 {
		return ""
	}
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return "\n" + string(b)
}

// moatSpec runs `moat serve` on a fresh port over data, with env added to
// its environment. policy turns dev off and sets the admin password.
func moatSpec(bin, name, data, logDir string, env []string, policy bool, adminPassword string) (procSpec, error) {
	addr, err := freeAddr()
	if err != nil {
		return procSpec{}, err
	}
	s := procSpec{
		name:  name,
		bin:   bin,
		args:  []string{"serve", "--listen", addr, "--data", data},
		env:   env,
		addr:  addr,
		data:  data,
		log:   filepath.Join(logDir, name+".log"),
		ready: only200,
	}
	if policy {
		s.args = append(s.args, "--dev=false")
		s.env = append(slices.Clip(s.env), "MOAT_ADMIN_PASSWORD="+adminPassword)
		s.ready = upOrAuth
	}
	return s, nil
}

// distributionConfig is CNCF Distribution's configuration for the bench:
// filesystem storage, deletes on, the in-memory blob descriptor cache of
// its shipped config, errors only and no access log.
const distributionConfig = `version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: %s
`

// distributionSpec runs `registry serve config.yml` on a fresh port over
// data.
func distributionSpec(bin, name, data, logDir string) (procSpec, error) {
	addr, err := freeAddr()
	if err != nil {
		return procSpec{}, err
	}
	if err := os.MkdirAll(data, 0o700); err != nil {
		return procSpec{}, err
	}
	cfg := filepath.Join(logDir, name+".yml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, distributionConfig, data, addr), 0o600); err != nil {
		return procSpec{}, err
	}
	return procSpec{
		name:  name,
		bin:   bin,
		args:  []string{"serve", cfg},
		addr:  addr,
		data:  data,
		log:   filepath.Join(logDir, name+".log"),
		ready: only200,
	}, nil
}
