package main

import (
	"context"
	"fmt"
	"time"
)

// tagPage is the page size of the paginated listing.
const tagPage = 100

func tagName(i int) string { return fmt.Sprintf("t%06d", i) }

// baseTag is the tag of the one image a tags repository holds; the other
// tags point at the same manifest.
const baseTag = "base"

// TagsList seeds a repository with count tags of one manifest (manifest
// PUT by tag, opts.Concurrency workers) and times listing it whole, its
// first and a middle page of 100, and walking every page.
func (b *Bench) TagsList(ctx context.Context, t *Target, count int) Result {
	repo := repoTags(count)
	res := Result{Scenario: fmt.Sprintf("tags-list %d", count), Subject: t.Name}
	img := buildImage(baseTag, make([]byte, smallLayerSize), -count)
	if err := pushImage(ctx, t.Client, repo, &img); err != nil {
		return failed(res, err)
	}
	var errs errorLog
	done := b.phase(fmt.Sprintf("tags-seed-%d", count))
	seed := runN(ctx, b.opts.Concurrency, count, &errs, func(ctx context.Context, i int) error {
		return t.Client.PutManifest(ctx, repo, tagName(i), mediaManifest, img.Manifest)
	})
	done()
	res.add("seed", "tags/s", seed.rate(), true)
	want := count + 1 // and baseTag

	done = b.phase(fmt.Sprintf("tags-whole-%d", count))
	whole := b.timeTags(ctx, &errs, b.opts.ListReps, func(ctx context.Context) error {
		p, err := t.Client.Tags(ctx, repo, 0, "", "")
		if err == nil && len(p.Tags) != want {
			err = fmt.Errorf("tags/list: %d tags, want %d", len(p.Tags), want)
		}
		return err
	})
	done()
	res.add("whole list p50", "ms", whole.P50, false)

	// page lists the page after last, which holds want tags.
	page := func(last string, want int) func(context.Context) error {
		return func(ctx context.Context) error {
			p, err := t.Client.Tags(ctx, repo, tagPage, last, "")
			if err == nil && len(p.Tags) != want {
				err = fmt.Errorf("tags/list?n=%d&last=%s: %d tags, want %d", tagPage, last, len(p.Tags), want)
			}
			return err
		}
	}
	done = b.phase(fmt.Sprintf("tags-pages-%d", count))
	first := b.timeTags(ctx, &errs, b.opts.PageReps, page("", min(tagPage, want)))
	res.add("first page p50", "ms", first.P50, false)
	mid := count / 2 // tags after t<mid>: mid+1 … count-1
	middle := b.timeTags(ctx, &errs, b.opts.PageReps, page(tagName(mid), min(tagPage, count-mid-1)))
	res.add("middle page p50", "ms", middle.P50, false)

	start := time.Now()
	pages, n, err := walkTags(ctx, t.Client, repo)
	walk := time.Since(start)
	done()
	if err == nil && n != want {
		err = fmt.Errorf("walking tags/list: %d tags, want %d", n, want)
	}
	errs.Add(err)
	res.add("walk all pages", "ms", ms(walk), false)
	res.add("pages", "pages", float64(pages), false)

	res.Ops = count + b.opts.ListReps + 2*b.opts.PageReps + pages
	res.Seconds = seed.elapsed.Seconds()
	res.setErrors(&errs)
	return res
}

// timeTags runs op reps times in a row and summarizes the successes.
func (b *Bench) timeTags(ctx context.Context, errs *errorLog, reps int, op func(context.Context) error) Summary {
	var lat []time.Duration
	for range reps {
		start := time.Now()
		err := op(ctx)
		if err != nil {
			errs.Add(err)
			continue
		}
		lat = append(lat, time.Since(start))
	}
	return Summarize(lat)
}

// walkTags follows the pages of 100 (the Link header, or last= when a
// registry sends none) to the end, checking the tags ascend.
func walkTags(ctx context.Context, c *Client, repo string) (pages, n int, err error) {
	last, ref := "", ""
	for {
		p, err := c.Tags(ctx, repo, tagPage, last, ref)
		if err != nil {
			return pages, n, err
		}
		pages++
		for _, tag := range p.Tags {
			if tag <= last {
				return pages, n, fmt.Errorf("tags/list: %q after %q", tag, last)
			}
			last = tag
		}
		n += len(p.Tags)
		if len(p.Tags) < tagPage {
			return pages, n, nil
		}
		ref = p.Next
	}
}
