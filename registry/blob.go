package registry

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/moat-registry/moat/auth"
	"github.com/moat-registry/moat/errcode"
	"github.com/moat-registry/moat/storage"
	"github.com/opencontainers/go-digest"
)

// parseDigest validates a digest from the wire: a registered algorithm
// (sha256, sha384, sha512) and an encoded part of the right length and
// alphabet. It never lets a digest name a path outside the store.
func parseDigest(s string) (digest.Digest, error) {
	d, err := digest.Parse(s)
	if err != nil {
		return "", errcode.DigestInvalid.New("invalid digest " + strconv.Quote(truncate(s, 160)))
	}
	return d, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

func blobLocation(repo string, d digest.Digest) string {
	return "/v2/" + repo + "/blobs/" + d.String()
}

// Presigner is a blob store that can hand out a time-limited URL of a
// blob's bytes (an object store's presigned GET).
type Presigner interface {
	PresignGet(ctx context.Context, d digest.Digest, ttl time.Duration) (string, error)
}

// getBlob answers GET and HEAD of /v2/<name>/blobs/<digest>, streaming the
// file (sendfile) with Range support. A manifest is also readable as a blob.
func (reg *Registry) getBlob(w http.ResponseWriter, r *http.Request, rt Route, grant auth.Grant) error {
	d, err := parseDigest(rt.Reference)
	if err != nil {
		return err
	}
	ctx := r.Context()
	if _, err := reg.meta.BlobLink(ctx, rt.Repository, d); err != nil {
		if errors.Is(err, storage.ErrBlobUnknown) {
			return reg.manifestAsBlob(w, r, rt, d)
		}
		return err
	}
	// The headers that make the answer cacheable go on successes only: a
	// 416 or a 500 must not be cached for a year.
	etag := `"` + d.String() + `"`
	h := w.Header()
	if r.Method == http.MethodHead {
		size, err := reg.blobs.Stat(ctx, d)
		if err != nil {
			return err
		}
		setBlobHeaders(h, d, etag)
		h.Set("Content-Length", strconv.FormatInt(size, 10))
		w.WriteHeader(http.StatusOK)
		return nil
	}
	if p, ok := reg.blobs.(Presigner); ok && reg.opts.RedirectTTL > 0 && grant.Redirectable() && r.Header.Get("Range") == "" {
		u, err := p.PresignGet(ctx, d, reg.opts.RedirectTTL)
		if err != nil {
			return err
		}
		// No Cache-Control: the presigned URL expires after RedirectTTL.
		h.Set("Docker-Content-Digest", d.String())
		h.Set("Location", u)
		w.WriteHeader(http.StatusTemporaryRedirect)
		return nil
	}
	f, size, err := reg.blobs.Open(ctx, d)
	if err != nil {
		return err
	}
	defer f.Close()
	if rg := r.Header.Get("Range"); rg != "" && ifRangeHolds(r.Header.Get("If-Range"), etag) {
		ignore, err := checkRange(rg, size)
		if err != nil {
			return errcode.RangeInvalid.New("range "+strconv.Quote(truncate(rg, 80))+" not satisfiable").
				SetHeader("Content-Range", "bytes */"+strconv.FormatInt(size, 10))
		}
		if ignore {
			// A unit other than bytes: the whole blob (RFC 9110 §14.2).
			r = r.Clone(ctx)
			r.Header.Del("Range")
		}
	}
	setBlobHeaders(h, d, etag)
	// ServeContent answers ranges and conditional requests (dropping the
	// cache headers from its own errors) and, for an *os.File, sends with
	// sendfile.
	http.ServeContent(w, r, "", zeroTime, f)
	return nil
}

// setBlobHeaders sets the headers of a successful blob answer: blobs are
// content-addressed, so they are cacheable for a year.
func setBlobHeaders(h http.Header, d digest.Digest, etag string) {
	h.Set("Docker-Content-Digest", d.String())
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Accept-Ranges", "bytes")
	h.Set("ETag", etag)
	h.Set("Cache-Control", "max-age=31536000")
}

// manifestAsBlob serves a manifest's bytes under the blobs endpoint, as
// Distribution does (manifests are content-addressed blobs too).
func (reg *Registry) manifestAsBlob(w http.ResponseWriter, r *http.Request, rt Route, d digest.Digest) error {
	m, err := reg.meta.Manifest(r.Context(), rt.Repository, d.String(), r.Method == http.MethodGet)
	if err != nil {
		if errors.Is(err, storage.ErrManifestUnknown) || errors.Is(err, storage.ErrRepositoryUnknown) {
			return errcode.BlobUnknown.WithDetail(map[string]string{"digest": d.String()})
		}
		return err
	}
	h := w.Header()
	h.Set("Docker-Content-Digest", d.String())
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", strconv.FormatInt(m.Size, 10))
	h.Set("ETag", `"`+d.String()+`"`)
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(m.Raw)
	}
	return nil
}

// deleteBlob hides a blob from the repository; garbage collection reclaims
// its bytes once nothing links it.
func (reg *Registry) deleteBlob(w http.ResponseWriter, r *http.Request, rt Route, grant auth.Grant) error {
	d, err := parseDigest(rt.Reference)
	if err != nil {
		return err
	}
	if err := reg.meta.UnlinkBlob(r.Context(), rt.Repository, d); err != nil {
		return err
	}
	reg.emit(Event{Action: "delete", Kind: KindBlob, Repository: rt.Repository, Digest: d.String(), Actor: grant.Actor(), Request: r})
	w.Header().Set("Docker-Content-Digest", d.String())
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
	return nil
}

func (reg *Registry) emit(e Event) {
	if reg.opts.OnEvent != nil {
		reg.opts.OnEvent(e)
	}
}
