package reliability

import "syscall"

// childProcAttr makes a moat process die with the test process (a
// timeout panic, a kill), so none outlives it.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// mountTmpfs mounts a tmpfs of the given size ("8m") on dir; unmount
// undoes it.
func mountTmpfs(dir, size string) (unmount func() error, err error) {
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		return nil, err
	}
	return func() error { return syscall.Unmount(dir, syscall.MNT_DETACH) }, nil
}

// clearUmask sets the process umask to 0; moat processes inherit it.
func clearUmask() { syscall.Umask(0) }
