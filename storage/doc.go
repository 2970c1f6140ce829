// Package storage keeps moat's data: blob bytes on the local disk,
// content-addressed and verified, and metadata in one bbolt file. Both sit
// behind small interfaces — Blobs, Uploads, Meta, UploadStates, Documents,
// AuditLog — so that other backends can stand behind the same contract;
// the disk + bbolt pair is the embedded default.
//
// # On-disk layout
//
//	<data>/
//	├── meta.db                  bbolt: all metadata (below), mode 0600
//	├── blobs/<alg>/<xx>/<hex>   blob bytes; <alg> is sha256, sha384 or sha512,
//	│                            <xx> the first two hex digits of the digest
//	├── uploads/<id>             bytes of a resumable upload session (32 hex)
//	├── tmp/                     temp files of monolithic uploads, emptied at start
//	├── keys/                    token signing keys (auth.KeyRing), mode 0600
//	└── admin-password           the generated bootstrap password, mode 0600
//
// meta.db holds these buckets (names are constants in bolt.go; every
// top-level bucket is created at open, in one transaction that also runs
// the schema migrations):
//
//	meta      schema → version (uint64)
//	repos     <repository> → nested:
//	            m  <digest> → manifest record (binary, record.go)
//	            t  <tag> → <digest> 0x00 <set time>
//	            d  <digest> 0x00 <tag> → (index of tags by digest)
//	            b  <digest> → link record: size, link time
//	            r  <subject> 0x00 <referrer> → descriptor (JSON)
//	blobs     <digest> → size, mark time: every stored blob
//	uploads   <id> → upload state (JSON: repository, size, sha256 state)
//	docs      <collection> → <key> → JSON document (control plane)
//	audit     <sequence> → audit entry (JSON), bounded
//
// # Writes
//
// Blob bytes stream to a temp file in the same filesystem while they are
// hashed; the digest is checked, the file fsynced and renamed into place
// and the directory fsynced, so a blob is either whole and verified or
// absent. Upload sessions append to their file and save their offset and
// running sha256 state in bbolt after each chunk: the state, not the
// file, is the truth, so bytes past it (a write cut off by a crash) are
// dropped on the next append, and a session survives a restart. A blob
// becomes visible in a repository only through a link, written after the
// bytes are committed. Metadata changes are bbolt transactions; concurrent
// writers share commits (commit.go), one fsync pair for many.
//
// # Garbage collection
//
// Deleting manifests and tags leaves blobs that nothing references. The
// collector (gc.go) runs online, while pushes continue, without ever
// deleting bytes that a push is about to reference:
//
//  1. Before the blob store commits bytes — or finds them already there and
//     reuses them — it marks the blob: the global blobs record gets the
//     current time, in its own transaction.
//  2. Linking a blob into a repository (upload, mount) requires that record
//     and refreshes both the link time and the mark.
//  3. The collector (optionally) deletes untagged manifests that nothing
//     references and whose subject is gone; then, per repository, drops the
//     links to blobs no manifest of that repository references and that
//     were linked before the grace period; then, for every stored blob that
//     no repository links, decides and deletes inside one write transaction:
//     if the mark is within the grace period it keeps the blob, otherwise it
//     removes the bytes and the record.
//
// Because bbolt serialises write transactions, an upload's mark (step 1)
// happens either before the collector's decision — which then sees a fresh
// mark and keeps the bytes — or after it, when the bytes are gone and the
// upload commits its own. A mount links only while the record exists, so
// it never points at deleted bytes. The grace period (gc.gracePeriod,
// default one hour) covers a push between its last blob and its
// manifest: a push slower than that may have to send a blob again, and
// loses nothing it was told was stored.
package storage
