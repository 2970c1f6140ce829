// Package jobs runs moat's long-running work: imports from other
// registries (with oras-go as the copy engine) and the tasks that `tasks`
// service instances own (copy, purge), on demand and on cron schedules.
// Local repositories are reached through an in-process connection to the
// registry handler, so every write is validated like a push and acts as
// a principal: the built-in importer, or a task's system-assigned
// identity with the roles it holds.
package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/moat-registry/moat/auth"
	"github.com/moat-registry/moat/storage"
	"github.com/opencontainers/go-digest"
	orasauth "oras.land/oras-go/v2/registry/remote/auth"
)

// Catalog is what purge reads about a repository.
type Catalog interface {
	TagDetails(ctx context.Context, repository string) ([]storage.TagInfo, error)
	ManifestDigests(ctx context.Context, repository string) ([]digest.Digest, error)
	Manifest(ctx context.Context, repository, reference string, body bool) (*storage.Manifest, error)
}

// Options configure a Runner.
type Options struct {
	Guard *auth.Guard
	// Local returns a transport to this registry's in-process handler whose
	// requests act as p.
	Local   func(p auth.Principal) http.RoundTripper
	Catalog Catalog
	Logger  *slog.Logger
	// Version goes into the User-Agent.
	Version string
}

// Runner runs imports and tasks.
type Runner struct {
	opts      Options
	dir       *auth.Directory
	ops       operations
	remote    *http.Client
	userAgent string
	wake      chan struct{}

	// ctx ends when the runner closes; running work stops and wg waits
	// for it. mu orders wg.Add against Close: once closed is set, nothing
	// new starts.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	closed bool
}

// New returns a runner; Schedule starts its scheduler.
func New(opts Options) *Runner {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Version == "" {
		opts.Version = "dev"
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Runner{opts: opts, dir: opts.Guard.Directory(), remote: remoteHTTPClient(), userAgent: auth.ImporterUserAgent + opts.Version,
		wake: make(chan struct{}, 1), ctx: ctx, cancel: cancel}
}

// Close stops running imports and tasks and waits until they have ended,
// so nothing writes to storage after it returns.
func (r *Runner) Close() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.cancel()
	r.wg.Wait()
}

// background runs fn as tracked work, unless the runner is closed.
func (r *Runner) background(fn func(ctx context.Context)) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errors.New("moat is shutting down")
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		fn(r.ctx)
	}()
	return nil
}

// Operation returns an operation by id.
func (r *Runner) Operation(id string) (Operation, bool) { return r.ops.get(id) }

// ImportRequest is POST /admin/v1/import.
type ImportRequest struct {
	Source      string       `json:"source"`
	Target      string       `json:"target"`
	Credentials *Credentials `json:"credentials,omitempty"`
	PlainHTTP   bool         `json:"plainHTTP"`
}

// Credentials for the source registry of an import.
type Credentials struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// InvalidError is a request the caller must fix.
type InvalidError struct{ msg string }

func (e *InvalidError) Error() string { return e.msg }

func invalidf(format string, args ...any) error { return &InvalidError{fmt.Sprintf(format, args...)} }

// Import starts a server-side copy of an image (all platforms, and its
// referrers) from another registry into this one, as the built-in
// importer, and returns its operation (ErrTooManyRunning while
// maxRunning operations run).
func (r *Runner) Import(req ImportRequest) (Operation, error) {
	src, err := parseImageRef(req.Source, true)
	if err != nil {
		return Operation{}, invalidf("source: %v", err)
	}
	dst, err := parseImageRef(req.Target, false)
	if err != nil {
		return Operation{}, invalidf("target: %v", err)
	}
	if dst.Host != "" {
		return Operation{}, invalidf("target: %q names a registry; the target is a repository of this registry (repo:tag)", req.Target)
	}
	if strings.Contains(dst.Reference, ":") {
		return Operation{}, invalidf("target: name a tag, not a digest")
	}
	var cred orasauth.Credential
	if req.Credentials != nil {
		cred = orasauth.Credential{Username: req.Credentials.Username, Password: req.Credentials.Password}
	}
	op, err := r.ops.start("import", src.String(), dst.String())
	if err != nil {
		return Operation{}, err
	}
	err = r.background(func(ctx context.Context) {
		d, err := r.runImport(ctx, op, src, dst, cred, req.PlainHTTP)
		r.ops.finish(op, d, err)
		if err != nil {
			r.opts.Logger.Warn("import failed", "operation", op.ID, "source", src.String(), "err", err)
		} else {
			r.opts.Logger.Info("imported", "operation", op.ID, "source", src.String(), "target", dst.String(), "digest", d)
		}
	})
	if err != nil {
		r.ops.finish(op, "", err)
	}
	out, _ := r.ops.get(op.ID)
	return out, nil
}

