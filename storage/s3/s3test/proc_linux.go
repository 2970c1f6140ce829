package s3test

import "syscall"

// sysProcAttr makes the kernel kill the gateway if the test binary dies
// without stopping it.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
