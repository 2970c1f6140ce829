// Package postgres keeps moat's metadata in PostgreSQL, for several moat
// replicas sharing one database: the same interfaces as the embedded
// bbolt store (storage.Meta, Marker, UploadStates, Documents, AuditLog,
// Collector), the same semantics — errors, orders, transactions — checked
// by the same conformance suite (storage/storagetest), through
// github.com/jackc/pgx/v5 and its pool.
//
// # Schema
//
// Open creates the tables and migrates them (schema.go): moat_schema holds
// the version; each migration runs in its own transaction, and replicas
// starting together take turns on an advisory lock, so one migrates and
// the others find the work done. A database of a newer version is
// refused. Give moat a database of its own (or a schema, through
// search_path in the DSN). The tables mirror the bbolt buckets:
//
//	moat_schema   version
//	repositories  id, name                       ← bucket repos (never deleted)
//	manifests     (repository, digest) → media_type, artifact_type,
//	              subject, created, size, blobs[], children[],
//	              annotations (jsonb), raw        ← repos/<r>/m
//	              index (repository, subject, digest) ← repos/<r>/r: referrers
//	tags          (repository, tag) → digest, updated   ← repos/<r>/t
//	              index (repository, digest)      ← repos/<r>/d; the foreign
//	              key to manifests deletes a manifest's tags with it
//	links         (repository, digest) → size, linked  ← repos/<r>/b
//	              index (digest): FindBlob, garbage collection
//	blobs         digest → size, marked            ← blobs: the GC mark
//	uploads       id → state (jsonb)               ← uploads
//	documents     (collection, key) → value (bytea) ← docs
//	audit         seq (identity) → entry (bytea)   ← audit, bounded
//
// Keys that are listed in order (names, tags, digests, document keys) are
// COLLATE "C": byte order, as bbolt's, whatever the database's locale, and
// every listing walks an index (the tag list from the (repository, tag)
// key with last/n, the catalog from repositories.name). Times are
// timestamptz, to the microsecond, and the database's clock sets them, so
// the replicas' clocks do not matter to garbage collection.
//
// # Hot paths
//
// A manifest HEAD by tag is one query (repository, tag and manifest
// joined), which does not read the raw bytes; a GET adds them. A manifest
// push is one batch — begin, create the repository, check the links,
// write the manifest and its tags — and a commit. A blob link is one
// statement. pgx prepares and caches each statement per connection.
//
// # Several writers
//
// Where bbolt relies on its single writer, this package locks:
// UpdateDocuments takes a transaction-scoped advisory lock, so document
// writers take turns across replicas and a read-modify-write (the auth
// directory's version counter) loses nothing; it also notifies the
// moat_settings channel, and Listen calls a function on every replica
// when such a transaction commits. Garbage collection (gc.go) runs one
// collector at a time under a session advisory lock (storage.ErrBusy for
// the others) and decides about each manifest, link and blob while it
// holds that row locked, as the writers that could change the decision
// lock the same row.
package postgres
