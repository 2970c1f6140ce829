//go:build !linux

package reliability

import (
	"errors"
	"syscall"
)

func childProcAttr() *syscall.SysProcAttr { return nil }

func mountTmpfs(string, string) (func() error, error) {
	return nil, errors.New("tmpfs mounts are Linux-only")
}

// clearUmask is a no-op where the mode checks do not run as on Linux.
func clearUmask() {}
