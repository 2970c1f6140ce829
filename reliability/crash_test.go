package reliability

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// crashKills is how many times TestCrashConsistency kills moat.
// MOAT_CRASH_KILLS overrides it; MOAT_CRASH_SEED fixes the seed of the
// workload and of the kill schedule (the timing of a kill against the
// server's progress cannot be replayed exactly).
const crashKills = 50

// crashWorkers push, tag and delete concurrently, each in a repository
// of its own, so that each repository's history is sequential and the
// only uncertain operation in it is the one a kill interrupted.
const crashWorkers = 3

// TestCrashConsistency kills a moat process with SIGKILL at random points
// of a push/tag/delete workload, restarts it on the same data directory
// and checks after every kill:
//
//   - meta.db opens and passes bbolt's consistency check;
//   - every blob file on disk hashes to its name; tmp/ is empty after
//     the restart;
//   - every blob and manifest acknowledged with a 2xx (and not deleted
//     since) reads back with its digest, and every manifest's blobs are
//     there; every acknowledged delete stuck;
//   - whatever was in flight is either wholly there or absent: a tag
//     names the old or the new manifest, a visible manifest has all its
//     blobs, a visible blob has all its bytes;
//   - an interrupted upload session either resumes (status, PATCH from
//     its offset, PUT → 201 with the digest) or is gone with 404
//     BLOB_UPLOAD_UNKNOWN.
func TestCrashConsistency(t *testing.T) {
	kills := envInt(t, "MOAT_CRASH_KILLS", crashKills)
	seed := uint64(envInt(t, "MOAT_CRASH_SEED", int(time.Now().UnixNano()&(1<<62-1))))
	t.Logf("seed %d (MOAT_CRASH_SEED=%d MOAT_CRASH_KILLS=%d replay the workload and kill schedule)", seed, seed, kills)
	rng := rand.New(rand.NewPCG(seed, 0x6d6f6174))
	h := &crashHarness{t: t, data: t.TempDir(), rng: rng, checked: map[string]bool{}}
	for i := range crashWorkers {
		h.repos = append(h.repos, newRepoModel(fmt.Sprintf("crash/w%d", i), seed+uint64(i)*7919))
	}
	start := time.Now()
	proc := startMoat(t, h.data, procOptions{})
	for i := range kills {
		h.runUntilKilled(proc)
		h.checkFiles()
		proc = startMoat(t, h.data, procOptions{})
		h.checkTmpEmpty()
		h.verify(proc, false)
		if t.Failed() {
			t.Fatalf("kill point %d (seed %d) broke a property; moat log after the restart:\n%s", i, seed, tail(proc.log(), 40))
		}
	}
	h.verify(proc, true)
	if err := proc.terminate(30 * time.Second); err != nil {
		t.Errorf("moat did not stop cleanly: %v\n%s", err, proc.log())
	}
	t.Logf("%d kill points survived in %s: %d with requests in flight (%d mid-PATCH); %d blobs and %d manifests acknowledged; "+
		"%d interrupted upload sessions resumed, %d gone with BLOB_UPLOAD_UNKNOWN",
		kills, time.Since(start).Round(time.Millisecond), h.stats.inFlightKills, h.stats.midPatchKills,
		h.stats.blobsAcked.Load(), h.stats.manifestsAcked.Load(), h.stats.resumed, h.stats.sessionsGone)
}

func envInt(t *testing.T, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		t.Fatalf("%s=%q is not a non-negative integer", name, s)
	}
	return n
}

type crashHarness struct {
	t       *testing.T
	data    string
	rng     *rand.Rand
	repos   []*repoModel
	checked map[string]bool // blob files already hashed
	stats   struct {
		inFlightKills, midPatchKills int
		resumed, sessionsGone        int
		blobsAcked, manifestsAcked   atomic.Int64
	}
}

// presence is what the model knows of a blob or manifest.
type presence uint8

const (
	unknown presence = iota // an operation on it was interrupted
	present
	absent
)

// blobModel is a blob a worker pushed: its content is regenerated from
// seed and size when needed.
type blobModel struct {
	seed  uint64
	size  int
	state presence
	dirty bool // changed since the last verification
}

