package runc

import (
	goruntime "runtime"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Mount interception.
//
// Root inside an instance is root only in its user namespace, where the
// kernel lets it mount pseudo filesystems (proc, tmpfs, …) but no
// filesystem on a block device: the superblock would trust its contents
// and serve the whole host. An instance's attached volumes are block
// devices it should mount as an EC2 instance would, so every instance runs
// under a seccomp filter that passes mount(2) to the instance's shim
// (SCMP_ACT_NOTIFY: runc hands the shim the filter's listener fd through
// the socket named by listenerPath). The shim lets the kernel do every
// mount that is not of a block filesystem type, or that binds, moves or
// remounts (systemd's boot mounts), and performs mounts of the instance's
// own devices itself (see mountnotify.go and mountdevice.go).
//
// fsopen and fsconfig fail with ENOSYS, as on a kernel without the new
// mount API: mount(8) from util-linux 2.39 on, and others, then fall back
// to mount(2), which the filter sees. The rest of the new API needs a
// filesystem context or a mount the instance may already handle.
//
// The same filter keeps the instance's hands off the loop devices its
// volumes are (see loopIoctls). It is installed by runc just before PID
// 1's execve, without no_new_privs: setuid programs (sudo) keep working.

// seccompSocket is the shim's listener, in the bundle (see bundle.go).
const seccompSocket = "seccomp.sock"

// maxSocketPath is the longest path a unix socket address holds.
const maxSocketPath = len(unix.RawSockaddrUnix{}.Path) - 1

// loopIoctls are the rules for the loop driver's ioctls (LOOP_SET_FD
// 0x4c00 to LOOP_CONFIGURE 0x4c0a, of 0x4c00-0x4c0f), which the driver
// lets anyone who has the device open call: an instance could detach its
// volume's loop device from the host's backing file (`umount -d /dev/sdf`,
// as AWS documents detaching, does), which the host might then give to
// another volume the instance could still open, or attach a file of its
// choice to it. LOOP_CLR_FD does nothing and succeeds, so that `umount -d`
// works as on EC2, where a volume is no loop device; the others fail with
// ENOTTY, as on such a device. Only the low 32 bits of the request are
// compared, as the kernel reads only those.
func loopIoctls() []specs.LinuxSyscall {
	ok, enotty := uint(0), uint(unix.ENOTTY)
	rule := func(mask, value uint64, errno *uint) specs.LinuxSyscall {
		return specs.LinuxSyscall{Names: []string{"ioctl"}, Action: specs.ActErrno, ErrnoRet: errno,
			Args: []specs.LinuxSeccompArg{{Index: 1, Value: mask, ValueTwo: value, Op: specs.OpMaskedEqual}}}
	}
	return []specs.LinuxSyscall{
		rule(0xffffffff, unix.LOOP_CLR_FD, &ok), // 0x4c01
		rule(0xffffffff, unix.LOOP_SET_FD, &enotty),
		rule(0xfffffffe, 0x4c02, &enotty), // 0x4c02-0x4c03
		rule(0xfffffffc, 0x4c04, &enotty), // 0x4c04-0x4c07
		rule(0xfffffff8, 0x4c08, &enotty), // 0x4c08-0x4c0f
	}
}

// instanceSeccomp is the OCI seccomp section of an instance: loop ioctls
// refused, and, with a listener, mount(2) sent to it.
func instanceSeccomp(listener string) *specs.LinuxSeccomp {
	sc := &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Architectures: seccompArches(),
		Syscalls:      loopIoctls(),
	}
	if listener != "" {
		enosys := uint(unix.ENOSYS)
		sc.ListenerPath = listener
		sc.Syscalls = append(sc.Syscalls,
			specs.LinuxSyscall{Names: []string{"mount"}, Action: specs.ActNotify},
			specs.LinuxSyscall{Names: []string{"fsopen", "fsconfig"}, Action: specs.ActErrno, ErrnoRet: &enosys})
	}
	return sc
}

// seccompArches are the host's ABIs, so that a 32-bit program's mounts are
// seen and its other calls allowed as a 64-bit program's are (libseccomp
// treats an ABI the filter does not list as a bad architecture).
func seccompArches() []specs.Arch {
	switch goruntime.GOARCH {
	case "amd64":
		return []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32}
	case "arm64":
		return []specs.Arch{specs.ArchAARCH64, specs.ArchARM}
	}
	return nil // the native ABI only
}
