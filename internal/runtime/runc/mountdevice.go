package runc

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"nubo/internal/runtime"
)

// How the shim mounts a filesystem on one of an instance's devices for it.
//
// The source and target are resolved as the caller sees them (its root
// and cwd; magic links of /proc are not followed), and the source must be
// a block device of the instance's (devices.json, read at each
// call: AttachDevice and DetachDevice change it); a filesystem on any other
// block device is refused with EPERM, and a source that is no block
// device at all is left to the kernel. The shim then makes the filesystem
// with the new mount API on the host's side, so the instance never names a
// host path: fsopen and fsconfig run on a thread whose root is a private
// tmpfs holding only a node of the device where the instance has it
// (mountinfo inside shows /dev/.nubo/sdf, the path /dev/sdf resolves to,
// so that umount finds the filesystem by either). The mount is
// idmapped to the instance's user namespace, so that the files of uid 0
// on the volume are instance root's (without it they would be nobody's and
// root could not write), and always nodev. Finally the thread joins the
// caller's mount namespace and moves the mount onto the target.

// mountDevice carries out a mount of a block filesystem type for a caller
// that is root of the instance, and answers it.
func (l *mountListener) mountDevice(req *seccompNotif, m mountCall) {
	begin := time.Now()
	ns, err := openProcNS(m.pid, true)
	if err != nil {
		l.answer(req, unix.ESRCH)
		return
	}
	defer ns.Close()
	if !l.valid(req) {
		return
	}
	source, target, err := resolveCall(ns, m.source, m.target)
	if err != nil {
		l.answer(req, errnoOf(err))
		return
	}
	defer source.Close()
	defer target.Close()
	rdev, isBlock, err := blockDevice(source)
	switch {
	case err != nil:
		l.answer(req, errnoOf(err))
		return
	case !isBlock:
		l.pass(req) // the kernel refuses, or mounts, what is not a device
		return
	}
	dev, ok, err := deviceOf(l.bundle, rdev)
	if err != nil {
		l.log.Error("reading the instance's devices", "err", err)
		l.answer(req, unix.EIO)
		return
	}
	log := l.log.With("pid", m.pid, "source", m.source, "target", m.target, "type", m.fstype, "options", m.data)
	if !ok {
		l.stats.refused.Add(1)
		log.Warn("mount refused: not a device of the instance", "device", fmt.Sprintf("%d:%d", unix.Major(rdev), unix.Minor(rdev)))
		l.answer(req, unix.EPERM)
		return
	}
	if err := mountInto(ns, dev, m, target, l.userns); err != nil {
		l.stats.refused.Add(1)
		log.Warn("mount failed", "device", dev.Name, "err", err)
		l.answer(req, errnoOf(err))
		return
	}
	l.stats.performed.Add(1)
	log.Info("mounted for the instance", "device", dev.Name, "host", dev.HostPath, "took", time.Since(begin))
	l.answer(req, 0)
}

// resolveCall opens the source and target of a call as the caller
// resolves them: on a thread with its root and cwd (so ".." stops at its
// root), without following /proc's magic links. O_PATH handles.
func resolveCall(ns *procNS, source, target string) (src, tgt *os.File, err error) {
	err = onPrivateThread(func() error {
		if err := unix.Fchdir(int(ns.root.Fd())); err != nil {
			return err
		}
		if err := unix.Chroot("."); err != nil {
			return err
		}
		if err := unix.Fchdir(int(ns.cwd.Fd())); err != nil {
			return err
		}
		var err error
		if src, err = openNoMagic(source); err != nil {
			return err
		}
		if tgt, err = openNoMagic(target); err != nil {
			src.Close()
		}
		return err
	})
	return src, tgt, err
}

func openNoMagic(path string) (*os.File, error) {
	if path == "" {
		return nil, unix.ENOENT
	}
	fd, err := unix.Openat2(unix.AT_FDCWD, path, &unix.OpenHow{
		Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_NO_MAGICLINKS})
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), path), nil
}

// blockDevice returns the device number of f if it is a block device.
func blockDevice(f *os.File) (rdev uint64, isBlock bool, err error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return 0, false, err
	}
	return st.Rdev, st.Mode&unix.S_IFMT == unix.S_IFBLK, nil
}

