package runc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// The shim's side of mount interception (see seccomp.go): it listens on
// the bundle's seccomp.sock before it runs runc, takes the listener fd runc
// sends for PID 1 (and for each `runc exec`), and answers the mount(2)
// calls of the instance's processes. If the shim dies, the kernel fails
// their mounts with ENOSYS; the instance keeps running.

// The seccomp user-notification ABI (linux/seccomp.h), which x/sys/unix
// gives only the ioctl numbers of.
type seccompData struct {
	Nr                 int32
	Arch               uint32
	InstructionPointer uint64
	Args               [6]uint64
}

type seccompNotif struct {
	ID    uint64
	Pid   uint32
	Flags uint32
	Data  seccompData
}

type seccompNotifResp struct {
	ID    uint64
	Val   int64
	Error int32
	Flags uint32
}

func notifIoctl(fd int, req uintptr, arg unsafe.Pointer) error {
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(arg))
	if errno != 0 {
		return errno
	}
	return nil
}

// mountListener serves one listener fd.
type mountListener struct {
	fd     int
	bundle string
	// userns is the instance's user namespace: the one a caller must be
	// root of, and the one a device's filesystem is idmapped to.
	userns    *os.File
	usernsIno uint64
	blockFS   map[string]bool
	log       *slog.Logger
	stats     *mountStats
	inflight  sync.WaitGroup // device mounts still being made
}

// mountStats counts what the shim did with the instance's mounts.
type mountStats struct {
	passed, performed, refused atomic.Int64
}

// listenMounts makes the shim's listener socket at path, replacing a
// leftover.
func listenMounts(path string) (*net.UnixListener, error) {
	if len(path) > maxSocketPath {
		return nil, fmt.Errorf("seccomp listener path %s is longer than a unix socket address (%d bytes)", path, maxSocketPath)
	}
	if err := removeIfExists(path); err != nil {
		return nil, err
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("seccomp listener: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// serveMounts accepts runc's connections until ln is closed.
func (s *shim) serveMounts(ln *net.UnixListener, stats *mountStats) {
	blockFS := blockFilesystems()
	for {
		conn, err := ln.AcceptUnix()
		if err != nil {
			return
		}
		go func() {
			l, err := s.takeListener(conn, blockFS, stats)
			if err != nil {
				s.log.Error("seccomp listener", "err", err)
				return
			}
			l.serve()
		}()
	}
}

// takeListener reads what runc sends on a connection: the container
// process state (JSON) and the listener fd (SCM_RIGHTS).
func (s *shim) takeListener(conn *net.UnixConn, blockFS map[string]bool, stats *mountStats) (*mountListener, error) {
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 64<<10)
	oob := make([]byte, unix.CmsgSpace(4*4))
	n, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
	if err != nil {
		return nil, err
	}
	var fds []int
	if msgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
		for _, m := range msgs {
			if rights, err := unix.ParseUnixRights(&m); err == nil {
				fds = append(fds, rights...)
			}
		}
	}
	var st specs.ContainerProcessState
	if err := json.Unmarshal(buf[:n], &st); err != nil {
		closeAll(fds)
		return nil, fmt.Errorf("reading runc's container process state: %w", err)
	}
	fd := -1
	for i, name := range st.Fds {
		if name == specs.SeccompFdName && i < len(fds) {
			fd = fds[i]
			fds[i] = -1
		}
	}
	closeAll(fds)
	if fd < 0 {
		return nil, fmt.Errorf("runc sent no seccomp fd (fds %q)", st.Fds)
	}
	unix.CloseOnExec(fd)
	// The instance's user namespace is its init's. Not the namespace of the
	// process runc connected for (a `runc exec`'s): that one runs on while
	// runc hands the fd over, and may have made a user namespace of its own
	// by the time it is read here.
	nsPid := st.State.Pid
	if nsPid == 0 { // runc's init itself, which runs nothing of the instance's yet
		nsPid = st.Pid
	}
	userns, err := os.Open("/proc/" + strconv.Itoa(nsPid) + "/ns/user")
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("user namespace of process %d: %w", nsPid, err)
	}
	var nsst unix.Stat_t
	if err := unix.Fstat(int(userns.Fd()), &nsst); err != nil {
		unix.Close(fd)
		userns.Close()
		return nil, err
	}
	s.log.Info("intercepting mounts", "process", st.Pid)
	return &mountListener{fd: fd, bundle: s.bundle, userns: userns, usernsIno: nsst.Ino,
		blockFS: blockFS, log: s.log, stats: stats}, nil
}

