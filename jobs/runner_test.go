package jobs

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestCloseRefusesLateWork: work started while Close runs either ends
// before Close returns or is refused; nothing runs after Close.
func TestCloseRefusesLateWork(t *testing.T) {
	for range 500 {
		rctx, cancel := context.WithCancel(context.Background())
		r := &Runner{ctx: rctx, cancel: cancel}
		var closed atomic.Bool
		var started, finished, late atomic.Int32
		var callers sync.WaitGroup
		for range 4 {
			callers.Add(1)
			go func() {
				defer callers.Done()
				err := r.background(func(ctx context.Context) {
					<-ctx.Done()
					if closed.Load() {
						late.Add(1)
					}
					finished.Add(1)
				})
				if err == nil {
					started.Add(1)
				}
			}()
		}
		r.Close()
		closed.Store(true)
		callers.Wait()
		deadline := time.Now().Add(10 * time.Second)
		for finished.Load() != started.Load() {
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d background runs never ended", started.Load()-finished.Load(), started.Load())
			}
			time.Sleep(time.Millisecond)
		}
		if n := late.Load(); n > 0 {
			t.Fatalf("%d background runs started after Close returned", n)
		}
	}
}
