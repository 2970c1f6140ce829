package registry

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/moat-registry/moat/auth"
	"github.com/moat-registry/moat/errcode"
	"github.com/moat-registry/moat/oci"
	"github.com/moat-registry/moat/storage"
	"github.com/opencontainers/go-digest"
)

// reference is a parsed manifest reference: a tag or a digest.
type reference struct {
	tag    string
	digest digest.Digest
}

func parseReference(s string) (reference, error) {
	if strings.IndexByte(s, ':') >= 0 {
		d, err := parseDigest(s)
		return reference{digest: d}, err
	}
	if !oci.ValidTag(s) {
		return reference{}, errcode.ManifestInvalid.New("invalid tag " + strconv.Quote(truncate(s, 160)))
	}
	return reference{tag: s}, nil
}

func manifestLocation(repo string, d digest.Digest) string {
	return "/v2/" + repo + "/manifests/" + d.String()
}

// getManifest answers GET and HEAD of /v2/<name>/manifests/<reference>
// with the stored bytes exactly, whatever the Accept header says.
func (reg *Registry) getManifest(w http.ResponseWriter, r *http.Request, rt Route) error {
	if _, err := parseReference(rt.Reference); err != nil {
		// Nothing can be stored under an invalid reference.
		return errcode.ManifestUnknown.Wrap(err)
	}
	get := r.Method == http.MethodGet
	m, err := reg.meta.Manifest(r.Context(), rt.Repository, rt.Reference, get)
	if err != nil {
		if errors.Is(err, storage.ErrRepositoryUnknown) {
			return errcode.ManifestUnknown.Wrap(err)
		}
		return err
	}
	h := w.Header()
	h["Content-Type"] = []string{m.MediaType}
	h["Content-Length"] = []string{strconv.FormatInt(m.Size, 10)}
	ds := m.Digest.String()
	etag := `"` + ds + `"`
	h["Docker-Content-Digest"] = []string{ds}
	h["Etag"] = []string{etag}
	if inm := r.Header.Get("If-None-Match"); inm != "" && ifNoneMatchHits(inm, etag) {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	w.WriteHeader(http.StatusOK)
	if get {
		_, _ = w.Write(m.Raw)
	}
	return nil
}

// putManifest answers PUT /v2/<name>/manifests/<reference>. The manifest
// is validated, its referenced blobs (and, for an index, child manifests)
// must be in the repository, and it is stored with its tags in one
// transaction. ?tag= adds tags to a push by digest.
func (reg *Registry) putManifest(w http.ResponseWriter, r *http.Request, rt Route, grant auth.Grant) error {
	ref, err := parseReference(rt.Reference)
	if err != nil {
		return err
	}
	var tags []string
	if ref.tag != "" {
		tags = append(tags, ref.tag)
	}
	for _, t := range r.URL.Query()["tag"] {
		if !oci.ValidTag(t) {
			return errcode.ManifestInvalid.New("invalid tag " + strconv.Quote(truncate(t, 160)))
		}
		tags = append(tags, t)
	}
	if r.ContentLength > reg.opts.MaxManifestSize {
		return errcode.TooLarge.New("manifest larger than " + strconv.FormatInt(reg.opts.MaxManifestSize, 10) + " bytes")
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, reg.opts.MaxManifestSize+1))
	if err != nil {
		return errcode.ManifestInvalid.New("reading the manifest failed")
	}
	if int64(len(body)) > reg.opts.MaxManifestSize {
		return errcode.TooLarge.New("manifest larger than " + strconv.FormatInt(reg.opts.MaxManifestSize, 10) + " bytes")
	}
	m, err := parseManifest(r.Header.Get("Content-Type"), body)
	if err != nil {
		return err
	}
	if !grant.Allows(rt.Repository, auth.Push) {
		// Only a signer (ImageSigner) gets here without Push: it pushes
		// referrers, by digest, and never moves a tag.
		if m.Subject == "" {
			return errcode.Denied.New("this role may push only manifests with a subject (signatures, attestations)")
		}
		if len(tags) > 0 {
			return errcode.Denied.New("this role may push referrers by digest only, without tags")
		}
	}
	m.Digest = manifestDigest(ref.digest, body)
	if ref.digest != "" && m.Digest != ref.digest {
		return errcode.DigestInvalid.New("manifest digest " + m.Digest.String() + " does not match reference " + ref.digest.String())
	}
	m.Raw, m.Size, m.Created = body, int64(len(body)), time.Now().UTC()
	if err := reg.meta.PutManifest(r.Context(), rt.Repository, m, tags, !reg.opts.RelaxIndexReferences); err != nil {
		return err
	}
	for _, t := range tags {
		reg.emit(Event{Action: "push", Kind: KindManifest, Repository: rt.Repository, Digest: m.Digest.String(), Tag: t, MediaType: m.MediaType, Size: m.Size, Actor: grant.Actor(), Request: r})
	}
	if len(tags) == 0 {
		reg.emit(Event{Action: "push", Kind: KindManifest, Repository: rt.Repository, Digest: m.Digest.String(), MediaType: m.MediaType, Size: m.Size, Actor: grant.Actor(), Request: r})
	}
	h := w.Header()
	h.Set("Location", manifestLocation(rt.Repository, m.Digest))
	h.Set("Docker-Content-Digest", m.Digest.String())
	if m.Subject != "" {
		h.Set("OCI-Subject", m.Subject.String())
	}
	for _, t := range r.URL.Query()["tag"] {
		h.Add("OCI-Tag", t)
	}
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
	return nil
}

// deleteManifest answers DELETE /v2/<name>/manifests/<reference>: by
// digest the manifest and its tags go, by tag only the tag.
func (reg *Registry) deleteManifest(w http.ResponseWriter, r *http.Request, rt Route, grant auth.Grant) error {
	ref, err := parseReference(rt.Reference)
	if err != nil {
		return err
	}
	ctx := r.Context()
	if ref.tag != "" {
		err = reg.meta.DeleteTag(ctx, rt.Repository, ref.tag)
		if err == nil {
			reg.emit(Event{Action: "delete", Kind: KindTags, Repository: rt.Repository, Tag: ref.tag, Actor: grant.Actor(), Request: r})
		}
	} else {
		err = reg.meta.DeleteManifest(ctx, rt.Repository, ref.digest)
		if err == nil {
			reg.emit(Event{Action: "delete", Kind: KindManifest, Repository: rt.Repository, Digest: ref.digest.String(), Actor: grant.Actor(), Request: r})
		}
	}
	if err != nil {
		return err
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
	return nil
}
