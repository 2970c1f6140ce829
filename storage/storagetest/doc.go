// Package storagetest holds conformance suites that every implementation
// of the storage interfaces runs, in the manner of CNCF Distribution's
// driver test suites: one set of tests states the contract, and each
// backend runs it from a small test file.
//
// BlobSuite covers the bytes — storage.Blobs and storage.Uploads (disk,
// S3). MetaSuite covers the metadata — Meta, Marker, UploadStates,
// Documents, AuditLog and Collector (bbolt, PostgreSQL):
//
//	func TestMetaConformance(t *testing.T) {
//		storagetest.MetaSuite{Open: openMyStore}.Run(t)
//	}
//
//	func BenchmarkMeta(b *testing.B) {
//		storagetest.MetaSuite{Open: openMyStore}.Bench(b)
//	}
//
// Times the metadata suite stores are whole microseconds: a backend keeps
// at least that precision.
package storagetest
