package postgres

import (
	"context"
	"math"

	"github.com/jackc/pgx/v5"
)

// AppendAudit implements storage.AuditLog: the entries get increasing
// sequence numbers, and those more than the limit behind the newest go,
// in the same implicit transaction (one round trip). Sequence numbers
// that a failed insert consumed leave gaps, so the log may hold a few
// entries fewer than the limit.
func (db *DB) AppendAudit(ctx context.Context, entries [][]byte) error {
	if len(entries) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO audit (entry) SELECT e FROM unnest($1::bytea[]) WITH ORDINALITY AS u(e, i) ORDER BY i`, entries)
	b.Queue(`DELETE FROM audit WHERE seq <= (SELECT max(seq) FROM audit) - $1`, db.auditLimit)
	return db.pool.SendBatch(ctx, b).Close()
}

// auditPage is how many entries ScanAudit reads per query.
const auditPage = 500

// ScanAudit implements storage.AuditLog, newest first, a page at a time.
func (db *DB) ScanAudit(ctx context.Context, fn func(entry []byte) bool) error {
	before := int64(math.MaxInt64)
	for {
		rows, err := db.pool.Query(ctx, `SELECT seq, entry FROM audit WHERE seq < $1 ORDER BY seq DESC LIMIT $2`, before, auditPage)
		if err != nil {
			return err
		}
		type row struct {
			Seq   int64
			Entry []byte
		}
		page, err := pgx.CollectRows(rows, pgx.RowToStructByPos[row])
		if err != nil {
			return err
		}
		for _, r := range page {
			if !fn(r.Entry) {
				return nil
			}
		}
		if len(page) < auditPage {
			return nil
		}
		before = page[len(page)-1].Seq
	}
}
