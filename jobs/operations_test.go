package jobs

import (
	"errors"
	"testing"
	"time"
)

// TestOperationsPrune: finished operations are kept a day and at most
// maxOperations in all (the oldest finished go first); running ones are
// never forgotten.
func TestOperationsPrune(t *testing.T) {
	var o operations
	stale := mustStart(t, &o, "import", "a", "b")
	o.finish(stale, "", errors.New("failed long ago"))
	o.update(stale, func(op *Operation) { op.FinishedAt = time.Now().Add(-operationMaxAge - time.Minute) })
	recent := mustStart(t, &o, "import", "a", "b")
	o.finish(recent, "sha256:x", nil)
	running := mustStart(t, &o, "copy", "nightly/t", "")
	o.update(running, func(op *Operation) { op.StartedAt = time.Now().Add(-48 * time.Hour) })

	mustStart(t, &o, "purge", "nightly/p", "") // prunes
	if _, ok := o.get(stale.ID); ok {
		t.Error("an operation finished more than a day ago is still there")
	}
	for name, op := range map[string]*Operation{"recent": recent, "running": running} {
		if _, ok := o.get(op.ID); !ok {
			t.Errorf("the %s operation was forgotten", name)
		}
	}

	// Fill up to the limit with finished operations, oldest first.
	base := time.Now().Add(-time.Hour)
	var finished []*Operation
	for i := len(o.ops); i < maxOperations; i++ {
		op := mustStart(t, &o, "import", "a", "b")
		o.finish(op, "", nil)
		o.update(op, func(op *Operation) { op.FinishedAt = base.Add(time.Duration(i) * time.Second) })
		finished = append(finished, op)
	}
	if len(o.ops) != maxOperations {
		t.Fatalf("%d operations, want %d", len(o.ops), maxOperations)
	}
	o.update(recent, func(op *Operation) { op.FinishedAt = base.Add(time.Hour) })
	next := mustStart(t, &o, "import", "c", "d")
	if len(o.ops) != maxOperations {
		t.Errorf("%d operations after one more, want %d", len(o.ops), maxOperations)
	}
	if _, ok := o.get(finished[0].ID); ok {
		t.Error("the oldest finished operation survived the limit")
	}
	for name, op := range map[string]*Operation{"second oldest": finished[1], "new": next, "running": running, "recent": recent} {
		if _, ok := o.get(op.ID); !ok {
			t.Errorf("the %s operation was forgotten", name)
		}
	}

}

// TestOperationsRunningLimit: at most maxRunning operations run at once;
// the next is refused with ErrTooManyRunning until one ends. Running
// operations are never pruned, so this bounds them.
func TestOperationsRunningLimit(t *testing.T) {
	var o operations
	var running []*Operation
	for range maxRunning {
		running = append(running, mustStart(t, &o, "import", "a", "b"))
	}
	if op, err := o.start("copy", "s/t", ""); !errors.Is(err, ErrTooManyRunning) {
		t.Fatalf("start past the limit = %+v, %v; want ErrTooManyRunning", op, err)
	}
	o.finish(running[0], "", errors.New("done"))
	mustStart(t, &o, "copy", "s/t", "")
	if _, err := o.start("copy", "s/t", ""); !errors.Is(err, ErrTooManyRunning) {
		t.Errorf("start past the limit again: %v, want ErrTooManyRunning", err)
	}
	if len(o.ops) != maxRunning+1 {
		t.Errorf("%d operations, want %d running and the finished one", len(o.ops), maxRunning)
	}
}

// mustStart starts an operation.
func mustStart(t *testing.T, o *operations, kind, source, target string) *Operation {
	t.Helper()
	op, err := o.start(kind, source, target)
	if err != nil {
		t.Fatal(err)
	}
	return op
}

// TestOperationFinish: a success counts what was already there as
// copied; a failure keeps its error and progress.
func TestOperationFinish(t *testing.T) {
	var o operations
	op := mustStart(t, &o, "import", "src", "dst")
	o.update(op, func(op *Operation) { op.Progress = Progress{Bytes: 10, TotalBytes: 30, Blobs: 1, TotalBlobs: 3} })
	o.finish(op, "sha256:abc", nil)
	got, _ := o.get(op.ID)
	if got.Status != StatusSucceeded || got.Digest != "sha256:abc" || got.Progress != (Progress{30, 30, 3, 3}) || got.FinishedAt.IsZero() {
		t.Errorf("succeeded operation %+v", got)
	}
	op = mustStart(t, &o, "import", "src", "dst")
	o.update(op, func(op *Operation) { op.Progress = Progress{Bytes: 10, TotalBytes: 30, Blobs: 1, TotalBlobs: 3} })
	o.finish(op, "", errors.New("boom"))
	got, _ = o.get(op.ID)
	if got.Status != StatusFailed || got.Error != "boom" || got.Progress.Bytes != 10 {
		t.Errorf("failed operation %+v", got)
	}
	if _, ok := o.get("nope"); ok {
		t.Error("an unknown id is found")
	}
}
