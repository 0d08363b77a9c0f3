package runc

import (
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