func closeAll(fds []int) {
	for _, fd := range fds {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
}

// serve answers notifications until no process uses the filter any more.
func (l *mountListener) serve() {
	defer l.userns.Close()
	defer unix.Close(l.fd)
	defer l.inflight.Wait()
	for {
		pfd := []unix.PollFd{{Fd: int32(l.fd), Events: unix.POLLIN}}
		if _, err := unix.Poll(pfd, -1); err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			l.log.Error("seccomp listener: poll", "err", err)
			return
		}
		if pfd[0].Revents&unix.POLLIN == 0 {
			return // POLLHUP: the filter's last process has exited
		}
		var req seccompNotif
		if err := notifIoctl(l.fd, unix.SECCOMP_IOCTL_NOTIF_RECV, unsafe.Pointer(&req)); err != nil {
			if errors.Is(err, unix.EINTR) || errors.Is(err, unix.ENOENT) {
				continue // the caller was interrupted or died
			}
			l.log.Error("seccomp listener: receive", "err", err)
			return
		}
		l.handle(&req)
	}
}

// Mount flags that never make a new filesystem: the kernel's own checks
// decide them.
const passFlags = unix.MS_REMOUNT | unix.MS_BIND | unix.MS_MOVE |
	unix.MS_SHARED | unix.MS_PRIVATE | unix.MS_SLAVE | unix.MS_UNBINDABLE

// capSysAdmin is CAP_SYS_ADMIN's bit in /proc/<pid>/status's CapEff.
const capSysAdmin = 21

// handle decides one mount(2) call: the cheap checks first, as nearly all
// calls (systemd's, at boot) are passed on.
func (l *mountListener) handle(req *seccompNotif) {
	pid := int(req.Pid)
	args := req.Data.Args
	flags := args[3]
	if flags&unix.MS_MGC_MSK == unix.MS_MGC_VAL {
		flags &^= unix.MS_MGC_MSK // the old magic, as the kernel drops it
	}
	if flags&passFlags != 0 || args[2] == 0 {
		l.pass(req)
		return
	}
	fstype, err := readString(pid, args[2], 256)
	if err != nil || !l.blockFS[fstype] {
		l.pass(req)
		return
	}
	m := mountCall{pid: pid, fstype: fstype, flags: flags}
	if errno := m.read(args); errno != 0 {
		l.answer(req, errno)
		return
	}
	if !l.valid(req) { // the caller died; its PID may be another's now
		return
	}
	// A caller that is not root of the instance's own user namespace is
	// left to the kernel, which refuses it as it would any such mount.
	if !l.rootOfInstance(pid) {
		l.pass(req)
		return
	}
	// The device mount itself can take a while: the instance's other
	// mounts go on meanwhile.
	l.inflight.Go(func() { l.mountDevice(req, m) })
}

// mountCall is a mount(2) call's arguments, read from the caller.
type mountCall struct {
	pid                          int
	source, target, fstype, data string
	flags                        uint64
}

// read reads the source, target and data strings of the call.
func (m *mountCall) read(args [6]uint64) unix.Errno {
	var err error
	switch {
	case args[0] == 0:
		return unix.EINVAL // as the kernel says of a filesystem without a source
	case args[1] == 0:
		return unix.EFAULT
	}
	if m.source, err = readString(m.pid, args[0], unix.PathMax); err != nil {
		return errnoOf(err)
	}
	if m.target, err = readString(m.pid, args[1], unix.PathMax); err != nil {
		return errnoOf(err)
	}
	if args[4] != 0 {
		// The kernel copies at most a page of options.
		if m.data, err = readString(m.pid, args[4], os.Getpagesize()); err != nil && !errors.Is(err, unix.ENAMETOOLONG) {
			return errnoOf(err)
		}
	}
	return 0
}

