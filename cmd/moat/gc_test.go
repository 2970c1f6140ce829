package main

import (
	"net/http"
	"strings"
	"testing"

	"github.com/moat-registry/moat/storage"
)

func TestGC(t *testing.T) {
	// The dev source server: its garbage is the test's own.
	src := sourceServer(t)
	env := envWith(src.adminEnv(t))
	orphan := layer("garbage", 4096)
	src.registry(t, false).pushBlob("gc/orphan", orphan)

	r := runCLI(t, env, "", "gc", "--dry-run", "--grace-period", "0s", "-o", "json")
	if r.code != 0 {
		t.Fatalf("gc --dry-run: exit %d, %s", r.code, r.stderr)
	}
	rep := decodeOut[storage.GCReport](t, r)
	// A dry run counts what a real one would remove: the link and the blob.
	if !rep.DryRun || rep.LinksRemoved < 1 || rep.BlobsDeleted < 1 {
		t.Errorf("dry run report: %+v", rep)
	}

	if r = runCLI(t, env, "", "gc", "--grace-period", "0s"); r.code == 0 || !strings.Contains(r.stderr, "force") {
		t.Errorf("gc with no grace period and no --force: exit %d, %s", r.code, r.stderr)
	}
	r = runCLI(t, env, "", "gc", "--grace-period", "0s", "--force")
	if r.code != 0 {
		t.Fatalf("gc: exit %d, %s", r.code, r.stderr)
	}
	for _, row := range [][]string{{"PROPERTY", "VALUE"}, {"dryRun", "false"}, {"manifestsDeleted", "0"}, {"linksRemoved"}, {"blobsDeleted"}, {"bytesReclaimed"}, {"duration"}} {
		if !hasRow(r.stdout, row...) {
			t.Errorf("report lacks %v:\n%s", row, r.stdout)
		}
	}
	resp := src.registry(t, false).do(http.MethodHead, "/v2/gc/orphan/blobs/"+string(digestOf(orphan)), "", nil)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("the orphan blob answers %d after gc, want 404", resp.StatusCode)
	}

	// Within the default grace period (1h) nothing recent goes.
	ts := sharedServer(t)
	rep = decodeOut[storage.GCReport](t, ts.admin(t, "gc", "--untagged", "--dry-run", "-o", "json"))
	if !rep.DryRun || rep.BlobsDeleted != 0 {
		t.Errorf("report within the grace period: %+v", rep)
	}
	ts.adminFails(t, "gracePeriod", "gc", "--grace-period", "soon")
}
