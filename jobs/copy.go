package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/moat-registry/moat/auth"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/registry"
	"oras.land/oras-go/v2/registry/remote"
	orasauth "oras.land/oras-go/v2/registry/remote/auth"
	orascode "oras.land/oras-go/v2/registry/remote/errcode"
)

// localHost is the registry name of this registry in parsed references.
const localHost = "moat.local"

// imageRef is a parsed image reference: Host empty for this registry.
type imageRef struct {
	Host       string
	Repository string
	Reference  string // tag or digest
}

func (r imageRef) String() string {
	s := r.Repository
	if r.Host != "" {
		s = r.Host + "/" + s
	}
	if strings.Contains(r.Reference, ":") {
		return s + "@" + r.Reference
	}
	return s + ":" + r.Reference
}

// parseImageRef parses "[host/]repo:tag" or "[host/]repo@digest". The first
// component is a host when it holds '.' or ':' or is "localhost" (Docker's
// rule); requireHost refuses a reference without one.
func parseImageRef(s string, requireHost bool) (imageRef, error) {
	first, rest, hasSlash := strings.Cut(s, "/")
	host := ""
	if hasSlash && (strings.ContainsAny(first, ".:") || first == "localhost") {
		host = first
	} else {
		rest = s
	}
	if requireHost && host == "" {
		return imageRef{}, fmt.Errorf("%q names no registry; expected REGISTRY/REPOSITORY:TAG", s)
	}
	if strings.Contains(host, "@") {
		// Not echoed: it would carry a password into operations and logs.
		return imageRef{}, errors.New("the registry host holds user info (user:password@); pass credentials on their own")
	}
	if host != "" {
		if err := (registry.Reference{Registry: host}).ValidateRegistry(); err != nil {
			return imageRef{}, fmt.Errorf("%q names no valid registry host: %v", s, err)
		}
	}
	parsed, err := registry.ParseReference(localHost + "/" + rest)
	if err != nil {
		return imageRef{}, fmt.Errorf("%q is not a reference like registry.example.com/app:1: %v", s, err)
	}
	if parsed.Reference == "" {
		return imageRef{}, fmt.Errorf("%q names no tag or digest", s)
	}
	return imageRef{Host: host, Repository: parsed.Repository, Reference: parsed.Reference}, nil
}

// remoteHTTPClient is the HTTP client for other registries: keep-alive,
// no overall timeout (blobs can be large), no proxy (the dial check must
// see the registry's address, not a proxy's), link-local and cloud
// metadata addresses refused.
func remoteHTTPClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:                 nil,
		DialContext:           remoteDialer().DialContext,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: time.Minute,
		MaxIdleConnsPerHost:   8,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}}
}

// remoteDialer dials other registries. Its check runs on the resolved
// address, before connecting.
func remoteDialer() *net.Dialer {
	return &net.Dialer{Timeout: 10 * time.Second, Control: auth.RefuseLinkLocal}
}

// repository opens a repository: this registry through the in-process
// transport as principal p, or a remote one with cred.
func (r *Runner) repository(ref imageRef, p auth.Principal, cred orasauth.Credential, plainHTTP bool) (*remote.Repository, error) {
	host := ref.Host
	client := &orasauth.Client{Header: http.Header{"User-Agent": {r.userAgent}}, Cache: orasauth.NewCache()}
	if host == "" {
		host = localHost
		client.Client = &http.Client{Transport: r.opts.Local(p)}
		plainHTTP = true
	} else {
		client.Client = r.remote
		client.Credential = orasauth.StaticCredential(host, cred)
	}
	repo, err := remote.NewRepository(host + "/" + ref.Repository)
	if err != nil {
		return nil, err
	}
	repo.Client, repo.PlainHTTP = client, plainHTTP
	return repo, nil
}

// copyImage copies src:srcRef — an image or an index with all its
// platforms — and its referrers to dst:dstRef, counting progress into op.
func (r *Runner) copyImage(ctx context.Context, op *Operation, src *remote.Repository, srcRef string, dst *remote.Repository, dstRef string) (ocispec.Descriptor, error) {
	root, err := src.Resolve(ctx, srcRef)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("source: %w", describe(reasonOf(ctx, src, srcRef, err)))
	}
	seen := map[digest.Digest]bool{}
	var mu sync.Mutex
	var total Progress
	if err := walk(ctx, src, root, seen, &total); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("reading the source: %w", describe(err))
	}
	r.ops.update(op, func(op *Operation) {
		op.Progress.TotalBytes, op.Progress.TotalBlobs = total.TotalBytes, total.TotalBlobs
	})
	count := func(_ context.Context, d ocispec.Descriptor) error {
		mu.Lock()
		extra := !seen[d.Digest]
		seen[d.Digest] = true
		mu.Unlock()
		r.ops.update(op, func(op *Operation) {
			if extra { // a referrer found on the way
				op.Progress.TotalBytes += d.Size
				op.Progress.TotalBlobs++
			}
			op.Progress.Bytes += d.Size
			op.Progress.Blobs++
		})
		return nil
	}
	opts := oras.ExtendedCopyOptions{ExtendedCopyGraphOptions: oras.ExtendedCopyGraphOptions{
		CopyGraphOptions: oras.CopyGraphOptions{Concurrency: 4, PostCopy: count, OnCopySkipped: count},
	}}
	desc, err := oras.ExtendedCopy(ctx, src, root.Digest.String(), dst, dstRef, opts)
	if err != nil {
		return ocispec.Descriptor{}, describe(err)
	}
	return desc, nil
}

