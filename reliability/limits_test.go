package reliability

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moat-registry/moat/config"
	"github.com/opencontainers/go-digest"
)

// TestSlowClients: a connection that dribbles its headers is closed once
// limits.readHeaderTimeout passes, and an idle keep-alive connection once
// limits.idleTimeout passes.
//
// Nothing here measures time: the property is that the server closes the
// connection (the read ends with EOF or a reset) before the test's own
// read deadline expires. That deadline is 40 times the configured
// timeouts, yet shorter than the defaults (30s and 2m), so a server that
// ignores the configuration fails the test too.
func TestSlowClients(t *testing.T) {
	const (
		timeout  = 500 * time.Millisecond
		patience = 20 * time.Second
	)
	e := newHostileEnv(t, func(c *config.Config) {
		c.Limits.ReadHeaderTimeout = config.Duration(timeout)
		c.Limits.IdleTimeout = config.Duration(timeout)
	})

	t.Run("slowloris", func(t *testing.T) {
		conn, err := net.Dial("tcp", e.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := conn.Write([]byte("GET /v2/ HTTP/1.1\r\nHost: " + e.addr + "\r\n")); err != nil {
			t.Fatal(err)
		}
		// A header line every 100ms; the server must hang up before the
		// test gives up.
		type end struct {
			n   int64
			err error
		}
		closed := make(chan end, 1)
		go func() {
			_ = conn.SetReadDeadline(time.Now().Add(patience))
			n, err := io.Copy(io.Discard, conn)
			closed <- end{n, err}
		}()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case c := <-closed:
				switch {
				case errors.Is(c.err, os.ErrDeadlineExceeded):
					t.Errorf("the server kept a connection dribbling its headers open for %s; readHeaderTimeout is %s", patience, timeout)
				case c.err != nil && !isReset(c.err):
					t.Errorf("reading the dribbling connection: %v, want EOF or a reset", c.err)
				case c.n != 0:
					t.Errorf("the server answered %d bytes to a request whose headers never ended", c.n)
				}
				return
			case <-tick.C:
				_, _ = conn.Write([]byte("X-Slow-" + strconv.Itoa(i) + ": 1\r\n"))
			}
		}
	})

	t.Run("idle keep-alive", func(t *testing.T) {
		conn, err := net.Dial("tcp", e.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := conn.Write([]byte("GET /v2/ HTTP/1.1\r\nHost: " + e.addr + "\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		r := bufio.NewReader(conn)
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.Close {
			t.Fatal("the server closes the connection after one request; the idle timeout is not what closes it")
		}
		_ = conn.SetReadDeadline(time.Now().Add(patience))
		_, err = r.ReadByte()
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			t.Errorf("the server kept an idle keep-alive connection open for %s; idleTimeout is %s", patience, timeout)
		case err == nil:
			t.Error("the server sent bytes on an idle connection")
		case !errors.Is(err, io.EOF) && !isReset(err):
			t.Errorf("reading the idle connection: %v, want EOF or a reset", err)
		}
	})
}

// isReset reports whether err is a connection reset by the peer.
func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET)
}

