package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// soakOptions shape a soak: many clients pushing, pulling and deleting at
// once while garbage collection runs, for a while, then a check that
// nothing acknowledged was lost.
type soakOptions struct {
	URL                string
	Username, Password string // the admin, for POST /admin/v1/gc
	Workers            int
	Duration           time.Duration
	GCEvery            time.Duration
	GCGrace            time.Duration
	Seed               uint64
}

// soakReport is what a soak did.
type soakReport struct {
	Requests       int64    `json:"requests"`
	Pushes         int64    `json:"pushes"`
	Pulls          int64    `json:"pulls"`
	Deletes        int64    `json:"deletes"`
	Retries        int64    `json:"retries"`
	GCRuns         int64    `json:"gcRuns"`
	BytesReclaimed int64    `json:"bytesReclaimed"`
	Verified       int64    `json:"verified"`
	Errors         int64    `json:"errors"`
	ErrorSamples   []string `json:"errorSamples,omitempty"`
	Seconds        float64  `json:"seconds"`
}

// soakPool is the layers images share: pushed again and again by many
// clients, deleted with their last image, collected, pushed again.
const soakPool = 8

func runSoakVerb(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	var o soakOptions
	fs.StringVar(&o.URL, "url", "", "registry base URL (http://127.0.0.1:5000)")
	fs.StringVar(&o.Username, "username", "", "admin username (for garbage collection; data-plane requests use it too)")
	fs.StringVar(&o.Password, "password", "", "admin password")
	fs.IntVar(&o.Workers, "concurrency", 64, "concurrent clients")
	fs.DurationVar(&o.Duration, "duration", 10*time.Minute, "how long the load runs")
	fs.DurationVar(&o.GCEvery, "gc-every", 5*time.Second, "pause between garbage collections (0: none)")
	fs.DurationVar(&o.GCGrace, "gc-grace", 5*time.Second, "grace period of those collections (under 1m is forced)")
	fs.Uint64Var(&o.Seed, "seed", 1, "content seed")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.URL == "" {
		return errors.New("soak: --url is required")
	}
	rep, err := soak(ctx, o)
	b, _ := json.MarshalIndent(rep, "", "  ")
	fmt.Fprintln(os.Stdout, string(b))
	if err != nil {
		return err
	}
	if rep.Errors > 0 {
		return fmt.Errorf("soak: %d errors", rep.Errors)
	}
	return nil
}

type soakImage struct {
	repo, tag string
	img       smallImage
	shared    []byte
}

type soakRun struct {
	o   soakOptions
	c   *Client
	rep soakReport
	mu  sync.Mutex
}

func (s *soakRun) fail(err error) {
	atomic.AddInt64(&s.rep.Errors, 1)
	s.mu.Lock()
	if len(s.rep.ErrorSamples) < 20 {
		s.rep.ErrorSamples = append(s.rep.ErrorSamples, err.Error())
	}
	s.mu.Unlock()
}

// soak runs the load, then pulls every image that should exist and checks
// every deleted one is gone.
func soak(ctx context.Context, o soakOptions) (soakReport, error) {
	c, err := NewClient(o.URL, o.Workers, o.Username, o.Password)
	if err != nil {
		return soakReport{}, err
	}
	defer c.Close()
	s := &soakRun{o: o, c: c}
	start := time.Now()
	runCtx, cancel := context.WithTimeout(ctx, o.Duration)
	defer cancel()
	pool := make([][]byte, soakPool)
	rng := newRand(o.Seed)
	for i := range pool {
		pool[i] = make([]byte, smallLayerSize)
		fillRandom(rng, pool[i])
	}
	live := make([][]soakImage, o.Workers)
	gone := make([][]soakImage, o.Workers)
	var wg sync.WaitGroup
	for w := range o.Workers {
		wg.Go(func() { live[w], gone[w] = s.worker(runCtx, w, pool) })
	}
	if o.GCEvery > 0 && o.Username != "" {
		wg.Go(func() { s.collect(runCtx) })
	}
	wg.Wait()
	// Verification: everything acknowledged and not deleted reads back.
	for w := range o.Workers {
		for _, im := range live[w] {
			if err := s.pull(ctx, im); err != nil {
				s.fail(fmt.Errorf("after the soak %s:%s: %w", im.repo, im.tag, err))
				continue
			}
			atomic.AddInt64(&s.rep.Verified, 1)
		}
		for _, im := range gone[w] {
			_, err := c.GetManifest(ctx, im.repo, im.img.Digest, im.img.Digest)
			var se *StatusError
			if !errors.As(err, &se) || se.Status != http.StatusNotFound {
				s.fail(fmt.Errorf("after the soak, deleted %s@%s answers %v, want 404", im.repo, im.img.Digest, err))
				continue
			}
			atomic.AddInt64(&s.rep.Verified, 1)
		}
	}
	s.rep.Seconds = time.Since(start).Seconds()
	return s.rep, ctx.Err()
}

