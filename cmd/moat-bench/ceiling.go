package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"syscall"
	"time"
)

// ceilingServer is the hidden `moat-bench ceiling-server`: a plain
// net/http server in its own process, like a registry. It answers every
// HEAD (and GET) of a manifest path with fixed manifest headers, /blob
// with http.ServeContent of a file, and /v2/ with 200.
func ceilingServer(args []string) error {
	fs := flag.NewFlagSet("ceiling-server", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:0", "listen address")
	file := fs.String("file", "", "file served at /blob")
	dgst := fs.String("digest", "", "Docker-Content-Digest of the manifest answers")
	size := fs.Int("manifest-size", 0, "Content-Length of the manifest answers")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the server's life to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer f.Close()
		defer pprof.StopCPUProfile()
	}
	length := strconv.Itoa(*size)
	etag := `"` + *dgst + `"`
	modtime := time.Unix(0, 0)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hdr := w.Header()
		switch {
		case r.URL.Path == "/blob" && *file != "":
			// An *os.File, as a registry serves a blob: ServeContent
			// sends it with sendfile.
			f, err := os.Open(*file)
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			defer f.Close()
			hdr.Set("Content-Type", "application/octet-stream")
			http.ServeContent(w, r, "", modtime, f)
		case r.URL.Path == "/v2/" || r.URL.Path == "/v2":
			hdr.Set("Content-Type", "application/json")
			hdr.Set("Content-Length", "2")
			_, _ = w.Write([]byte("{}"))
		default:
			hdr.Set("Content-Type", mediaManifest)
			hdr.Set("Content-Length", length)
			hdr.Set("Docker-Content-Digest", *dgst)
			hdr.Set("Docker-Distribution-Api-Version", "registry/2.0")
			hdr.Set("Etag", etag)
			w.WriteHeader(http.StatusOK)
		}
	})
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 30 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// FsyncCeiling writes size bytes of blob sequentially to a new file in
// dir in 1 MiB writes, fsyncs and closes it, reps times: the push
// ceiling, without hashing. MB/s is the median write's. before runs
// before each write, as before each registry's large push.
func FsyncCeiling(dir string, blob *largeBlob, reps int, before func()) Result {
	res := Result{Scenario: "push-large", Subject: ceilingFsync}
	path := filepath.Join(dir, "fsync-ceiling.bin")
	defer os.Remove(path)
	var errs errorLog
	var lat []time.Duration
	for range reps {
		before()
		start := time.Now()
		err := writeSynced(path, blob.Part(0, blob.Size()))
		errs.Add(err)
		if err == nil {
			lat = append(lat, time.Since(start))
		}
		_ = os.Remove(path)
	}
	s := Summarize(lat)
	res.Ops, res.Seconds = reps, s.Mean*float64(len(lat))/1000
	res.setErrors(&errs)
	var rate float64
	if s.P50 > 0 {
		rate = float64(blob.Size()) / 1e6 / (s.P50 / 1000)
	}
	res.add("MB/s", "MB/s", rate, true)
	return res
}

func writeSynced(path string, r io.Reader) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	// A plain loop, not io.Copy: copy_file_range would let the kernel
	// copy the file without the writes a registry does.
	for {
		n, rerr := io.ReadFull(r, buf)
		if n > 0 {
			if _, err := f.Write(buf[:n]); err != nil {
				f.Close()
				return err
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			f.Close()
			return rerr
		}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// HashRate is sha256 over size bytes from memory, in MB/s: what hashing
// costs a push on this CPU.
func HashRate(size int64) Result {
	res := Result{Scenario: "push-large", Subject: hashing}
	buf := make([]byte, 1<<20)
	fillRandom(newRand(3), buf)
	h := sha256.New()
	start := time.Now()
	for left := size; left > 0; left -= int64(len(buf)) {
		h.Write(buf[:min(int64(len(buf)), left)])
	}
	_ = h.Sum(nil)
	elapsed := time.Since(start)
	res.Ops, res.Seconds = 1, elapsed.Seconds()
	res.add("MB/s", "MB/s", mbps(size, elapsed, nil), true)
	return res
}

// PullCeiling GETs the ceiling server's /blob like pull-large does.
func (b *Bench) PullCeiling(ctx context.Context, t *Target) Result {
	res := Result{Scenario: "pull-large", Subject: ceilingPull}
	return b.pullLarge(ctx, t, res, func(ctx context.Context) error {
		return t.Client.getVerified(ctx, "", "/blob", b.large.Digest, b.large.Size())
	})
}

func ceilingArgs(listen, file, dgst string, manifestSize int) []string {
	return []string{"ceiling-server", "--listen", listen, "--file", file, "--digest", dgst, "--manifest-size", fmt.Sprint(manifestSize)}
}

// dropPageCache writes dirty pages back and drops the clean page cache
// (/proc/sys/vm/drop_caches; root only). Before a large write it puts
// every subject on the same footing: on a virtual machine a page cache
// that grows into guest memory never touched before costs several times
// the write itself (512 MiB written and fsynced: 1.3 s, against 0.18 s
// after a drop, on the machine of bench/results), so whichever subject
// wrote into memory freed by an earlier one would win.
func dropPageCache() error {
	syscall.Sync()
	return os.WriteFile("/proc/sys/vm/drop_caches", []byte("1"), 0)
}
