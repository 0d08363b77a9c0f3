package runc

import (
	"errors"
	"fmt"
	"os"
	goruntime "runtime"
	"strconv"

	"golang.org/x/sys/unix"
)

// Work inside an instance's mount namespace.
//
// Joining a mount namespace changes the calling OS thread's root and cwd,
// which Go threads share (CLONE_FS): the work runs on a thread of its own
// that first unshares its filesystem context, and that thread is never
// handed back to the scheduler (locked, never unlocked: the Go runtime ends
// it when the goroutine returns).

// onPrivateThread runs f on a fresh locked OS thread with its own root and
// cwd, and returns f's error.
func onPrivateThread(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		goruntime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			errc <- fmt.Errorf("unshare(CLONE_FS): %w", err)
			return
		}
		errc <- f()
	}()
	return <-errc
}

// procNS is a process's mount namespace, root and working directory,
// opened from the host so that a private thread can take them on.
type procNS struct {
	mnt, root, cwd *os.File
}

// openProcNS opens pid's mount namespace, root and (if withCwd) cwd.
func openProcNS(pid int, withCwd bool) (*procNS, error) {
	dir := "/proc/" + strconv.Itoa(pid)
	p := &procNS{}
	var err error
	if p.mnt, err = os.Open(dir + "/ns/mnt"); err != nil {
		return nil, err
	}
	if p.root, err = openPath(dir + "/root"); err != nil {
		p.Close()
		return nil, err
	}
	if withCwd {
		if p.cwd, err = openPath(dir + "/cwd"); err != nil {
			p.Close()
			return nil, err
		}
	}
	return p, nil
}

// openPath opens a directory as an O_PATH handle (enough for fchdir and
// as a dirfd).
func openPath(path string) (*os.File, error) {
	fd, err := unix.Open(path, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

func (p *procNS) Close() {
	for _, f := range []*os.File{p.mnt, p.root, p.cwd} {
		if f != nil {
			f.Close()
		}
	}
}

// enter moves the calling private thread into the namespace with the
// process's root (and cwd, if opened): paths then resolve as they do for
// that process.
func (p *procNS) enter() error {
	if err := unix.Setns(int(p.mnt.Fd()), unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("joining mount namespace: %w", err)
	}
	if err := unix.Fchdir(int(p.root.Fd())); err != nil {
		return fmt.Errorf("entering root: %w", err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("chroot: %w", err)
	}
	if p.cwd != nil {
		if err := unix.Fchdir(int(p.cwd.Fd())); err != nil {
			return fmt.Errorf("entering cwd: %w", err)
		}
	}
	return nil
}

// actAs makes the calling private thread create files as uid:gid (instance
// root), so that what it makes in the instance's /dev is root's there: a
// file owned by an ID the instance's user namespace does not map cannot be
// created on a filesystem mounted in it (EOVERFLOW). It keeps CAP_SYS_ADMIN.
func actAs(uid, gid int) {
	unix.Setfsgid(gid)
	unix.Setfsuid(uid)
}

// inProc runs f on a private thread inside pid's mount namespace and root,
// creating files as uid:gid.
func inProc(pid, uid, gid int, f func() error) error {
	ns, err := openProcNS(pid, false)
	if err != nil {
		return err
	}
	defer ns.Close()
	return onPrivateThread(func() error {
		if err := ns.enter(); err != nil {
			return err
		}
		actAs(uid, gid)
		return f()
	})
}

// detachMount lazily unmounts the mount at path in pid's mount namespace
// (path as that process sees it). A path that is no longer a mount point
// is not an error.
func detachMount(pid int, path string) error {
	err := inProc(pid, 0, 0, func() error {
		return unix.Unmount(path, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW)
	})
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
		return nil
	}
	return err
}
