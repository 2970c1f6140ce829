package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"sync"
	"syscall"
	"time"

	"github.com/moat-registry/moat/config"
	"github.com/moat-registry/moat/server"
)

// serveMoat is the hidden `moat-bench serve-moat`: moat's server (the
// same code `moat serve` runs) in this process, plus a control listener
// that starts and stops CPU profiles into files and writes heap profiles.
// moat itself serves no pprof; this harness is the bench's.
func serveMoat(args []string) error {
	fs := flag.NewFlagSet("serve-moat", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:5000", "registry listener")
	data := fs.String("data", "", "data directory")
	dev := fs.Bool("dev", true, "dev mode (anonymous loopback push and pull)")
	control := fs.String("control", "127.0.0.1:0", "profiling control listener")
	logLevel := fs.String("log-level", config.Default().Log.Level, "log level (moat's default logs every request at info)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg := config.Default()
	cfg.Listen, cfg.Data, cfg.Dev, cfg.Log.Level = *listen, *data, *dev, *logLevel
	if err := cfg.Validate(); err != nil {
		return err
	}
	// As `moat serve` logs: text to stderr at the configured level.
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.Log.Level)); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	srv, err := server.New(cfg, log)
	if err != nil {
		return err
	}
	if err := srv.Start(); err != nil {
		_ = srv.Shutdown(context.Background())
		return err
	}
	ln, err := net.Listen("tcp", *control)
	if err != nil {
		return err
	}
	ctl := &http.Server{Handler: profileControl(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = ctl.Serve(ln) }()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	_ = ctl.Close()
	pprof.StopCPUProfile()
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// profileControl answers POST /cpu/start?file=, POST /cpu/stop,
// POST /trace/start?file=, POST /trace/stop, POST /heap?file= and
// GET /mem (VmRSS, VmHWM and the Go heap in bytes).
func profileControl() http.Handler {
	var mu sync.Mutex
	var cpu, tr *os.File
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		var err error
		switch r.URL.Path {
		case "/cpu/start":
			if cpu != nil {
				err = errors.New("a CPU profile is running")
				break
			}
			if cpu, err = os.Create(r.URL.Query().Get("file")); err == nil {
				if err = pprof.StartCPUProfile(cpu); err != nil {
					cpu.Close()
					cpu = nil
				}
			}
		case "/cpu/stop":
			if cpu == nil {
				err = errors.New("no CPU profile is running")
				break
			}
			pprof.StopCPUProfile()
			err = cpu.Close()
			cpu = nil
		case "/trace/start":
			if tr != nil {
				err = errors.New("a trace is running")
				break
			}
			if tr, err = os.Create(r.URL.Query().Get("file")); err == nil {
				if err = trace.Start(tr); err != nil {
					tr.Close()
					tr = nil
				}
			}
		case "/trace/stop":
			if tr == nil {
				err = errors.New("no trace is running")
				break
			}
			trace.Stop()
			err = tr.Close()
			tr = nil
		case "/heap":
			runtime.GC()
			var f *os.File
			if f, err = os.Create(r.URL.Query().Get("file")); err == nil {
				err = errors.Join(pprof.Lookup("heap").WriteTo(f, 0), f.Close())
			}
		case "/mem":
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			rss, _ := procStatusKB(os.Getpid(), "VmRSS")
			hwm, _ := procStatusKB(os.Getpid(), "VmHWM")
			err = json.NewEncoder(w).Encode(map[string]uint64{
				"vmRSS": uint64(rss) * 1024, "vmHWM": uint64(hwm) * 1024,
				"heapInuse": ms.HeapInuse, "heapSys": ms.HeapSys, "stackInuse": ms.StackInuse, "sys": ms.Sys,
			})
		default:
			http.NotFound(w, r)
			return
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
}

// profiler asks a serve-moat child for one CPU profile (and with trace,
// one execution trace) per phase.
type profiler struct {
	control string // base URL of the control listener
	dir     string
	trace   bool
	files   []string
	errs    []error
}

func (p *profiler) post(path string) error {
	resp, err := http.Post(p.control+path, "", nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s: %s: %s", path, resp.Status, b)
	}
	return nil
}

// Start implements Phases.
func (p *profiler) Start(name string) {
	file := filepath.Join(p.dir, name+".cpu.pprof")
	if err := p.post("/cpu/start?file=" + url.QueryEscape(file)); err != nil {
		p.errs = append(p.errs, err)
		return
	}
	p.files = append(p.files, file)
	if p.trace {
		file := filepath.Join(p.dir, name+".trace")
		if err := p.post("/trace/start?file=" + url.QueryEscape(file)); err != nil {
			p.errs = append(p.errs, err)
			return
		}
		p.files = append(p.files, file)
	}
}

// Stop implements Phases.
func (p *profiler) Stop(string) {
	if err := p.post("/cpu/stop"); err != nil {
		p.errs = append(p.errs, err)
	}
	if p.trace {
		if err := p.post("/trace/stop"); err != nil {
			p.errs = append(p.errs, err)
		}
	}
}

// runProfile is `moat-bench profile`: moat's server in a serve-moat child
// process, the scenarios against it from this one, and a CPU profile of
// the server for every measured phase, written to --out-dir.
func runProfile(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("profile", flag.ContinueOnError)
	of := bindOptions(fs)
	outDir := fs.String("out-dir", filepath.Join("bench", "results", "profiles"), "where the profiles go")
	policy := fs.Bool("policy", false, "moat with --dev=false, bearer tokens and 100 ip rules")
	logLevel := fs.String("log-level", "info", "moat's log level (info, moat's default, logs every request)")
	withTrace := fs.Bool("trace", false, "also an execution trace per phase (go tool trace -pprof=syscall shows time blocked in syscalls such as fsync)")
	workdir := fs.String("workdir", "", "where the temp dir goes (default $TMPDIR)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	opts, err := of.options()
	if err != nil {
		return err
	}
	if *outDir, err = filepath.Abs(*outDir); err != nil {
		return err
	}
	if err := os.MkdirAll(*outDir, 0o755); err != nil {
		return err
	}
	dir, err := os.MkdirTemp(*workdir, "moat-bench-profile-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	self, err := os.Executable()
	if err != nil {
		return err
	}
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	caddr, err := freeAddr()
	if err != nil {
		return err
	}
	password := randomPassword()
	spec := procSpec{
		name:  "serve-moat",
		bin:   self,
		args:  []string{"serve-moat", "--listen", addr, "--data", filepath.Join(dir, "data"), "--control", caddr, "--log-level", *logLevel},
		addr:  addr,
		log:   filepath.Join(dir, "serve-moat.log"),
		ready: only200,
	}
	if *policy {
		spec.args = append(spec.args, "--dev=false")
		spec.env = []string{"MOAT_ADMIN_PASSWORD=" + password}
		spec.ready = upOrAuth
	}
	p, err := startProcess(spec)
	if err != nil {
		return err
	}
	defer p.Stop()
	user := ""
	if *policy {
		if err := waitReadyz(ctx, p.URL, 30*time.Second); err != nil {
			return err
		}
		if err := applyIPRules(ctx, p.URL, password, policyRuleCount); err != nil {
			return err
		}
		user = "admin"
	}
	c, err := NewClient(p.URL, max(opts.Concurrency, 16), user, password)
	if err != nil {
		return err
	}
	bench, err := NewBench(opts, dir)
	if err != nil {
		return err
	}
	defer bench.Close()
	prof := &profiler{control: "http://" + caddr, dir: *outDir, trace: *withTrace}
	bench.Phases = prof
	suite := &Suite{Bench: bench, Targets: []*Target{{Name: subjectMoat, Client: c, Proc: p}}, Workdir: dir, Progress: os.Stderr}
	results := suite.Run(ctx)
	heap := filepath.Join(*outDir, "heap-after.pprof")
	if err := prof.post("/heap?file=" + url.QueryEscape(heap)); err == nil {
		prof.files = append(prof.files, heap)
	}
	rep := newReport(opts, results)
	rep.Print(os.Stdout, []string{subjectMoat})
	fmt.Println()
	for _, f := range prof.files {
		fmt.Println("profile:", f)
	}
	return errors.Join(prof.errs...)
}