func (b *blobModel) content() []byte {
	var key [32]byte
	for i := range 8 {
		key[i] = byte(b.seed >> (8 * i))
	}
	buf := make([]byte, b.size)
	_, _ = rand.NewChaCha8(key).Read(buf)
	return buf
}

type manifestModel struct {
	raw   []byte
	blobs []digest.Digest
	state presence
	dirty bool
}

// upload is an upload session a kill interrupted.
type upload struct {
	location string
	blob     digest.Digest
}

// repoModel is what a worker knows its repository holds.
type repoModel struct {
	name      string
	rng       *rand.Rand
	blobs     map[digest.Digest]*blobModel
	manifests map[digest.Digest]*manifestModel
	// tags maps a tag to the digests it may name; "" stands for no tag.
	tags    map[string]map[digest.Digest]bool
	uploads []upload
}

func newRepoModel(name string, seed uint64) *repoModel {
	return &repoModel{
		name: name, rng: rand.New(rand.NewPCG(seed, 1)),
		blobs: map[digest.Digest]*blobModel{}, manifests: map[digest.Digest]*manifestModel{},
		tags: map[string]map[digest.Digest]bool{},
	}
}

// killSwitch kills the server when the at-th request starts (0: never).
type killSwitch struct {
	base     http.RoundTripper
	started  atomic.Int64
	inFlight atomic.Int64
	patches  atomic.Int64 // PATCH requests in flight
	at       int64
	delay    time.Duration
	fire     func()
}

func (k *killSwitch) RoundTrip(r *http.Request) (*http.Response, error) {
	if k.started.Add(1) == k.at {
		time.AfterFunc(k.delay, k.fire)
	}
	k.inFlight.Add(1)
	patch := r.Method == http.MethodPatch
	if patch {
		k.patches.Add(1)
	}
	resp, err := k.base.RoundTrip(r)
	if err == nil {
		resp.Body = &countedBody{ReadCloser: resp.Body, done: func() {
			k.inFlight.Add(-1)
			if patch {
				k.patches.Add(-1)
			}
		}}
		return resp, nil
	}
	k.inFlight.Add(-1)
	if patch {
		k.patches.Add(-1)
	}
	return resp, err
}

// countedBody calls done once, when the body is closed.
type countedBody struct {
	io.ReadCloser
	once sync.Once
	done func()
}

func (c *countedBody) Close() error {
	c.once.Do(c.done)
	return c.ReadCloser.Close()
}

// runUntilKilled runs the workers against proc until the kill switch
// fires: after a random number of requests (the kill then lands while
// that request is sent) or after a random delay.
func (h *crashHarness) runUntilKilled(proc *moatProc) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var once sync.Once
	ks := &killSwitch{base: &http.Transport{MaxIdleConnsPerHost: crashWorkers}}
	fire := func() {
		once.Do(func() {
			inFlight, patches := ks.inFlight.Load(), ks.patches.Load()
			// A moat that panicked or exited by itself must not pass
			// for one this kill stopped.
			select {
			case <-proc.exited:
				h.t.Errorf("moat exited on its own before the kill: %v\nmoat log:\n%s", proc.waitErr, tail(proc.log(), 40))
			default:
			}
			proc.kill()
			if inFlight > 0 {
				h.stats.inFlightKills++
			}
			if patches > 0 {
				h.stats.midPatchKills++
			}
			cancel()
		})
	}
	ks.fire = fire
	var timer *time.Timer
	if h.rng.IntN(2) == 0 {
		ks.at = 1 + h.rng.Int64N(80)
		ks.delay = time.Duration(h.rng.IntN(3000)) * time.Microsecond
	} else {
		timer = time.AfterFunc(time.Duration(5+h.rng.IntN(400))*time.Millisecond, fire)
	}
	// A switch set beyond what the workers send still fires.
	backstop := time.AfterFunc(5*time.Second, fire)
	defer backstop.Stop()
	if timer != nil {
		defer timer.Stop()
	}
	client := &ociClient{base: proc.Base, http: &http.Client{Transport: ks}}
	var wg sync.WaitGroup
	for _, m := range h.repos {
		wg.Go(func() { h.work(ctx, client, m) })
	}
	wg.Wait()
	fire() // also checks that moat did not exit by itself
}

