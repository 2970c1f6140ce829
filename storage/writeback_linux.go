package storage

import (
	"os"

	"golang.org/x/sys/unix"
)

// startWriteback asks the kernel to start writing a just-written range of
// f to disk without waiting (sync_file_range SYNC_FILE_RANGE_WRITE), so
// the fsync at the end of a large upload finds little left to do instead
// of all of it. Errors are ignored: the fsync still decides.
func startWriteback(f *os.File, off, n int64) {
	_ = unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
}
