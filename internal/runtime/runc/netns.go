package runc

import (
	"errors"
	"fmt"
	"os"
	goruntime "runtime"

	"golang.org/x/sys/unix"
)

// allowLowPorts sets net.ipv4.ip_unprivileged_port_start to 0 in the
// network namespace at path, one made outside the instance (Spec.NetNS).
//
// Instance root has CAP_NET_BIND_SERVICE only in its user namespace, which
// owns a network namespace the runtime makes for the instance but not one
// the instance joins; there, sshd could not bind port 22. Allowing every
// port to everyone in that namespace is what a namespace the instance
// owned would amount to: its root may bind any port there anyway.
func allowLowPorts(path string) error {
	ns, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("network namespace: %w", err)
	}
	defer ns.Close()
	errc := make(chan error, 1)
	go func() {
		// This thread leaves the process's network namespace; it is never
		// unlocked, so the Go runtime ends it rather than reuse it.
		goruntime.LockOSThread()
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("entering %s: %w", path, err)
			return
		}
		// /proc/sys/net is that of the thread that opens it.
		errc <- os.WriteFile("/proc/sys/net/ipv4/ip_unprivileged_port_start", []byte("0\n"), 0)
	}()
	if err := <-errc; err != nil {
		return fmt.Errorf("allowing low ports in %s: %w", path, err)
	}
	return nil
}

// sysfsDir is where an instance's sysfs is mounted, in its bundle.
const sysfsDir = "sys"

// mountSysfs mounts at target a sysfs made from inside the network
// namespace at path: sysfs shows the network devices of the namespace of
// whoever mounts it, so the instance sees its own interfaces (and no
// host's), as it would with a sysfs of its own. Whatever was mounted at
// target (a previous boot's, of a namespace since gone) is unmounted first.
func mountSysfs(path, target string) error {
	if err := unmountSysfs(target); err != nil {
		return err
	}
	if err := os.MkdirAll(target, 0o755); err != nil {
		return err
	}
	ns, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("network namespace: %w", err)
	}
	defer ns.Close()
	errc := make(chan error, 1)
	go func() {
		goruntime.LockOSThread() // never unlocked: the thread ends with the goroutine
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("entering %s: %w", path, err)
			return
		}
		errc <- unix.Mount("sysfs", target, "sysfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
	}()
	if err := <-errc; err != nil {
		return fmt.Errorf("mounting the sysfs of %s at %s: %w", path, target, err)
	}
	return nil
}

// unmountSysfs unmounts an instance's sysfs, if mounted.
func unmountSysfs(target string) error {
	for {
		err := unix.Unmount(target, unix.MNT_DETACH)
		switch {
		case err == nil:
			continue // stacked mounts (a crash between two mounts): all go
		case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOENT):
			return nil // not a mount point, or not there
		default:
			return fmt.Errorf("unmounting %s: %w", target, err)
		}
	}
}