func (r *Runner) runImport(ctx context.Context, op *Operation, src, dst imageRef, cred orasauth.Credential, plainHTTP bool) (string, error) {
	from, err := r.repository(src, auth.Principal{}, cred, plainHTTP)
	if err != nil {
		return "", err
	}
	to, err := r.repository(dst, auth.Importer, orasauth.Credential{}, true)
	if err != nil {
		return "", err
	}
	desc, err := r.copyImage(ctx, op, from, src.Reference, to, dst.Reference)
	if err != nil {
		return "", err
	}
	return desc.Digest.String(), nil
}

// CheckTask validates a task definition and fills defaults.
func CheckTask(t *auth.Task) error {
	if t.Schedule != "" {
		sched, err := parseSchedule(t.Schedule)
		if err != nil {
			return invalidf("schedule: %q is not a cron schedule (5 fields, e.g. \"0 3 * * *\", or @daily): %v", t.Schedule, err)
		}
		// cron gives the zero time for a date that never comes (30
		// February), which the scheduler would take as always due.
		if sched.Next(now().UTC()).IsZero() {
			return invalidf("schedule: %q never fires", t.Schedule)
		}
	}
	switch t.Type {
	case auth.TaskCopy:
		if t.Copy == nil || t.Purge != nil {
			return invalidf("copy: a copy task needs copy {source, target} and no purge")
		}
		src, err := parseImageRef(t.Copy.Source, false)
		if err != nil {
			return invalidf("copy.source: %v", err)
		}
		dst, err := parseImageRef(t.Copy.Target, false)
		if err != nil {
			return invalidf("copy.target: %v", err)
		}
		if src.Host == "" && dst.Host == "" && src.Repository == dst.Repository && src.Reference == dst.Reference {
			return invalidf("copy: source and target are the same")
		}
	case auth.TaskPurge:
		if t.Purge == nil || t.Copy != nil {
			return invalidf("purge: a purge task needs purge {repository, olderThan} and no copy")
		}
		if _, err := purgeParams(t.Purge); err != nil {
			return err
		}
	default:
		return invalidf("type: %q is not copy or purge", t.Type)
	}
	return nil
}

// RunTask runs a task now and returns its operation (ErrTooManyRunning
// while maxRunning operations run).
func (r *Runner) RunTask(ctx context.Context, service, name string) (Operation, error) {
	t, err := r.dir.GetTask(ctx, service, name)
	if err != nil {
		return Operation{}, err
	}
	svc, ok := r.dir.Snapshot().Service(service)
	if !ok || svc.Identity.PrincipalID == "" {
		return Operation{}, invalidf("service %q has no system-assigned identity for its tasks to run as", service)
	}
	p, ok := r.dir.Snapshot().PrincipalByName(svc.Identity.PrincipalName)
	if !ok {
		return Operation{}, invalidf("the identity %q of service %q is gone", svc.Identity.PrincipalName, service)
	}
	op, err := r.ops.start(t.Type, service+"/"+name, "")
	if err != nil {
		return Operation{}, err
	}
	run := auth.TaskRun{Operation: op.ID, Status: StatusRunning, Started: op.StartedAt}
	_ = r.dir.SetTaskRun(ctx, service, name, run)
	err = r.background(func(ctx context.Context) {
		d, err := r.runTask(ctx, op, t, p)
		// The task's last run is recorded before the operation says it
		// ended, so whoever sees the end sees the record.
		run.Status, run.Finished = StatusSucceeded, time.Now().UTC()
		if err != nil {
			run.Status, run.Error = StatusFailed, err.Error()
		}
		if err := r.dir.SetTaskRun(context.Background(), service, name, run); err != nil {
			r.opts.Logger.Warn("recording a task run", "task", service+"/"+name, "err", err)
		}
		r.ops.finish(op, d, err)
		if err != nil {
			r.opts.Logger.Warn("task failed", "task", service+"/"+name, "operation", op.ID, "err", err)
		} else {
			r.opts.Logger.Info("task succeeded", "task", service+"/"+name, "operation", op.ID)
		}
	})
	if err != nil {
		r.ops.finish(op, "", err)
	}
	out, _ := r.ops.get(op.ID)
	return out, nil
}

