package e2e

import (
	"bufio"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// childProcAttr makes a server the tests start receive SIGTERM when the
// test process dies (a timeout panic, a kill), so none outlives it.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}

// detachMounts lazily unmounts whatever is still mounted under dir (a
// dockerd can leave its exec root's netns mounts behind), deepest first,
// so that dir can be removed.
func detachMounts(dir string) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return
	}
	defer f.Close()
	prefix := filepath.Clean(dir) + "/"
	var points []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		// Field 5 is the mount point, with spaces escaped as \040.
		fields := strings.Fields(s.Text())
		if len(fields) > 4 && strings.HasPrefix(fields[4], prefix) {
			points = append(points, strings.ReplaceAll(fields[4], `\040`, " "))
		}
	}
	slices.Sort(points)
	for _, p := range slices.Backward(points) {
		_ = syscall.Unmount(p, syscall.MNT_DETACH)
	}
}