// walk counts the nodes of root's graph (not its referrers).
func walk(ctx context.Context, src content.Fetcher, d ocispec.Descriptor, seen map[digest.Digest]bool, p *Progress) error {
	if seen[d.Digest] {
		return nil
	}
	seen[d.Digest] = true
	p.TotalBytes += d.Size
	p.TotalBlobs++
	children, err := content.Successors(ctx, src, d)
	if err != nil {
		return err
	}
	for _, c := range children {
		if err := walk(ctx, src, c, seen, p); err != nil {
			return err
		}
	}
	return nil
}

// describe turns oras and registry errors into one readable line, keeping
// the registry's own message (such as a network policy denial) and naming
// this registry's repositories without its internal host.
func describe(err error) error {
	var ce *oras.CopyError
	if errors.As(err, &ce) && ce.Err != nil {
		err = ce.Err
	}
	var re *orascode.ErrorResponse
	if !errors.As(err, &re) {
		return err
	}
	where := re.URL.Host + re.URL.Path
	if re.URL.Host == localHost {
		where = "this registry: " + strings.TrimPrefix(re.URL.Path, "/v2/")
	}
	msg := http.StatusText(re.StatusCode)
	if len(re.Errors) > 0 {
		msg = re.Errors[0].Code + ": " + re.Errors[0].Message
	} else if re.StatusCode == http.StatusForbidden || re.StatusCode == http.StatusUnauthorized {
		msg += " (the identity the work runs as needs a role there)"
	}
	return fmt.Errorf("%s %s: %d %s", re.Method, where, re.StatusCode, msg)
}

// reasonOf returns the error of a GET for reference when err is a HEAD's
// refusal, whose answer has no body: the GET's error body carries the
// registry's reason (a disabled export policy, a network denial).
func reasonOf(ctx context.Context, src *remote.Repository, reference string, err error) error {
	var re *orascode.ErrorResponse
	if !errors.As(err, &re) || re.Method != http.MethodHead || len(re.Errors) > 0 {
		return err
	}
	_, rc, getErr := src.FetchReference(ctx, reference)
	if getErr == nil {
		rc.Close()
		return err
	}
	return getErr
}

// challenge asks a registry for its token service: GET /v2/ and read the
// Bearer challenge. A registry that answers 200 needs no credentials:
// realm and service are empty. A denial comes back as an error with the
// registry's message.
func (r *Runner) challenge(ctx context.Context, base string) (realm, service string, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v2/", nil)
	if err != nil {
		return "", "", err
	}
	req.Header.Set("User-Agent", r.userAgent)
	resp, err := r.remote.Do(req)
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		return "", "", nil
	}
	if resp.StatusCode != http.StatusUnauthorized {
		return "", "", responseError(resp)
	}
	params := parseChallenge(resp.Header.Get("WWW-Authenticate"))
	if params["realm"] == "" || params["service"] == "" {
		return "", "", fmt.Errorf("%s/v2/ gave no Bearer challenge with realm and service", base)
	}
	return params["realm"], params["service"], nil
}

// parseChallenge reads the parameters of a Bearer challenge.
func parseChallenge(h string) map[string]string {
	out := map[string]string{}
	scheme, rest, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return out
	}
	for rest != "" {
		rest = strings.TrimLeft(rest, " ,")
		k, v, ok := strings.Cut(rest, "=")
		if !ok {
			break
		}
		if strings.HasPrefix(v, `"`) {
			end := strings.IndexByte(v[1:], '"')
			if end < 0 {
				break
			}
			out[strings.ToLower(k)] = v[1 : end+1]
			rest = v[end+2:]
		} else {
			val, after, _ := strings.Cut(v, ",")
			out[strings.ToLower(k)] = val
			rest = after
		}
	}
	return out
}

// responseError reads an OCI error body into an error.
func responseError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var body struct {
		Errors []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	if json.Unmarshal(b, &body) == nil && len(body.Errors) > 0 {
		return fmt.Errorf("%s %s: %s", resp.Status, body.Errors[0].Code, body.Errors[0].Message)
	}
	return fmt.Errorf("%s %s", resp.Request.URL, resp.Status)
}

type remoteRepo = remote.Repository

func decodeJSON(resp *http.Response, v any) error {
	return json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(v)
}
