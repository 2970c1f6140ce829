package e2e

import "syscall"

// childProcAttr makes a server the tests start receive SIGTERM when the
// test process dies (a timeout panic, a kill), so none outlives it.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
