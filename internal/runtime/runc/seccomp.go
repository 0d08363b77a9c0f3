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
// The filter is installed by runc just before PID 1's execve, without
// no_new_privs: setuid programs (sudo) keep working.

// seccompSocket is the shim's listener, in the bundle (see bundle.go).
const seccompSocket = "seccomp.sock"

// maxSocketPath is the longest path a unix socket address holds.
const maxSocketPath = len(unix.RawSockaddrUnix{}.Path) - 1

// mountSeccomp is the OCI seccomp section that sends mount(2) to the
// listener at listener.
func mountSeccomp(listener string) *specs.LinuxSeccomp {
	enosys := uint(unix.ENOSYS)
	return &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Architectures: seccompArches(),
		ListenerPath:  listener,
		Syscalls: []specs.LinuxSyscall{
			{Names: []string{"mount"}, Action: specs.ActNotify},
			{Names: []string{"fsopen", "fsconfig"}, Action: specs.ActErrno, ErrnoRet: &enosys},
		},
	}
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
