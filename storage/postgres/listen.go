package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

// Reconnection backoff of Listen.
const (
	listenBackoffMin = 100 * time.Millisecond
	listenBackoffMax = 5 * time.Second
	// listenPingInterval is how long the listener waits in silence before
	// it checks its connection; listenPingTimeout bounds the check.
	listenPingInterval = 30 * time.Second
	listenPingTimeout  = 5 * time.Second
)

// Listen calls fn whenever a document update commits, in this process or
// any other sharing the database: it LISTENs on SettingsChannel on a
// connection of its own, outside the pool. fn is also called once each
// time the listener has (re)connected, since updates may have been missed
// while it was not listening — the first call closes the gap between the
// caller's initial load and the start of listening. A lost connection is
// re-established with backoff (100 ms doubling to 5 s). fn runs on
// Listen's goroutine; a slow fn delays the next notification, not others.
// Listen returns ctx's error when ctx is done, and nil when the DB is
// closed.
func (db *DB) Listen(ctx context.Context, fn func()) error {
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(db.closed, cancel)
	defer stop()
	cfg := db.pool.Config().ConnConfig
	backoff := listenBackoffMin
	for {
		err := listen(ctx, cfg, fn, func() { backoff = listenBackoffMin })
		if ctx.Err() != nil {
			return parent.Err()
		}
		db.log.Warn("postgres: settings listener lost its connection; reconnecting", "err", err, "in", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return parent.Err()
		case <-t.C:
		}
		backoff = min(2*backoff, listenBackoffMax)
	}
}

// listen connects, listens, calls connected and fn, then fn for each
// notification until the connection fails or ctx ends.
func listen(ctx context.Context, cfg *pgx.ConnConfig, fn, connected func()) error {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		conn.Close(closeCtx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{SettingsChannel}.Sanitize()); err != nil {
		return err
	}
	connected()
	fn()
	for {
		// A connection that died silently (a failover, a dropped route)
		// sends nothing: after a quiet interval, ping it.
		wait, cancel := context.WithTimeout(ctx, listenPingInterval)
		_, err := conn.WaitForNotification(wait)
		cancel()
		switch {
		case err == nil:
			fn()
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, context.DeadlineExceeded) && !conn.IsClosed():
			ping, cancel := context.WithTimeout(ctx, listenPingTimeout)
			err = conn.Ping(ping)
			cancel()
			if err != nil {
				return err
			}
		default:
			return err
		}
	}
}
