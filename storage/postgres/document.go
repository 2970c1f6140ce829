package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/moat-registry/moat/storage"
)

// SettingsChannel is the channel UpdateDocuments notifies and Listen
// listens on.
const SettingsChannel = "moat_settings"

// docTx is a storage.DocTx over a PostgreSQL transaction. DocTx's methods
// take no context, so the transaction's is kept here.
type docTx struct {
	ctx context.Context
	tx  pgx.Tx
}

func (t docTx) Get(collection, key string) ([]byte, error) {
	var v []byte
	err := t.tx.QueryRow(t.ctx, `SELECT value FROM documents WHERE collection = $1 AND key = $2`, collection, key).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, storage.ErrNotFound
	}
	return v, err
}

func (t docTx) Put(collection, key string, value []byte) error {
	_, err := t.tx.Exec(t.ctx, `
		INSERT INTO documents (collection, key, value) VALUES ($1, $2, $3)
		ON CONFLICT (collection, key) DO UPDATE SET value = excluded.value`, collection, key, nonNil(value))
	return err
}

func (t docTx) Delete(collection, key string) error {
	ct, err := t.tx.Exec(t.ctx, `DELETE FROM documents WHERE collection = $1 AND key = $2`, collection, key)
	if err == nil && ct.RowsAffected() == 0 {
		err = storage.ErrNotFound
	}
	return err
}

// List reads the whole collection before calling fn, so that fn may use
// the transaction (a connection reads one result at a time).
func (t docTx) List(collection string, fn func(key string, value []byte) error) error {
	rows, err := t.tx.Query(t.ctx, `SELECT key, value FROM documents WHERE collection = $1 ORDER BY key`, collection)
	if err != nil {
		return err
	}
	type doc struct {
		Key   string
		Value []byte
	}
	docs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[doc])
	if err != nil {
		return err
	}
	for _, d := range docs {
		if err := fn(d.Key, d.Value); err != nil {
			return err
		}
	}
	return nil
}

// ViewDocuments implements storage.Documents in a read-only REPEATABLE
// READ transaction: fn sees one snapshot, as in a bbolt read transaction.
func (db *DB) ViewDocuments(ctx context.Context, fn func(storage.DocTx) error) error {
	return pgx.BeginTxFunc(ctx, db.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		return fn(docTx{ctx, tx})
	})
}

// UpdateDocuments implements storage.Documents. Writers take turns on a
// transaction-scoped advisory lock, across every process sharing the
// database, like bbolt's single writer: fn runs once, and each statement
// (READ COMMITTED) sees what the writers before it committed, so a
// read-modify-write such as the auth directory's version counter loses
// no update. The same transaction notifies SettingsChannel, which
// PostgreSQL delivers to the listeners when it commits.
func (db *DB) UpdateDocuments(ctx context.Context, fn func(storage.DocTx) error) error {
	b := &pgx.Batch{}
	b.BeginTx(pgx.TxOptions{})
	b.Queue(`SELECT pg_advisory_xact_lock($1)`, lockDocuments)
	br := db.pool.SendBatch(ctx, b)
	tx := br.Tx()
	defer tx.Rollback(context.WithoutCancel(ctx)) // after Commit, a no-op
	if err := br.Close(); err != nil {
		return err
	}
	if err := fn(docTx{ctx, tx}); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `SELECT pg_notify($1, '')`, SettingsChannel); err != nil {
		return err
	}
	return tx.Commit(ctx)
}