// deviceOf finds the instance's device of number rdev in the bundle's
// record.
func deviceOf(bundle string, rdev uint64) (runtime.BlockDevice, bool, error) {
	devs, err := readDevices(bundle)
	if err != nil {
		return runtime.BlockDevice{}, false, err
	}
	for _, d := range devs {
		if unix.Mkdev(d.Major, d.Minor) == rdev {
			return d, true, nil
		}
	}
	return runtime.BlockDevice{}, false, nil
}

// mountInto makes m's filesystem on dev and mounts it on target (opened
// in the caller's mount namespace) as the caller would have.
func mountInto(ns *procNS, dev runtime.BlockDevice, m mountCall, target, userns *os.File) error {
	params, attrs := mountOptions(m.flags, m.data)
	src, err := sourceRoot(dev)
	if err != nil {
		return err
	}
	defer src.Close()
	return onPrivateThread(func() error {
		if err := unix.Fchdir(int(src.Fd())); err != nil {
			return err
		}
		if err := unix.Chroot("."); err != nil {
			return err
		}
		fsfd, err := unix.Fsopen(m.fstype, unix.FSOPEN_CLOEXEC)
		if err != nil {
			return fmt.Errorf("fsopen %s: %w", m.fstype, err)
		}
		defer unix.Close(fsfd)
		if err := unix.FsconfigSetString(fsfd, "source", instanceNode(dev)); err != nil {
			return fmt.Errorf("source: %w", err)
		}
		for _, p := range params {
			if err := p.set(fsfd); err != nil {
				return fmt.Errorf("option %s: %s%w", p, fsMessage(fsfd), err)
			}
		}
		if err := unix.FsconfigCreate(fsfd); err != nil {
			return fmt.Errorf("creating the filesystem: %s%w", fsMessage(fsfd), err)
		}
		mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, int(attrs))
		if err != nil {
			return fmt.Errorf("fsmount: %w", err)
		}
		defer unix.Close(mfd)
		idmap := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(userns.Fd())}
		if err := unix.MountSetattr(mfd, "", unix.AT_EMPTY_PATH, &idmap); err != nil {
			return fmt.Errorf("idmapping the mount: %w", err)
		}
		// A mount joins only the namespace of the thread that moves it.
		if err := ns.enter(); err != nil {
			return err
		}
		err = unix.MoveMount(mfd, "", int(target.Fd()), "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH)
		if err != nil {
			return fmt.Errorf("mounting at %s: %w", m.target, err)
		}
		return nil
	})
}

// instanceNode is the path of dev's node inside the instance.
func instanceNode(dev runtime.BlockDevice) string {
	return nodeDir + "/" + filepath.Base(dev.Name)
}

// sourceRoot is a private tmpfs, in no mount namespace, that holds a node
// of dev where the instance has it: the root the filesystem's source is
// resolved in.
func sourceRoot(dev runtime.BlockDevice) (*os.File, error) {
	fsfd, err := unix.Fsopen("tmpfs", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("source root: %w", err)
	}
	defer unix.Close(fsfd)
	if err := unix.FsconfigSetString(fsfd, "mode", "0700"); err != nil {
		return nil, fmt.Errorf("source root: %w", err)
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return nil, fmt.Errorf("source root: %w", err)
	}
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("source root: %w", err)
	}
	root := os.NewFile(uintptr(mfd), "source-root")
	node := strings.TrimPrefix(instanceNode(dev), "/")
	for _, dir := range []string{filepath.Dir(filepath.Dir(node)), filepath.Dir(node)} { // dev, dev/.nubo
		if err := unix.Mkdirat(mfd, dir, 0o700); err != nil {
			root.Close()
			return nil, fmt.Errorf("source root: %w", err)
		}
	}
	if err := unix.Mknodat(mfd, node, unix.S_IFBLK|0o600, int(unix.Mkdev(dev.Major, dev.Minor))); err != nil {
		root.Close()
		return nil, fmt.Errorf("source root: %w", err)
	}
	return root, nil
}