// TestUploadLimits: over limits.maxConcurrentUploads an upload gets 429
// TOOMANYREQUESTS with Retry-After; a body over limits.maxBlobSize gets
// 413 and leaves no blob, no temp file and no partial bytes behind.
func TestUploadLimits(t *testing.T) {
	const maxBlob = 1 << 20
	e := newHostileEnv(t, func(c *config.Config) {
		c.Limits.MaxConcurrentUploads = 1
		c.Limits.MaxBlobSize = maxBlob
	})
	ctx := context.Background()
	c := e.client

	t.Run("concurrent uploads", func(t *testing.T) {
		// A first upload holds the only slot while its body trickles: half
		// now, half once a second upload has been refused. The second may
		// arrive first and take the slot (the first then gets the 429);
		// the test then tries again.
		const half = 64 << 10
		for attempt := 1; ; attempt++ {
			loc, a, err := c.startUpload(ctx, "limits/app")
			if err != nil || a.status != http.StatusAccepted {
				t.Fatalf("POST upload: %v %v", a, err)
			}
			pr, pw := io.Pipe()
			first := make(chan *answer, 1)
			go func() {
				a, _ := c.patchChunk(ctx, loc, 0, pr, 2*half)
				first <- a
			}()
			if _, err := pw.Write(make([]byte, half)); err != nil {
				t.Fatal(err)
			}
			// The metrics show the PATCH in flight once moat serves it.
			deadline := time.Now().Add(10 * time.Second)
			for !strings.Contains(string(mustGet(t, c, "/metrics").body), `moat_http_requests_in_flight{route="upload"} 1`) && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			a, err = c.pushBlob(ctx, "limits/app", []byte("second"))
			if err != nil {
				t.Fatal(err)
			}
			if a.status != http.StatusTooManyRequests {
				pw.CloseWithError(errors.New("the second upload took the slot"))
				if f := <-first; (f != nil && f.status != http.StatusTooManyRequests) || attempt == 10 {
					t.Fatalf("attempt %d: a second concurrent upload answered %v, the first %v", attempt, a, f)
				}
				continue
			}
			checkOCIError(t, "second upload", a, http.StatusTooManyRequests)
			if a.errorCode() != "TOOMANYREQUESTS" || a.header.Get("Retry-After") == "" {
				t.Errorf("second upload: %s, Retry-After %q; want TOOMANYREQUESTS with Retry-After", a, a.header.Get("Retry-After"))
			}
			// Reads are not uploads.
			if a, err := c.getBlob(ctx, "legit/app", e.layerD); err != nil || a.status != http.StatusOK {
				t.Errorf("a blob read while the upload slot is taken: %v %v", a, err)
			}
			_, _ = pw.Write(make([]byte, half))
			pw.Close()
			if a := <-first; a == nil || a.status != http.StatusAccepted {
				t.Fatalf("the first upload: %v", a)
			}
			break
		}
		if a, err := c.pushBlob(ctx, "limits/app", []byte("second")); err != nil || a.status != http.StatusCreated {
			t.Errorf("an upload once the slot is free: %v %v", a, err)
		}
	})

	big := make([]byte, maxBlob+1)
	_, _ = rand.Read(big)
	bigD := digest.FromBytes(big)
	t.Run("blob size", func(t *testing.T) {
		// Declared too large: refused before the body is read.
		a, err := c.pushBlob(ctx, "limits/app", big)
		if err != nil {
			t.Fatal(err)
		}
		checkOCIError(t, "POST of maxBlobSize+1 bytes", a, http.StatusRequestEntityTooLarge)
		// Streamed without a length: refused when it crosses the limit.
		a, err = c.send(ctx, http.MethodPost, "/v2/limits/app/blobs/uploads/?digest="+bigD.String(), io.MultiReader(bytes.NewReader(big)), -1, nil)
		if err != nil {
			t.Fatal(err)
		}
		checkOCIError(t, "chunked POST of maxBlobSize+1 bytes", a, http.StatusRequestEntityTooLarge)
		// In a session: the chunk that crosses the limit is refused.
		loc, a, err := c.startUpload(ctx, "limits/app")
		if err != nil || a.status != http.StatusAccepted {
			t.Fatalf("POST upload: %v %v", a, err)
		}
		a, err = c.patchChunk(ctx, loc, 0, bytes.NewReader(big[:maxBlob/2]), maxBlob/2)
		if err != nil || a.status != http.StatusAccepted {
			t.Fatalf("first half: %v %v", a, err)
		}
		loc = a.header.Get("Location")
		a, err = c.patchChunk(ctx, loc, maxBlob/2, bytes.NewReader(big[maxBlob/2:]), int64(len(big)-maxBlob/2))
		if err != nil {
			t.Fatal(err)
		}
		checkOCIError(t, "PATCH crossing maxBlobSize", a, http.StatusRequestEntityTooLarge)
		a, err = c.finishUpload(ctx, loc, bigD)
		if err != nil || a.status < 400 || a.status >= 500 {
			t.Errorf("PUT of the refused session: %v %v, want a 4xx", a, err)
		}
		// Exactly the limit is accepted.
		if a, err := c.pushBlob(ctx, "limits/app", big[:maxBlob]); err != nil || a.status != http.StatusCreated {
			t.Errorf("POST of exactly maxBlobSize bytes: %v %v", a, err)
		}
		// Nothing of the refused blob is visible or on disk.
		if a, err := c.getBlob(ctx, "limits/app", bigD); err != nil || a.status != http.StatusNotFound {
			t.Errorf("GET the refused blob: %v %v, want 404", a, err)
		}
		enc := bigD.Encoded()
		if _, err := os.Stat(filepath.Join(e.data, "blobs", "sha256", enc[:2], enc)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("the refused blob is on disk: %v", err)
		}
		checkNoTemp(t, e.data)
		checkBlobFiles(t, e.data)
	})
	e.checkTree()
}

// TestRateLimit: over limits.rate (with limits.burst) per client address,
// data-plane requests get 429 TOOMANYREQUESTS with Retry-After.
func TestRateLimit(t *testing.T) {
	e := newHostileEnv(t, func(c *config.Config) {
		c.Limits.Rate = 1
		c.Limits.Burst = 20 // newHostileEnv's push needs a few requests
	})
	var limited *answer
	for i := 0; i < 40 && limited == nil; i++ {
		a, err := e.client.send(context.Background(), http.MethodGet, "/v2/", nil, 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		if a.status == http.StatusTooManyRequests {
			limited = a
		}
	}
	if limited == nil {
		t.Fatal("40 requests at once at 1 per second were all served")
	}
	checkOCIError(t, "over the rate", limited, http.StatusTooManyRequests)
	if limited.errorCode() != "TOOMANYREQUESTS" {
		t.Errorf("over the rate: code %s, want TOOMANYREQUESTS", limited.errorCode())
	}
	if s, err := strconv.Atoi(limited.header.Get("Retry-After")); err != nil || s < 1 {
		t.Errorf("over the rate: Retry-After %q, want a number of seconds", limited.header.Get("Retry-After"))
	}
}

// checkNoTemp fails if tmp/ holds a file.
func checkNoTemp(t *testing.T, data string) {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(data, "tmp"))
	if err != nil {
		t.Fatal(err)
	}
	for _, en := range entries {
		t.Errorf("tmp/ holds %s", en.Name())
	}
}

// checkBlobFiles fails for any blob file whose bytes do not hash to its
// name.
func checkBlobFiles(t *testing.T, data string) {
	t.Helper()
	err := filepath.WalkDir(filepath.Join(data, "blobs"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if got := digest.FromBytes(b).Encoded(); got != filepath.Base(p) {
			t.Errorf("blob file %s holds %d bytes hashing to %s", p, len(b), got)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// mustGet is a GET that must get an answer.
func mustGet(t *testing.T, c *ociClient, path string) *answer {
	t.Helper()
	a, err := c.send(context.Background(), http.MethodGet, path, nil, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
