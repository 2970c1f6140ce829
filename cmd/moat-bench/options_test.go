package main

import (
	"flag"
	"io"
	"slices"
	"testing"
	"time"
)

func parseOptions(t *testing.T, args ...string) (Options, error) {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	of := bindOptions(fs)
	if err := fs.Parse(args); err != nil {
		return Options{}, err
	}
	return of.options()
}

func TestOptions(t *testing.T) {
	t.Run("defaults are the full run", func(t *testing.T) {
		o, err := parseOptions(t)
		if err != nil {
			t.Fatal(err)
		}
		if o.LargeSize != 1<<30 || o.ChunkSize != 16<<20 || o.Tags != 100_000 || o.Concurrency != 8 || !o.DropCaches || !slices.Equal(o.Scenarios, scenarioNames) {
			t.Errorf("defaults: %+v", o)
		}
	})
	t.Run("quick keeps explicit flags", func(t *testing.T) {
		o, err := parseOptions(t, "--quick", "--tags=777", "--large-size=3MiB")
		if err != nil {
			t.Fatal(err)
		}
		q := QuickOptions()
		if o.Tags != 777 || o.LargeSize != 3<<20 || o.N != q.N || o.Duration != q.Duration || o.ChunkSize != q.ChunkSize || o.DropCaches {
			t.Errorf("--quick --tags=777 --large-size=3MiB: %+v", o)
		}
	})
	t.Run("scenario subset", func(t *testing.T) {
		o, err := parseOptions(t, "--scenarios=head-manifest, tags-list", "--duration=2s")
		if err != nil {
			t.Fatal(err)
		}
		if !o.wants("head-manifest") || !o.wants("tags-list") || o.wants("push-small") || o.Duration != 2*time.Second {
			t.Errorf("subset: %+v", o)
		}
	})
	for _, bad := range [][]string{
		{"--scenarios=push-everything"},
		{"--concurrency=0"},
		{"--large-size=4"},
		{"--large-size=big"},
	} {
		t.Run("refuses "+bad[0], func(t *testing.T) {
			if _, err := parseOptions(t, bad...); err == nil {
				t.Errorf("%v accepted", bad)
			}
		})
	}
}

func TestHeadConcurrenciesAlsoRun16(t *testing.T) {
	for _, tt := range []struct {
		c    int
		want []int
	}{{8, []int{8, 16}}, {16, []int{16}}, {1, []int{1, 16}}} {
		o := DefaultOptions()
		o.Concurrency = tt.c
		if got := o.headConcurrencies(); !slices.Equal(got, tt.want) {
			t.Errorf("concurrency %d: %v, want %v", tt.c, got, tt.want)
		}
	}
}
