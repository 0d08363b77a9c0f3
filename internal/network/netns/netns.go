// Package netns makes, enters and removes named network namespaces the way
// `ip netns` does (a bind mount of the namespace on a file under a
// directory, by default /run/netns), so `ip netns exec NAME …` works on
// them.
//
// Entering a namespace from Go is done one way only, Do: a new goroutine
// locks its OS thread, switches that thread into the namespace, runs the
// function and exits without unlocking, so the Go runtime ends the thread
// and no other goroutine ever runs in a namespace it did not ask for (see
// the CNI project's pkg/ns README). Sockets (netlink, TCP, UDP) opened in Do
// stay in their namespace and can be used from any goroutine afterwards;
// goroutines started inside fn do not run in the namespace.
package netns

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// DefaultDir is where `ip netns` keeps named namespaces.
const DefaultDir = "/run/netns"

// Do runs fn on an OS thread that is inside the network namespace at path.
// The thread is thrown away afterwards. fn must not start goroutines that
// expect to be in the namespace.
func Do(path string, fn func() error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open network namespace: %w", err)
	}
	defer f.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with this goroutine
		defer func() {
			if r := recover(); r != nil {
				errc <- fmt.Errorf("in network namespace %s: panic: %v", path, r)
			}
		}()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("enter network namespace %s: %w", path, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// IsNS reports whether path is a mounted network namespace (a leftover
// empty file is not).
func IsNS(path string) (bool, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return false, nil
		}
		return false, fmt.Errorf("statfs %s: %w", path, err)
	}
	return st.Type == unix.NSFS_MAGIC, nil
}

// Create makes a new network namespace mounted at path, or adopts the one
// already there. It returns whether it made one.
func Create(path string) (bool, error) {
	if ok, err := IsNS(path); err != nil || ok {
		return false, err
	}
	if err := prepareDir(filepath.Dir(path)); err != nil {
		return false, err
	}
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE, 0o444)
	if err != nil {
		return false, fmt.Errorf("create %s: %w", path, err)
	}
	f.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: this thread's namespace changes
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("unshare network namespace: %w", err)
			return
		}
		self := fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid())
		if err := unix.Mount(self, path, "none", unix.MS_BIND, ""); err != nil {
			errc <- fmt.Errorf("bind-mount network namespace on %s: %w", path, err)
			return
		}
		errc <- nil
	}()
	if err := <-errc; err != nil {
		os.Remove(path)
		return false, err
	}
	return true, nil
}

// prepareDir makes dir a shared mount point, as `ip netns add` does, so a
// namespace mounted or unmounted there is seen from every mount namespace.
func prepareDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	err := unix.Mount("", dir, "none", unix.MS_SHARED|unix.MS_REC, "")
	if errors.Is(err, unix.EINVAL) { // not a mount point yet
		if err := unix.Mount(dir, dir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind-mount %s on itself: %w", dir, err)
		}
		err = unix.Mount("", dir, "none", unix.MS_SHARED|unix.MS_REC, "")
	}
	if err != nil {
		return fmt.Errorf("make %s a shared mount: %w", dir, err)
	}
	return nil
}

// Bind mounts the network namespace src (e.g. /proc/PID/ns/net) at path,
// so that it lives on without its process. A namespace already at path is
// kept if it is src's, else ErrOther.
func Bind(src, path string) error {
	var want, have unix.Stat_t
	if err := unix.Stat(src, &want); err != nil {
		return fmt.Errorf("stat %s: %w", src, err)
	}
	if ok, err := IsNS(path); err != nil {
		return err
	} else if ok {
		if err := unix.Stat(path, &have); err != nil {
			return fmt.Errorf("stat %s: %w", path, err)
		}
		if have.Ino == want.Ino && have.Dev == want.Dev {
			return nil
		}
		return fmt.Errorf("%s: %w", path, ErrOther)
	}
	if err := prepareDir(filepath.Dir(path)); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE, 0o444)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	f.Close()
	if err := unix.Mount(src, path, "none", unix.MS_BIND, ""); err != nil {
		os.Remove(path)
		return fmt.Errorf("bind-mount %s on %s: %w", src, path, err)
	}
	return nil
}

// ErrOther: another namespace is mounted where one was to be.
var ErrOther = errors.New("another namespace is there")

// Delete unmounts and removes the namespace at path; the kernel frees it
// once nothing else (a process, a socket, another mount) holds it. Absent
// is not an error.
func Delete(path string) error {
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", path, err)
	}
	return nil
}

// List returns the names in dir that start with prefix.
func List(dir, prefix string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// Sysctl is one /proc/sys setting, named by its path under /proc/sys
// (e.g. "net/ipv4/ip_forward"). An Optional one is skipped where the
// kernel does not have it (IPv6 settings on a kernel booted without IPv6).
type Sysctl struct {
	Key, Value string
	Optional   bool
}

// SetSysctls sets network sysctls inside the namespace at path, writing
// only those that differ. Keys under net/ are per namespace.
func SetSysctls(path string, settings ...Sysctl) error {
	return Do(path, func() error { return WriteSysctls(settings...) })
}

// WriteSysctls sets sysctls in the calling thread's namespaces (use it
// inside Do, or for the process's own namespace).
func WriteSysctls(settings ...Sysctl) error {
	for _, s := range settings {
		file := filepath.Join("/proc/sys", s.Key)
		cur, err := os.ReadFile(file)
		if s.Optional && errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("sysctl %s: %w", s.Key, err)
		}
		if strings.TrimSpace(string(cur)) == s.Value {
			continue
		}
		if err := os.WriteFile(file, []byte(s.Value), 0o644); err != nil {
			return fmt.Errorf("sysctl %s=%s: %w", s.Key, s.Value, err)
		}
	}
	return nil
}