// work runs one worker's operations until ctx ends.
func (h *crashHarness) work(ctx context.Context, c *ociClient, m *repoModel) {
	for ctx.Err() == nil {
		var err error
		switch p := m.rng.IntN(100); {
		case p < 70:
			err = h.pushImage(ctx, c, m)
		case p < 85:
			err = h.deleteTag(ctx, c, m)
		default:
			err = h.deleteManifest(ctx, c, m)
		}
		if err != nil {
			return
		}
	}
}

// unexpected reports an answer no kill can explain (a transport error is
// the kill's doing; an error status is the server's).
func (h *crashHarness) unexpected(what string, a *answer, want int) error {
	h.t.Errorf("%s: answered %s, want %d", what, a, want)
	return errors.New(what)
}

// request reports a request's outcome: nil for the wanted status, the
// transport error (the kill) or an unexpected status.
func (h *crashHarness) request(what string, a *answer, err error, want int) error {
	if err != nil {
		return err
	}
	if a.status != want {
		return h.unexpected(what, a, want)
	}
	return nil
}

// newBlob picks the next blob to push: mostly new content, sometimes a
// blob the repository already holds (its upload then finds the bytes
// there).
func (m *repoModel) newBlob(large bool) (digest.Digest, *blobModel) {
	if m.rng.IntN(5) == 0 {
		for d, b := range m.blobs {
			if b.state == present && (b.size > 64<<10) == large {
				return d, b
			}
		}
	}
	size := 1 + m.rng.IntN(32<<10)
	if large {
		size = 64<<10 + m.rng.IntN(1536<<10)
	}
	b := &blobModel{seed: m.rng.Uint64(), size: size, state: absent}
	return digest.FromBytes(b.content()), b
}

// pushBlob uploads one blob monolithically (one POST, or POST and PUT)
// or in chunks, keeping the model up to date.
func (h *crashHarness) pushBlob(ctx context.Context, c *ociClient, m *repoModel, large bool) (digest.Digest, error) {
	d, b := m.newBlob(large)
	if _, ok := m.blobs[d]; !ok {
		m.blobs[d] = b
	}
	b = m.blobs[d]
	prev := b.state
	b.state, b.dirty = unknown, true
	content := b.content()
	var a *answer
	var err error
	// Bodies arrive in pieces, so that kills land inside them.
	body := &trickle{r: bytes.NewReader(content)}
	switch m.rng.IntN(3) {
	case 0:
		a, err = h.chunkedPush(ctx, c, m, d, content)
	case 1:
		a, err = c.send(ctx, http.MethodPost, "/v2/"+m.name+"/blobs/uploads/?digest="+d.String(), body, int64(len(content)), nil)
	default:
		var loc string
		loc, a, err = c.startUpload(ctx, m.name)
		if err = h.request("POST upload", a, err, http.StatusAccepted); err == nil {
			a, err = c.send(ctx, http.MethodPut, withQuery(loc, "digest", d.String()), body, int64(len(content)), nil)
		}
	}
	if err := h.request("push blob "+d.String(), a, err, http.StatusCreated); err != nil {
		if prev == present {
			b.state = present // pushing it again cannot take it away
		}
		return "", err
	}
	b.state = present
	h.stats.blobsAcked.Add(1)
	return d, nil
}

// chunkedPush uploads content through a session in chunks. A session
// the kill interrupts is kept for verify to resume.
func (h *crashHarness) chunkedPush(ctx context.Context, c *ociClient, m *repoModel, d digest.Digest, content []byte) (*answer, error) {
	loc, a, err := c.startUpload(ctx, m.name)
	if err := h.request("POST upload", a, err, http.StatusAccepted); err != nil {
		return a, err
	}
	chunk := 64<<10 + m.rng.IntN(448<<10)
	for off := 0; off < len(content); off += chunk {
		end := min(off+chunk, len(content))
		a, err = c.patchChunk(ctx, loc, int64(off), &trickle{r: bytes.NewReader(content[off:end])}, int64(end-off))
		if err := h.request("PATCH upload", a, err, http.StatusAccepted); err != nil {
			m.uploads = append(m.uploads, upload{location: loc, blob: d})
			return a, err
		}
		loc = a.header.Get("Location")
	}
	a, err = c.finishUpload(ctx, loc, d)
	if err != nil {
		m.uploads = append(m.uploads, upload{location: loc, blob: d})
	}
	return a, err
}

// trickle hands out a body in pieces with a pause between them.
type trickle struct{ r io.Reader }