// fsMessage is the filesystem context's last message (e.g. "ext4:
// Unknown parameter 'x'"), followed by ": ", or "".
func fsMessage(fsfd int) string {
	buf := make([]byte, 1024)
	n, err := unix.Read(fsfd, buf)
	if err != nil || n <= 2 {
		return ""
	}
	return strings.TrimSpace(string(buf[2:n])) + ": " // "e ", "w ", "i " prefixes
}

// fsParam is one filesystem parameter for fsconfig: a flag or key=value.
type fsParam struct {
	key, value string
	flag       bool
}

func (p fsParam) set(fsfd int) error {
	if p.flag {
		return unix.FsconfigSetFlag(fsfd, p.key)
	}
	return unix.FsconfigSetString(fsfd, p.key, p.value)
}

func (p fsParam) String() string {
	if p.flag {
		return p.key
	}
	return p.key + "=" + p.value
}

// sbFlags are the mount(2) flags that are the superblock's; mountFlags
// those that are the mount's.
var (
	sbFlags = []struct {
		flag  uint64
		param string
	}{{unix.MS_RDONLY, "ro"}, {unix.MS_SYNCHRONOUS, "sync"}, {unix.MS_DIRSYNC, "dirsync"}, {unix.MS_LAZYTIME, "lazytime"}}
	mountFlags = []struct{ flag, attr uint64 }{
		{unix.MS_RDONLY, unix.MOUNT_ATTR_RDONLY}, {unix.MS_NOSUID, unix.MOUNT_ATTR_NOSUID},
		{unix.MS_NOEXEC, unix.MOUNT_ATTR_NOEXEC}, {unix.MS_NODIRATIME, unix.MOUNT_ATTR_NODIRATIME},
		{unix.MS_NOSYMFOLLOW, unix.MOUNT_ATTR_NOSYMFOLLOW},
	}
)

// mountOptions splits mount(2)'s flags and option string into the
// superblock's parameters and the mount's attributes, as mount(2) would
// apply them. The mount is always nodev: the instance may write anything
// on its device, device nodes included.
func mountOptions(flags uint64, data string) ([]fsParam, uint64) {
	var params []fsParam
	attrs := uint64(unix.MOUNT_ATTR_NODEV)
	setAtime := func(a uint64) { attrs = attrs&^unix.MOUNT_ATTR__ATIME | a }
	for _, f := range sbFlags {
		if flags&f.flag != 0 {
			params = append(params, fsParam{key: f.param, flag: true})
		}
	}
	for _, f := range mountFlags {
		if flags&f.flag != 0 {
			attrs |= f.attr
		}
	}
	switch {
	case flags&unix.MS_NOATIME != 0:
		setAtime(unix.MOUNT_ATTR_NOATIME)
	case flags&unix.MS_STRICTATIME != 0:
		setAtime(unix.MOUNT_ATTR_STRICTATIME)
	}
	for _, o := range strings.Split(data, ",") {
		switch o {
		case "", "rw", "defaults", "suid", "exec", "dev", "atime", "diratime", "symfollow":
		case "ro":
			params = append(params, fsParam{key: "ro", flag: true})
			attrs |= unix.MOUNT_ATTR_RDONLY
		case "nosuid":
			attrs |= unix.MOUNT_ATTR_NOSUID
		case "noexec":
			attrs |= unix.MOUNT_ATTR_NOEXEC
		case "nodev":
		case "nodiratime":
			attrs |= unix.MOUNT_ATTR_NODIRATIME
		case "nosymfollow":
			attrs |= unix.MOUNT_ATTR_NOSYMFOLLOW
		case "noatime":
			setAtime(unix.MOUNT_ATTR_NOATIME)
		case "strictatime":
			setAtime(unix.MOUNT_ATTR_STRICTATIME)
		case "relatime", "norelatime", "nostrictatime":
			setAtime(unix.MOUNT_ATTR_RELATIME)
		default:
			if k, v, ok := strings.Cut(o, "="); ok {
				params = append(params, fsParam{key: k, value: v})
			} else {
				params = append(params, fsParam{key: o, flag: true})
			}
		}
	}
	return params, attrs
}