// valid re-checks that the notification's caller still waits in the call,
// so that what was read from a PID was read from the caller.
func (l *mountListener) valid(req *seccompNotif) bool {
	id := req.ID
	return notifIoctl(l.fd, unix.SECCOMP_IOCTL_NOTIF_ID_VALID, unsafe.Pointer(&id)) == nil
}

// rootOfInstance reports whether pid has CAP_SYS_ADMIN in the instance's
// user namespace itself (not in one it made below).
func (l *mountListener) rootOfInstance(pid int) bool {
	var st unix.Stat_t
	if err := unix.Stat("/proc/"+strconv.Itoa(pid)+"/ns/user", &st); err != nil || st.Ino != l.usernsIno {
		return false
	}
	status, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && caps&(1<<capSysAdmin) != 0
		}
	}
	return false
}

// pass lets the kernel carry out the call as if nothing had intercepted
// it. Safe for any call: the kernel applies its usual checks.
func (l *mountListener) pass(req *seccompNotif) {
	l.stats.passed.Add(1)
	l.respond(req, 0, unix.SECCOMP_USER_NOTIF_FLAG_CONTINUE)
}

// answer ends the call with errno (0: success).
func (l *mountListener) answer(req *seccompNotif, errno unix.Errno) {
	l.respond(req, errno, 0)
}

func (l *mountListener) respond(req *seccompNotif, errno unix.Errno, flags uint32) {
	resp := seccompNotifResp{ID: req.ID, Flags: flags}
	if errno != 0 {
		resp.Error = -int32(errno)
	}
	err := notifIoctl(l.fd, unix.SECCOMP_IOCTL_NOTIF_SEND, unsafe.Pointer(&resp))
	if err != nil && !errors.Is(err, unix.ENOENT) { // ENOENT: the caller is gone
		l.log.Warn("seccomp listener: answering", "pid", req.Pid, "err", err)
	}
}

// readString reads a NUL-terminated string of at most max bytes at addr in
// pid's memory, a page at a time (a string may end just before an
// unmapped page).
func readString(pid int, addr uint64, max int) (string, error) {
	page := uint64(os.Getpagesize())
	var out []byte
	for len(out) < max {
		n := min(int(page-addr%page), max-len(out))
		buf := make([]byte, n)
		local := []unix.Iovec{{Base: &buf[0]}}
		local[0].SetLen(n)
		remote := []unix.RemoteIovec{{Base: uintptr(addr), Len: n}}
		got, err := unix.ProcessVMReadv(pid, local, remote, 0)
		if err != nil {
			return "", err
		}
		if got == 0 {
			return "", unix.EFAULT
		}
		if i := bytes.IndexByte(buf[:got], 0); i >= 0 {
			return string(append(out, buf[:i]...)), nil
		}
		out = append(out, buf[:got]...)
		addr += uint64(got)
	}
	return string(out), unix.ENAMETOOLONG
}

// errnoOf is the errno to give a caller for err (EIO if it has none).
func errnoOf(err error) unix.Errno {
	var errno unix.Errno
	if errors.As(err, &errno) {
		return errno
	}
	return unix.EIO
}

// blockFilesystems are the filesystem types on block devices the shim
// mounts for an instance, those of them this kernel has.
func blockFilesystems() map[string]bool {
	fs := make(map[string]bool)
	b, _ := os.ReadFile("/proc/filesystems")
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) != 1 { // "nodev <name>": not on a block device
			continue
		}
		switch f[0] {
		case "ext2", "ext3", "ext4", "xfs", "btrfs", "vfat":
			fs[f[0]] = true
		}
	}
	return fs
}