func (tr *trickle) Read(p []byte) (int, error) {
	time.Sleep(100 * time.Microsecond)
	return tr.r.Read(p[:min(len(p), 16<<10)])
}

func (h *crashHarness) pushImage(ctx context.Context, c *ociClient, m *repoModel) error {
	var blobs []digest.Digest
	n := 1 + m.rng.IntN(3)
	for i := range n + 1 { // the config, then the layers
		d, err := h.pushBlob(ctx, c, m, i > 0 && m.rng.IntN(4) == 0)
		if err != nil {
			return err
		}
		blobs = append(blobs, d)
	}
	man := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Layers: []ocispec.Descriptor{},
		Annotations: map[string]string{"nonce": strconv.FormatUint(m.rng.Uint64(), 36)}}
	man.SchemaVersion = 2
	desc := func(mt string, d digest.Digest) ocispec.Descriptor {
		return ocispec.Descriptor{MediaType: mt, Digest: d, Size: int64(m.blobs[d].size)}
	}
	man.Config = desc(ocispec.MediaTypeImageConfig, blobs[0])
	for _, d := range blobs[1:] {
		man.Layers = append(man.Layers, desc(ocispec.MediaTypeImageLayer, d))
	}
	raw, _ := json.Marshal(man)
	d := digest.FromBytes(raw)
	mm := &manifestModel{raw: raw, blobs: blobs, state: unknown, dirty: true}
	m.manifests[d] = mm
	ref, tag := d.String(), ""
	if m.rng.IntN(10) < 7 {
		tag = "t" + strconv.Itoa(m.rng.IntN(4))
		ref = tag
		m.maybeTag(tag, d)
	}
	a, err := c.putManifest(ctx, m.name, ref, ocispec.MediaTypeImageManifest, raw)
	if err := h.request("PUT manifest "+m.name+":"+ref, a, err, http.StatusCreated); err != nil {
		return err
	}
	mm.state = present
	if tag != "" {
		m.tags[tag] = map[digest.Digest]bool{d: true}
	}
	h.stats.manifestsAcked.Add(1)
	return nil
}

// maybeTag records that tag may now name d (the change is in flight).
func (m *repoModel) maybeTag(tag string, d digest.Digest) {
	if m.tags[tag] == nil {
		m.tags[tag] = map[digest.Digest]bool{"": true}
	}
	m.tags[tag][d] = true
}

// certainTag picks a tag known to name a manifest, if any.
func (m *repoModel) certainTag() (string, digest.Digest, bool) {
	keys := slices.Sorted(maps.Keys(m.tags))
	m.rng.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
	for _, tag := range keys {
		if s := m.tags[tag]; len(s) == 1 && !s[""] {
			for d := range s {
				return tag, d, true
			}
		}
	}
	return "", "", false
}

func (h *crashHarness) deleteTag(ctx context.Context, c *ociClient, m *repoModel) error {
	tag, _, ok := m.certainTag()
	if !ok {
		return nil
	}
	m.tags[tag][""] = true
	a, err := c.send(ctx, http.MethodDelete, "/v2/"+m.name+"/manifests/"+tag, nil, 0, nil)
	if err := h.request("DELETE tag "+tag, a, err, http.StatusAccepted); err != nil {
		return err
	}
	m.tags[tag] = map[digest.Digest]bool{"": true}
	return nil
}

func (h *crashHarness) deleteManifest(ctx context.Context, c *ociClient, m *repoModel) error {
	var d digest.Digest
	for _, k := range slices.Sorted(maps.Keys(m.manifests)) {
		if m.manifests[k].state == present && m.rng.IntN(3) == 0 {
			d = k
			break
		}
	}
	if d == "" {
		return nil
	}
	mm := m.manifests[d]
	mm.state, mm.dirty = unknown, true
	for _, s := range m.tags {
		if s[d] {
			s[""] = true
		}
	}
	a, err := c.send(ctx, http.MethodDelete, "/v2/"+m.name+"/manifests/"+d.String(), nil, 0, nil)
	if err := h.request("DELETE manifest "+d.String(), a, err, http.StatusAccepted); err != nil {
		return err
	}
	mm.state = absent
	for _, s := range m.tags {
		if s[d] {
			delete(s, d)
		}
	}
	return nil
}
