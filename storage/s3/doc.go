// Package s3 keeps blobs and upload sessions in an S3-compatible bucket,
// through the AWS SDK for Go v2, behind storage.Blobs and storage.Uploads,
// so that several moat replicas can share one store. Upload session state
// lives in storage.UploadStates (the shared metadata store), the bytes in
// the bucket: any replica can take any chunk of any session.
//
// # Layout
//
//	<bucket>/<prefix>
//	├── blobs/<alg>/<xx>/<hex>          committed, verified blobs (as on disk)
//	└── uploads/<id>/                   staging of upload session <id>
//	    ├── data-<random>               the session's multipart upload, and
//	    │                               the object Finish completes it to
//	    └── seg-<random>                a staged segment (bytes after the parts)
//
// Every staging write gets a fresh random name, so a saved state never
// names bytes that a later, failed write could have changed.
//
// # Upload sessions
//
// S3 parts must be at least 5 MiB except the last, and OCI chunks can be
// any size. A session's bytes are therefore the parts of one multipart
// upload (Options.PartSize each, growing past the first thousand parts),
// followed by segments: small objects, one per chunk that did not fill a
// part, together less than a part. storage.UploadState holds the size,
// the running sha256 state (MarshalBinary) and, in Extra, the multipart
// upload id and key, each part's number, ETag, size and CRC32, and the
// segments' keys and sizes (session.go). An Append reads the chunk,
// hashing it; when the segments and the chunk fill a part it reads the
// segments back and sends them with the chunk as the next part, while it
// reads on; the rest becomes a new segment; then it saves the state,
// naming only what S3 accepted, and deletes the folded segments. Finish
// checks a sha256 digest against the hash state without reading a byte
// back; other algorithms read the assembled object once. See Finish for
// the rest, Expire for the cleanup of idle sessions and orphans.
//
// The chunks of one session are serialised per process; across replicas
// the client's own ordering (one chunk at a time, offsets checked)
// applies. Two replicas racing on one session cannot corrupt a blob: a
// part overwritten by the other replica no longer matches its recorded
// ETag, and CompleteMultipartUpload refuses it.
//
// # Blobs
//
// Put streams content of up to one part into memory and writes it with
// one PutObject after verifying it; more goes to a multipart upload at the
// blob's own key, completed only once the digest and size are verified.
// As on disk, a blob is marked (storage.Marker) before its bytes are
// committed or found already stored, which keeps garbage collection from
// deleting bytes a push is about to reference. Open asks only for the
// size; its reader fetches bytes with ranged GetObject requests when read.
// PresignGet issues short-lived URLs for redirecting blob downloads.
package s3
