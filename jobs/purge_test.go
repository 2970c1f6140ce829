package jobs

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moat-registry/moat/auth"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// withNow sets the clock purge reads (the cutoff) for one test; the test
// must wait for the runs it starts before it ends.
func withNow(t *testing.T, at time.Time) {
	saved := now
	now = func() time.Time { return at }
	t.Cleanup(func() { now = saved })
}

// TestPurge: a purge task deletes the matching tags older than the cutoff
// (Keep 0: all of them; TestPurgeKeep covers Keep), then, with
// Untagged, the old manifests nothing tags or references: the children of
// a tagged index and signatures whose subject exists are kept; an
// untagged index goes, and its children after it; a signature goes once
// its subject is gone; anything younger than the cutoff stays.
func TestPurge(t *testing.T) {
	h := newHarness(t)
	h.tasksService("nightly", "AcrDelete", "repositories/app")

	img1 := h.image("app", "old-1", "one", nil)
	img2 := h.image("app", "old-2", "two", nil)
	h.tag("app", "v2", img2) // another, unmatched tag keeps it
	img3 := h.image("app", "old-3", "three", nil)
	img4 := h.image("app", "rel-1", "four", nil)
	c1, c2 := h.image("app", "", "child one", nil), h.image("app", "", "child two", nil)
	idxKeep := h.index("app", "idx-1", c1, c2)
	c3, c4 := h.image("app", "", "child three", nil), h.image("app", "", "child four", nil)
	idxGone := h.index("app", "old-idx", c3, c4)
	sig3 := h.image("app", "", "signature of three", &img3)
	sig4 := h.image("app", "", "signature of four", &img4)
	orphan := h.image("app", "", "old and untagged", nil)
	cutoff := time.Now()
	img5 := h.image("app", "old-4", "five, young", nil)
	young := h.image("app", "", "young and untagged", nil)
	sigYoung := h.image("app", "", "young signature of one", &img1)

	withNow(t, cutoff.Add(time.Hour))
	h.putTask(auth.Task{Service: "nightly", Name: "prune", Type: auth.TaskPurge,
		Purge: &auth.PurgeTask{Repository: "app", Filter: "old-.*", OlderThan: "1h", Untagged: true}})
	op := h.run("nightly", "prune")
	if op.Status != StatusSucceeded {
		t.Fatalf("purge: %s %s", op.Status, op.Error)
	}

	if got, want := h.tags("app"), []string{"idx-1", "old-4", "rel-1", "v2"}; !slices.Equal(got, want) {
		t.Errorf("tags after the purge %q, want %q", got, want)
	}
	left := h.manifests("app")
	for name, d := range map[string]v1.Descriptor{"old-2's image (tagged v2)": img2, "rel-1": img4, "tagged index": idxKeep,
		"tagged index's child 1": c1, "tagged index's child 2": c2, "signature of a kept image": sig4, "young tag": img5,
		"young untagged": young, "young signature of a deleted image": sigYoung} {
		if !left[d.Digest] {
			t.Errorf("%s (%s) was deleted", name, d.Digest)
		}
	}
	for name, d := range map[string]v1.Descriptor{"old-1's image": img1, "old-3's image": img3, "untagged index": idxGone,
		"its child 3": c3, "its child 4": c4, "signature of a deleted image": sig3, "old untagged": orphan} {
		if left[d.Digest] {
			t.Errorf("%s (%s) is still there", name, d.Digest)
		}
	}
	if p := op.Progress; p.Blobs != p.TotalBlobs || p.TotalBlobs != 4+7 {
		t.Errorf("progress %+v, want 11 deletions (4 tags, 7 manifests)", p)
	}
}

// TestPurgeKeep: as acr purge, Keep keeps the newest of the matching tags
// older than the cutoff (young ones stay anyway); Filter is anchored;
// without Untagged the manifests stay.
func TestPurgeKeep(t *testing.T) {
	h := newHarness(t)
	h.tasksService("nightly", "AcrDelete", "/")
	var all []v1.Descriptor
	for _, tag := range []string{"k1", "k2", "k3", "k4", "k5", "xk6"} {
		all = append(all, h.image("keep", tag, "content of "+tag, nil))
	}
	cutoff := time.Now()
	h.image("keep", "k6", "young", nil)
	withNow(t, cutoff.Add(24*time.Hour))

	h.putTask(auth.Task{Service: "nightly", Name: "keep3", Type: auth.TaskPurge,
		Purge: &auth.PurgeTask{Repository: "keep", Filter: "k[0-9]", OlderThan: "1d", Keep: 3}})
	if op := h.run("nightly", "keep3"); op.Status != StatusSucceeded {
		t.Fatalf("purge: %s %s", op.Status, op.Error)
	}
	if got, want := h.tags("keep"), []string{"k3", "k4", "k5", "k6", "xk6"}; !slices.Equal(got, want) {
		t.Errorf("tags %q, want %q (the 3 newest old matching ones, the young k6, xk6 not matching the anchored filter)", got, want)
	}
	left := h.manifests("keep")
	for _, d := range all {
		if !left[d.Digest] {
			t.Errorf("without untagged, manifest %s was deleted", d.Digest)
		}
	}

	// Younger than olderThan: nothing to do.
	h.putTask(auth.Task{Service: "nightly", Name: "week", Type: auth.TaskPurge,
		Purge: &auth.PurgeTask{Repository: "keep", OlderThan: "7d", Untagged: true}})
	if op := h.run("nightly", "week"); op.Status != StatusSucceeded || op.Progress.TotalBlobs != 0 {
		t.Fatalf("purge of nothing: %+v", op)
	}
	if got := h.tags("keep"); len(got) != 5 {
		t.Errorf("tags %q after a purge with nothing old enough", got)
	}
}

// TestPurgeNeedsDelete: the task's identity deletes through the registry
// and needs the Delete role; a run without it fails and says so; a
// repository that does not exist is an error too.
func TestPurgeNeedsDelete(t *testing.T) {
	h := newHarness(t)
	h.tasksService("reader", "AcrPull", "/")
	h.image("app", "old", "x", nil)
	withNow(t, time.Now().Add(48*time.Hour))
	h.putTask(auth.Task{Service: "reader", Name: "prune", Type: auth.TaskPurge, Purge: &auth.PurgeTask{Repository: "app", OlderThan: "1d"}})
	op := h.run("reader", "prune")
	if op.Status != StatusFailed || !strings.Contains(op.Error, "DENIED") || !strings.Contains(op.Error, "app:old") {
		t.Errorf("purge without Delete: %s %q, want a DENIED failure naming app:old", op.Status, op.Error)
	}
	if got := h.tags("app"); !slices.Equal(got, []string{"old"}) {
		t.Errorf("tags %q after a refused purge", got)
	}
	task, err := h.dir.GetTask(ctx, "reader", "prune")
	h.must(err)
	if task.LastRun == nil || task.LastRun.Status != StatusFailed || task.LastRun.Operation != op.ID || task.LastRun.Error != op.Error {
		t.Errorf("last run %+v, want the failed operation %s", task.LastRun, op.ID)
	}

	h.putTask(auth.Task{Service: "reader", Name: "nothing", Type: auth.TaskPurge, Purge: &auth.PurgeTask{Repository: "nothing", OlderThan: "1d"}})
	if op := h.run("reader", "nothing"); op.Status != StatusFailed || !strings.Contains(op.Error, "nothing") {
		t.Errorf("purge of a missing repository: %s %q", op.Status, op.Error)
	}
}
