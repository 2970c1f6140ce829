package jobs

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/moat-registry/moat/auth"
	"github.com/moat-registry/moat/oci"
	"github.com/opencontainers/go-digest"
)

type purgePlan struct {
	filter    *regexp.Regexp
	olderThan time.Duration
}

// purgeParams validates a purge task.
func purgeParams(p *auth.PurgeTask) (purgePlan, error) {
	if !oci.ValidRepository(p.Repository) {
		return purgePlan{}, invalidf("purge.repository: %q is not a repository name", p.Repository)
	}
	filter := p.Filter
	if filter == "" {
		filter = ".*"
	}
	// The filter must be a whole expression on its own before it is
	// anchored, so that "a)|(b" cannot escape the anchors.
	if _, err := regexp.Compile(filter); err != nil {
		return purgePlan{}, invalidf("purge.filter: %v", err)
	}
	re, err := regexp.Compile("^(?:" + filter + ")$")
	if err != nil {
		return purgePlan{}, invalidf("purge.filter: %v", err)
	}
	if p.OlderThan == "" {
		return purgePlan{}, invalidf("purge.olderThan: required, e.g. 7d or 12h")
	}
	d, err := parseAge(p.OlderThan)
	if err != nil {
		return purgePlan{}, invalidf("purge.olderThan: %v", err)
	}
	if p.Keep < 0 {
		return purgePlan{}, invalidf("purge.keep: must not be negative")
	}
	return purgePlan{filter: re, olderThan: d}, nil
}

// parseAge parses "7d", "12h", "90m" or "0".
func parseAge(s string) (time.Duration, error) {
	if s == "0" {
		return 0, nil
	}
	if n := len(s); n > 1 && s[n-1] == 'd' {
		d, err := time.ParseDuration(s[:n-1] + "h")
		if err != nil || d < 0 || d > math.MaxInt64/24 {
			// Past MaxInt64/24 the day count overflows into a negative age,
			// whose cutoff would lie in the future.
			return 0, fmt.Errorf("%q is not an age like 7d or 12h", s)
		}
		return 24 * d, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q is not an age like 7d or 12h", s)
	}
	return d, nil
}

// runPurge deletes the matching tags older than the cutoff (keeping the
// newest Keep of those) and, with Untagged, the manifests nothing tags or
// references any more. Deletes go through the registry as the task's
// identity, which needs the Delete role there.
func (r *Runner) runPurge(ctx context.Context, op *Operation, t auth.Task, p auth.Principal) error {
	plan, err := purgeParams(t.Purge)
	if err != nil {
		return err
	}
	repo := t.Purge.Repository
	r.ops.update(op, func(op *Operation) { op.Target = repo })
	client := &http.Client{Transport: r.opts.Local(p)}
	cutoff := now().Add(-plan.olderThan)
	tags, err := r.opts.Catalog.TagDetails(ctx, repo)
	if err != nil {
		return fmt.Errorf("repository %s: %w", repo, err)
	}
	// As acr purge does: of the matching tags older than the cutoff, the
	// Keep newest stay and the rest go.
	var old []int
	for i, tg := range tags {
		if plan.filter.MatchString(tg.Name) && tg.Updated.Before(cutoff) {
			old = append(old, i)
		}
	}
	sort.Slice(old, func(a, b int) bool { return tags[old[a]].Updated.After(tags[old[b]].Updated) })
	var doomed []string
	for k, i := range old {
		if k >= t.Purge.Keep {
			doomed = append(doomed, tags[i].Name)
		}
	}
	r.ops.update(op, func(op *Operation) { op.Progress.TotalBlobs = len(doomed) })
	for _, tag := range doomed {
		if err := deleteManifest(ctx, client, repo, tag); err != nil {
			return err
		}
		r.ops.update(op, func(op *Operation) { op.Progress.Blobs++ })
	}
	if !t.Purge.Untagged {
		return nil
	}
	// Deleting an index may leave its children untagged: a few passes.
	for range 3 {
		victims, err := r.untagged(ctx, repo, cutoff)
		if err != nil || len(victims) == 0 {
			return err
		}
		r.ops.update(op, func(op *Operation) { op.Progress.TotalBlobs += len(victims) })
		for _, d := range victims {
			if err := deleteManifest(ctx, client, repo, d.String()); err != nil {
				return err
			}
			r.ops.update(op, func(op *Operation) { op.Progress.Blobs++ })
		}
	}
	return nil
}

// untagged lists manifests older than cutoff that no tag names, no other
// manifest references, and whose subject (for signatures and other
// referrers) is gone.
func (r *Runner) untagged(ctx context.Context, repo string, cutoff time.Time) ([]digest.Digest, error) {
	tags, err := r.opts.Catalog.TagDetails(ctx, repo)
	if err != nil {
		return nil, err
	}
	tagged := map[digest.Digest]bool{}
	for _, tg := range tags {
		tagged[tg.Digest] = true
	}
	all, err := r.opts.Catalog.ManifestDigests(ctx, repo)
	if err != nil {
		return nil, err
	}
	present := map[digest.Digest]bool{}
	for _, d := range all {
		present[d] = true
	}
	referenced := map[digest.Digest]bool{}
	type info struct {
		subject digest.Digest
		created time.Time
	}
	infos := map[digest.Digest]info{}
	for _, d := range all {
		m, err := r.opts.Catalog.Manifest(ctx, repo, d.String(), true)
		if err != nil {
			continue // deleted meanwhile
		}
		for _, c := range m.Manifests {
			referenced[c] = true
		}
		infos[d] = info{m.Subject, m.Created}
	}
	var out []digest.Digest
	for d, in := range infos {
		if tagged[d] || referenced[d] || in.created.After(cutoff) {
			continue
		}
		if in.subject != "" && present[in.subject] {
			continue
		}
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, nil
}

func deleteManifest(ctx context.Context, client *http.Client, repo, ref string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, "http://"+localHost+"/v2/"+repo+"/manifests/"+ref, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusAccepted, http.StatusNotFound:
		return nil
	}
	err = responseError(resp)
	if strings.Contains(err.Error(), "DENIED") {
		return errors.Join(fmt.Errorf("deleting %s:%s", repo, ref), err)
	}
	return err
}