func (r *Runner) runTask(ctx context.Context, op *Operation, t auth.Task, p auth.Principal) (string, error) {
	switch t.Type {
	case auth.TaskCopy:
		return r.runCopy(ctx, op, t, p)
	case auth.TaskPurge:
		return "", r.runPurge(ctx, op, t, p)
	}
	return "", fmt.Errorf("unknown task type %q", t.Type)
}

// runCopy copies between two registries. This registry is reached as the
// task's identity; another registry through workload identity
// federation: moat signs a token for the task (sub tasks:<instance>,
// aud = that registry's service, which must name its host) and exchanges
// it there for a refresh token; a registry that asks for no credentials
// gets none.
func (r *Runner) runCopy(ctx context.Context, op *Operation, t auth.Task, p auth.Principal) (string, error) {
	// Checked when stored, but a task stored before a check was added
	// may not pass it.
	src, err := parseImageRef(t.Copy.Source, false)
	if err != nil {
		return "", fmt.Errorf("copy.source: %w", err)
	}
	dst, err := parseImageRef(t.Copy.Target, false)
	if err != nil {
		return "", fmt.Errorf("copy.target: %w", err)
	}
	r.ops.update(op, func(op *Operation) { op.Source, op.Target = src.String(), dst.String() })
	open := func(ref imageRef) (*remoteRepo, error) {
		cred := orasauth.Credential{}
		if ref.Host != "" {
			var err error
			if cred, err = r.federate(ctx, ref.Host, t.Copy.PlainHTTP, t.Service); err != nil {
				return nil, fmt.Errorf("%s: %w", ref.Host, err)
			}
		}
		return r.repository(ref, p, cred, t.Copy.PlainHTTP)
	}
	from, err := open(src)
	if err != nil {
		return "", err
	}
	to, err := open(dst)
	if err != nil {
		return "", err
	}
	desc, err := r.copyImage(ctx, op, from, src.Reference, to, dst.Reference)
	if err != nil {
		return "", err
	}
	return desc.Digest.String(), nil
}

// federate obtains a refresh token for the task at another registry.
func (r *Runner) federate(ctx context.Context, host string, plainHTTP bool, instance string) (orasauth.Credential, error) {
	scheme := "https"
	if plainHTTP {
		scheme = "http"
	}
	base := scheme + "://" + host
	_, service, err := r.challenge(ctx, base)
	if err != nil {
		return orasauth.Credential{}, err
	}
	if service == "" {
		return orasauth.Credential{}, nil // it asks for no credentials
	}
	// The token's audience comes from the registry's own answer: one that
	// named another service (this registry's, say) would receive a token
	// valid there.
	if !sameHost(service, host, plainHTTP) {
		return orasauth.Credential{}, fmt.Errorf("its token service %q is not %s: refusing to send it a workload token for another audience (its registry.name must be the host the task names)", service, host)
	}
	wt, err := r.opts.Guard.WorkloadToken(auth.ServiceTasks, instance, service)
	if err != nil {
		return orasauth.Credential{}, err
	}
	form := url.Values{"grant_type": {"access_token"}, "access_token": {wt}, "service": {service}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/oauth2/exchange", strings.NewReader(form.Encode()))
	if err != nil {
		return orasauth.Credential{}, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("User-Agent", r.userAgent)
	resp, err := r.remote.Do(req)
	if err != nil {
		return orasauth.Credential{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return orasauth.Credential{}, fmt.Errorf("token exchange: %w", responseError(resp))
	}
	var out struct {
		RefreshToken string `json:"refresh_token"`
	}
	if err := decodeJSON(resp, &out); err != nil || out.RefreshToken == "" {
		return orasauth.Credential{}, errors.New("token exchange: no refresh_token in the answer")
	}
	return orasauth.Credential{RefreshToken: out.RefreshToken}, nil
}

// sameHost reports whether a token service names host: equal ignoring
// case, and with the scheme's default port (443, or 80 over plain HTTP)
// the same as none.
func sameHost(service, host string, plainHTTP bool) bool {
	port := ":443"
	if plainHTTP {
		port = ":80"
	}
	norm := func(h string) string { return strings.TrimSuffix(strings.ToLower(h), port) }
	return norm(service) == norm(host)
}

// Wake makes the scheduler re-read the tasks (after a change).
func (r *Runner) Wake() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// now is the scheduler's clock.
var now = time.Now