// worker owns its images: it pushes new ones, pulls and deletes its own.
func (s *soakRun) worker(ctx context.Context, w int, pool [][]byte) (live, gone []soakImage) {
	rng := rand.New(rand.NewPCG(s.o.Seed, uint64(w)))
	repo := fmt.Sprintf("soak/w%02d", w%16)
	for n := 0; ctx.Err() == nil; n++ {
		switch op := rng.IntN(10); {
		case op < 5 || len(live) == 0:
			shared := pool[rng.IntN(len(pool))]
			unique := make([]byte, 512)
			for i := range unique {
				unique[i] = byte(rng.Uint32())
			}
			im := soakImage{repo: repo, tag: fmt.Sprintf("w%02d-%d", w, n), shared: shared}
			im.img = buildSoakImage(im.tag, shared, unique, w*1_000_000+n)
			if err := s.push(ctx, im, unique); err != nil {
				// A push cut by the end of the soak may have landed or
				// not; it is not in live, so nothing checks it.
				if ctx.Err() == nil {
					s.fail(fmt.Errorf("push %s:%s: %w", im.repo, im.tag, err))
				}
				continue
			}
			atomic.AddInt64(&s.rep.Pushes, 1)
			live = append(live, im)
		case op < 8:
			// A pull cut by the end of the soak changes nothing on the
			// server: the image stays live and is verified afterwards.
			im := live[rng.IntN(len(live))]
			if err := s.pull(ctx, im); err != nil {
				if ctx.Err() == nil {
					s.fail(fmt.Errorf("pull %s:%s: %w", im.repo, im.tag, err))
				}
				continue
			}
			atomic.AddInt64(&s.rep.Pulls, 1)
		default:
			i := rng.IntN(len(live))
			im := live[i]
			if err := s.delete(ctx, im); err != nil {
				if ctx.Err() == nil {
					s.fail(fmt.Errorf("delete %s@%s: %w", im.repo, im.img.Digest, err))
					continue
				}
				// The soak ended with the DELETE in flight: the server
				// may or may not have deleted the image. Its state is
				// unknown, so it is verified neither as live nor as gone.
				live = append(live[:i], live[i+1:]...)
				continue
			}
			atomic.AddInt64(&s.rep.Deletes, 1)
			live = append(live[:i], live[i+1:]...)
			gone = append(gone, im)
		}
	}
	return live, gone
}

// buildSoakImage is a two-layer image: a shared layer and its own.
func buildSoakImage(tag string, shared, unique []byte, index int) smallImage {
	img := buildImage(tag, unique, index)
	var m manifest
	_ = json.Unmarshal(img.Manifest, &m)
	m.Layers = append([]descriptor{{MediaType: mediaLayer, Digest: sha256Digest(shared), Size: int64(len(shared))}}, m.Layers...)
	img.Manifest, _ = json.Marshal(m)
	img.Digest = sha256Digest(img.Manifest)
	return img
}

// push uploads the blobs and the manifest. A blob collected between its
// upload and the manifest (possible with a short grace period) makes the
// manifest answer MANIFEST_BLOB_UNKNOWN: the client uploads again, as
// real clients do; that is a retry, not an error.
func (s *soakRun) push(ctx context.Context, im soakImage, unique []byte) error {
	for attempt := 0; ; attempt++ {
		for _, b := range [][]byte{im.shared, unique, im.img.Config} {
			atomic.AddInt64(&s.rep.Requests, 2)
			if err := s.c.PushBlob(ctx, im.repo, sha256Digest(b), int64(len(b)), func() io.Reader { return bytes.NewReader(b) }); err != nil {
				return err
			}
		}
		atomic.AddInt64(&s.rep.Requests, 1)
		err := s.c.PutManifest(ctx, im.repo, im.tag, mediaManifest, im.img.Manifest)
		var se *StatusError
		if err != nil && attempt < 3 && errors.As(err, &se) && se.Status == http.StatusBadRequest && strings.Contains(se.Body, "MANIFEST_BLOB_UNKNOWN") {
			atomic.AddInt64(&s.rep.Retries, 1)
			continue
		}
		return err
	}
}

// pull fetches the manifest and every blob, verifying each digest.
func (s *soakRun) pull(ctx context.Context, im soakImage) error {
	atomic.AddInt64(&s.rep.Requests, 1)
	b, err := s.c.GetManifest(ctx, im.repo, im.tag, im.img.Digest)
	if err != nil {
		return err
	}
	var m manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	for _, d := range append([]descriptor{m.Config}, m.Layers...) {
		atomic.AddInt64(&s.rep.Requests, 1)
		if err := s.c.GetBlob(ctx, im.repo, d.Digest, d.Size); err != nil {
			return err
		}
	}
	return nil
}

func (s *soakRun) delete(ctx context.Context, im soakImage) error {
	atomic.AddInt64(&s.rep.Requests, 1)
	var req *http.Request
	resp, err := s.c.Do(ctx, "repository:"+im.repo+":delete", func(ctx context.Context) (*http.Request, error) {
		var err error
		req, err = s.c.request(ctx, http.MethodDelete, "/v2/"+im.repo+"/manifests/"+im.img.Digest, nil, 0)
		return req, err
	})
	if err != nil {
		return err
	}
	return expect(req, resp, http.StatusAccepted)
}

// collect runs garbage collections through the admin API while the load
// runs.
func (s *soakRun) collect(ctx context.Context) {
	t := time.NewTicker(s.o.GCEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		body, _ := json.Marshal(map[string]any{"gracePeriod": s.o.GCGrace.String(), "force": s.o.GCGrace < time.Minute})
		u, _ := s.c.URL("/admin/v1/gc")
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
		if err != nil {
			return
		}
		req.SetBasicAuth(s.o.Username, s.o.Password)
		req.Header.Set("Content-Type", "application/json")
		resp, err := s.c.hc.Do(req)
		if err != nil {
			if ctx.Err() == nil {
				s.fail(fmt.Errorf("gc: %w", err))
			}
			return
		}
		var rep struct {
			BytesReclaimed int64 `json:"bytesReclaimed"`
		}
		err = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&rep)
		resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusConflict: // one at a time
		case resp.StatusCode != http.StatusOK || err != nil:
			s.fail(fmt.Errorf("gc: %s", resp.Status))
		default:
			atomic.AddInt64(&s.rep.GCRuns, 1)
			atomic.AddInt64(&s.rep.BytesReclaimed, rep.BytesReclaimed)
		}
	}
}
