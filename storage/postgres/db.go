package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/moat-registry/moat/storage"
)

// DB is the PostgreSQL metadata store. It implements the same interfaces
// as the bbolt storage.DB, with the same semantics, and is safe for
// several moat processes sharing one database.
type DB struct {
	pool       *pgxpool.Pool
	auditLimit int64
	log        *slog.Logger
	// closed ends the listeners when the DB is closed.
	closed context.Context
	close  context.CancelFunc
}

var (
	_ storage.Meta         = (*DB)(nil)
	_ storage.Marker       = (*DB)(nil)
	_ storage.UploadStates = (*DB)(nil)
	_ storage.Documents    = (*DB)(nil)
	_ storage.AuditLog     = (*DB)(nil)
	_ storage.Collector    = (*DB)(nil)
)

// Options tune Open.
type Options struct {
	// AuditLimit is the number of audit entries kept (default 100,000).
	AuditLimit uint64
	// MaxConns bounds the connection pool (0: pgxpool's default, the
	// larger of 4 and the number of CPUs, or pool_max_conns in the DSN).
	MaxConns int32
	// Logger receives what the listener has to say (default slog.Default).
	Logger *slog.Logger
}

// Open connects to the database dsn names (a postgres:// URL or a
// key=value string, as libpq takes), and creates or migrates the schema.
func Open(ctx context.Context, dsn string, opts Options) (*DB, error) {
	if opts.AuditLimit == 0 {
		opts.AuditLimit = 100_000
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if err := migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres %s: %w", where(cfg), err)
	}
	db := &DB{pool: pool, auditLimit: int64(min(opts.AuditLimit, 1<<62)), log: opts.Logger}
	db.closed, db.close = context.WithCancel(context.Background())
	return db, nil
}

// where names a database for errors, without its password.
func where(cfg *pgxpool.Config) string {
	c := cfg.ConnConfig
	return fmt.Sprintf("%s@%s:%d/%s", c.User, c.Host, c.Port, c.Database)
}

// Close stops the listeners and closes the connections.
func (db *DB) Close() error {
	db.close()
	db.pool.Close()
	return nil
}

// Check reports whether the database answers and has the schema this
// code expects (for readiness).
func (db *DB) Check(ctx context.Context) error {
	var v int
	if err := db.pool.QueryRow(ctx, "SELECT version FROM moat_schema").Scan(&v); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	if v != schemaVersion {
		return fmt.Errorf("postgres: schema version %d, want %d", v, schemaVersion)
	}
	return nil
}

// querier is what a pool, a connection and a transaction have in common.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// ensureRepository returns a repository's id, creating the repository if
// needed. Repositories are never deleted.
func ensureRepository(ctx context.Context, q querier, name string) (int64, error) {
	const sql = `
		WITH found AS (SELECT id FROM repositories WHERE name = $1),
		created AS (
			INSERT INTO repositories (name) SELECT $1 WHERE NOT EXISTS (SELECT FROM found)
			ON CONFLICT (name) DO NOTHING
			RETURNING id
		)
		SELECT id FROM found UNION ALL SELECT id FROM created`
	// A concurrent insert of the same name wins the conflict after this
	// statement took its snapshot: the next statement sees it.
	for range 3 {
		var id int64
		err := q.QueryRow(ctx, sql, name).Scan(&id)
		if !errors.Is(err, pgx.ErrNoRows) {
			return id, err
		}
	}
	return 0, fmt.Errorf("postgres: repository %q: could not create or find it", name)
}

// retry runs a transaction, and again (three times in all) when
// PostgreSQL ended it to break a deadlock or a serialization conflict,
// which the lock orders of this package make rare but do not rule out.
func retry(tx func() error) error {
	for attempt := 1; ; attempt++ {
		err := tx()
		if attempt == 3 || !retryable(err) {
			return err
		}
	}
}

// retryable reports an error that ends a transaction which, tried again,
// may succeed: a deadlock or a serialization failure.
func retryable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40P01" || pgErr.Code == "40001")
}

// digestStrings converts digests to the []string pgx sends as text[].
func digestStrings[D ~string](ds []D) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = string(d)
	}
	return out
}
