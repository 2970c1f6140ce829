//go:build !linux

package e2e

import "syscall"

// childProcAttr is empty where the kernel cannot signal a child on its
// parent's death.
func childProcAttr() *syscall.SysProcAttr { return nil }

// detachMounts does nothing: dockerd runs on Linux only.
func detachMounts(string) {}
