package reliability

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// TestGracefulShutdown sends SIGTERM while a large chunk of an upload is
// still arriving: the PATCH in flight completes with 202, the process
// exits 0, and after a restart the session resumes at the offset the
// server acknowledged and finishes with the right digest.
func TestGracefulShutdown(t *testing.T) {
	const (
		first  = 4 << 20  // acknowledged before the signal
		second = 12 << 20 // in flight when the signal comes
		rest   = 1 << 20  // sent after the restart
		piece  = 64 << 10
	)
	content := make([]byte, first+second+rest)
	_, _ = rand.Read(content)
	d := digest.FromBytes(content)
	data := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	p := startMoat(t, data, procOptions{})
	c := &ociClient{base: p.Base, http: &http.Client{}}
	loc, a, err := c.startUpload(ctx, "shutdown/app")
	if err != nil || a.status != http.StatusAccepted {
		t.Fatalf("POST upload: %v %v", a, err)
	}
	a, err = c.patchChunk(ctx, loc, 0, bytes.NewReader(content[:first]), first)
	if err != nil || a.status != http.StatusAccepted {
		t.Fatalf("first PATCH: %v %v", a, err)
	}
	loc = a.header.Get("Location")

	// The second chunk arrives piece by piece; SIGTERM goes out once a
	// quarter of it is in the server's hands.
	pr, pw := io.Pipe()
	// signalled closes when the writer is done with the signal: sent, or
	// never (the PATCH ended first and the writer gave up), so waiting on
	// it never outlasts the writer.
	signalled := make(chan struct{})
	var closeSignalled sync.Once
	sent := false // written before signalled closes
	go func() {
		defer closeSignalled.Do(func() { close(signalled) })
		chunk := content[first : first+second]
		for off := 0; off < len(chunk); off += piece {
			if off == second/4 {
				_ = p.cmd.Process.Signal(syscall.SIGTERM)
				sent = true
				closeSignalled.Do(func() { close(signalled) })
			}
			if _, err := pw.Write(chunk[off : off+piece]); err != nil {
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
		pw.Close()
	}()
	a, err = c.patchChunk(ctx, loc, first, pr, second)
	pr.CloseWithError(errors.New("the PATCH ended")) // a writer still at it stops
	<-signalled
	if !sent {
		t.Fatalf("the PATCH ended before SIGTERM was sent: %v %v\nmoat log:\n%s", a, err, tail(p.log(), 30))
	}
	if err != nil {
		t.Fatalf("the PATCH in flight at SIGTERM failed: %v\nmoat log:\n%s", err, tail(p.log(), 30))
	}
	if a.status != http.StatusAccepted || a.header.Get("Range") != "0-"+strconv.Itoa(first+second-1) {
		t.Fatalf("the PATCH in flight at SIGTERM answered %s, Range %q", a, a.header.Get("Range"))
	}
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		t.Fatal("moat did not exit within 30s of SIGTERM")
	}
	if p.waitErr != nil {
		t.Fatalf("moat exited with %v after SIGTERM\n%s", p.waitErr, tail(p.log(), 30))
	}

	p = startMoat(t, data, procOptions{})
	c = &ociClient{base: p.Base, http: &http.Client{}}
	loc = "/v2/shutdown/app/blobs/uploads/" + a.header.Get("Docker-Upload-UUID")
	off, _, a, err := c.uploadOffset(ctx, loc)
	if err != nil || off != first+second {
		t.Fatalf("upload status after the restart: offset %d (%v, %v), want %d", off, a, err, first+second)
	}
	a, err = c.patchChunk(ctx, loc, off, bytes.NewReader(content[off:]), int64(len(content))-off)
	if err != nil || a.status != http.StatusAccepted {
		t.Fatalf("PATCH after the restart: %v %v", a, err)
	}
	a, err = c.finishUpload(ctx, a.header.Get("Location"), d)
	if err != nil || a.status != http.StatusCreated {
		t.Fatalf("PUT after the restart: %v %v", a, err)
	}
	a, err = c.getBlob(ctx, "shutdown/app", d)
	if err != nil || a.status != http.StatusOK {
		t.Fatalf("GET the finished blob: %v %v", a, err)
	}
	if err := p.terminate(30 * time.Second); err != nil {
		t.Errorf("second stop: %v", err)
	}
}
