// Package runtime is the instance driver contract: it runs an instance's root
// filesystem as an isolated Linux system (its own user, PID, mount, UTS, IPC,
// cgroup and network namespaces) with the CPU, memory and pids limits of its
// instance type. Implementations: runtime/runc (real) and runtime/fake (tests);
// runtime/runtimetest is the conformance suite both pass.
//
// Every method is idempotent by instance ID, and an instance's processes never
// depend on the calling process: they keep running when nubo dies, and a new
// nubo finds them again with State and List.
package runtime

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"
)

// ErrNotFound: the runtime has no instance of that ID.
var ErrNotFound = errors.New("instance not found in runtime")

// Spec is everything the runtime needs to create an instance.
type Spec struct {
	ID       string   // i-…, also the container ID
	RootFS   string   // absolute path of the instance's mounted root filesystem
	Hostname string   // e.g. ip-172-31-5-9
	Init     []string // PID 1 and its arguments, e.g. ["/sbin/nubo-init"]
	Env      []string

	VCPUs     int   // CPU quota: VCPUs full CPUs (CFS quota = VCPUs × period)
	MemoryMiB int64 // hard memory limit; the OOM killer acts inside the instance
	PidsLimit int64

	// UIDBase/GIDBase: host IDs that instance root (0) maps to; the mapping
	// covers IDCount IDs. The root filesystem must already be owned accordingly.
	UIDBase, GIDBase, IDCount uint32

	// NetNS is the path of an existing network namespace to join; empty
	// creates a fresh one (loopback only) owned by the instance's user namespace.
	NetNS string

	// ConsoleLog receives the instance's console (PID 1's stdout and stderr),
	// appended across boots; GetConsoleOutput reads it.
	ConsoleLog string

	// Devices are the block devices the instance has from boot (volumes
	// attached while it was stopped); AttachDevice adds more while it runs.
	Devices []BlockDevice

	// Hibernatable lays the instance out so that a Hibernator can save and
	// restore its processes (CRIU's needs): the runtime makes its network
	// namespace (NetNS must be empty; Prepare says where it is, to plumb),
	// and PID 1's output reaches ConsoleLog through a pipe.
	Hibernatable bool `json:",omitempty"`
}

// BlockDevice is a host block device given to an instance: an EBS volume's
// loop device. Root inside the instance can read and write it, make a
// filesystem on it and mount it (the driver performs such mounts for the
// instance, which has no privilege over host devices of its own).
type BlockDevice struct {
	Name         string // path inside the instance, e.g. /dev/sdf
	HostPath     string // the host's node, e.g. /dev/loop7
	Major, Minor uint32
	// IOPS and BPS cap the instance's I/O on the device, each direction
	// (the volume type's limits); 0: unlimited.
	IOPS, BPS uint64
}

// Validate rejects a device no driver can give.
func (d BlockDevice) Validate() error {
	if !ValidDeviceName(d.Name) {
		return fmt.Errorf("invalid device name %q: want /dev/ followed by letters and digits", d.Name)
	}
	if !filepath.IsAbs(d.HostPath) {
		return fmt.Errorf("device %s: host path %q is not absolute", d.Name, d.HostPath)
	}
	return nil
}

// ValidDeviceName accepts /dev/<letters and digits>, e.g. /dev/sdf, /dev/xvdba.
func ValidDeviceName(name string) bool {
	base, ok := strings.CutPrefix(name, "/dev/")
	if !ok || base == "" || len(base) > 32 {
		return false
	}
	for _, c := range base {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// Hibernator is a Driver that can save a Hibernatable instance's processes
// (memory, open files, PIDs) and bring them back, as EC2's hibernation.
type Hibernator interface {
	// Prepare makes a Hibernatable instance's namespaces and PID 1,
	// stopped before it runs anything, and returns the path of its network
	// namespace for the network driver to plumb; Start then runs PID 1.
	// Preparing a prepared or running instance returns the same path.
	Prepare(ctx context.Context, id string) (netns string, err error)
	// Checkpoint saves every process of the running instance into dir
	// (made by the caller; the runtime makes it readable only to the
	// instance's root) and ends them: the instance is then Stopped. On
	// error the instance keeps running as it was.
	Checkpoint(ctx context.Context, id, dir string) error
	// Restore brings the processes saved in dir back (instead of Start)
	// and returns the path of the instance's new network namespace:
	// network devices are not saved, the caller plumbs them again.
	Restore(ctx context.Context, id, dir string) (netns string, err error)
}

// ErrDeviceBusy: a filesystem on the device is mounted inside the instance.
var ErrDeviceBusy = errors.New("device is mounted inside the instance")

// Validate rejects a spec no driver can run.
func (s Spec) Validate() error {
	switch {
	case !ValidID(s.ID):
		return fmt.Errorf("invalid instance ID %q", s.ID)
	case !filepath.IsAbs(s.RootFS):
		return fmt.Errorf("root filesystem %q is not an absolute path", s.RootFS)
	case len(s.Init) == 0:
		return errors.New("no init command")
	case s.VCPUs <= 0:
		return fmt.Errorf("VCPUs %d: must be positive", s.VCPUs)
	case s.MemoryMiB <= 0:
		return fmt.Errorf("MemoryMiB %d: must be positive", s.MemoryMiB)
	case s.IDCount == 0:
		return errors.New("IDCount 0: an instance needs a user namespace mapping")
	}
	return nil
}

// ValidID accepts IDs that are safe as a file name and a container ID.
func ValidID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
		if !ok {
			return false
		}
	}
	return true
}

// Status is what the runtime observes of an instance.
type Status string

const (
	Created Status = "created" // made, PID 1 not started
	Running Status = "running"
	Stopped Status = "stopped" // PID 1 exited; resources still held until Delete
)

// State is an observation.
type State struct {
	Status    Status
	Pid       int       // host PID of the instance's PID 1 while running
	StartedAt time.Time // when PID 1 started (zero if unknown)
	// ExitCode of PID 1 once Stopped, -1 if unknown. nubo-init exits 0 on
	// poweroff and 129 on reboot (see cmd/nubo-init).
	ExitCode int
}

// Driver runs instances on this host.
type Driver interface {
	// Create prepares the instance (namespaces, cgroup) without starting PID 1.
	// Creating an existing ID with the same spec is a no-op.
	Create(ctx context.Context, spec Spec) error
	// Start runs PID 1. Starting a running instance is a no-op.
	Start(ctx context.Context, id string) error
	// Stop asks PID 1 to shut down (SIGTERM), waits up to grace, then kills
	// every process (SIGKILL). Stopping a stopped instance is a no-op.
	Stop(ctx context.Context, id string, grace time.Duration) error
	// Delete removes the instance and everything the runtime made for it
	// (killing it first if it runs). Deleting an absent ID is a no-op.
	Delete(ctx context.Context, id string) error
	// State observes one instance; ErrNotFound if the runtime has none.
	State(ctx context.Context, id string) (State, error)
	// List returns the IDs of every instance the runtime holds.
	List(ctx context.Context) ([]string, error)

	// AttachDevice gives a created or running instance a block device at
	// once (and keeps it across later boots of the same Create). Attaching
	// the same device again is a no-op.
	AttachDevice(ctx context.Context, id string, dev BlockDevice) error
	// DetachDevice takes the device named name (e.g. /dev/sdf) away. It
	// fails with ErrDeviceBusy while a filesystem on it is mounted inside
	// the instance, unless force, which unmounts it lazily first (data the
	// instance has not written back is lost, as with EC2's forced detach).
	// Detaching an absent device is a no-op.
	DetachDevice(ctx context.Context, id, name string, force bool) error
}
