// Package volume is EBS volumes: their records and the rules of the EBS API.
// Two backings exist: root volumes made copy-on-write from an image (an
// overlay whose upper layer is the volume's own data, see Roots), and block
// volumes, real block devices kept by package blockstore on the host that
// holds them, encrypted at rest when Encrypted.
package volume

import (
	"strconv"
	"strings"
	"time"

	"nubo/internal/resource"
)

// Volume states, as EC2 names them.
const (
	Creating  = "creating"
	Available = "available"
	InUse     = "in-use"
	Deleting  = "deleting"
	Deleted   = "deleted"
	Error     = "error"
)

// Attachment states. A detached volume has no Attachment.
const (
	Attaching = "attaching"
	Attached  = "attached"
	Detaching = "detaching"
)

// Backings.
const (
	BackingOverlay = "overlay" // root volume over an image (Roots)
	BackingBlock   = "block"   // block device (package blockstore)
)

// Volume is the stored record of a volume. The API writes what is wanted
// (State creating/deleting, Attachment attaching/detaching, a larger
// SizeGiB); the agent of Host makes it real and writes the outcome.
type Volume struct {
	resource.Meta
	Backing    string `json:"backing,omitempty"` // "" in old records: overlay
	SizeGiB    int    `json:"sizeGiB"`
	Zone       string `json:"zone"`
	Type       string `json:"type"` // gp2 | gp3 | io1 | io2 | st1 | sc1 | standard
	Iops       int    `json:"iops"`
	Throughput int    `json:"throughput"` // MiB/s
	State      string `json:"state"`
	ImageID    string `json:"imageId,omitempty"`
	SnapshotID string `json:"snapshotId,omitempty"`
	// BaseImageID is the image whose root filesystem is the lower layer of
	// the overlay this volume is the upper layer of: set on block root
	// volumes (an ext4 filesystem holding upper/ and work/, see RootFS) and
	// on volumes restored from their snapshots.
	BaseImageID string `json:"baseImageId,omitempty"`
	Host        string `json:"host"` // the host holding the data

	Attachment *Attachment `json:"attachment,omitempty"`

	Encrypted bool   `json:"encrypted"`
	KmsKeyID  string `json:"kmsKeyId,omitempty"` // the wrapping key's ARN
	// WrappedKey is the volume's data key encrypted by KmsKeyID (package
	// kms); the plaintext key is never stored.
	WrappedKey []byte `json:"wrappedKey,omitempty"`

	// Modification is the latest ModifyVolume, kept for
	// DescribeVolumesModifications.
	Modification *Modification `json:"modification,omitempty"`
	// StatusMessage says why State is error.
	StatusMessage string `json:"statusMessage,omitempty"`
}

// IsBlock reports whether the volume is a block device kept by blockstore.
func (v Volume) IsBlock() bool { return v.Backing == BackingBlock }

// Attachment is a volume's link to an instance.
type Attachment struct {
	InstanceID          string    `json:"instanceId"`
	Device              string    `json:"device"`          // e.g. /dev/sdf
	State               string    `json:"state,omitempty"` // "" in old records: attached
	AttachTime          time.Time `json:"attachTime"`
	DeleteOnTermination bool      `json:"deleteOnTermination"`
	// Force: DetachVolume --force; the agent unmounts inside the instance.
	Force bool `json:"force,omitempty"`
	// Root: the instance's root volume, which the host mounts as the upper
	// layer of the instance's root filesystem; it is no device inside.
	Root bool `json:"root,omitempty"`
}

// Modification is a volume modification (ModifyVolume).
type Modification struct {
	State              string    `json:"state"` // modifying | optimizing | completed | failed
	StatusMessage      string    `json:"statusMessage,omitempty"`
	Progress           int       `json:"progress"`
	StartTime          time.Time `json:"startTime"`
	EndTime            time.Time `json:"endTime,omitzero"`
	OriginalSizeGiB    int       `json:"originalSizeGiB"`
	OriginalType       string    `json:"originalType"`
	OriginalIops       int       `json:"originalIops"`
	OriginalThroughput int       `json:"originalThroughput"`
	TargetSizeGiB      int       `json:"targetSizeGiB"`
	TargetType         string    `json:"targetType"`
	TargetIops         int       `json:"targetIops"`
	TargetThroughput   int       `json:"targetThroughput"`
}

// NormalizeDevice checks a device name as AttachVolume takes it (/dev/sdf,
// or sdf as EC2 also accepts) and returns it with /dev/: what Attachment
// holds and the instance sees. Names as EC2's Linux instances have them:
// /dev/sd[a-z] (partitions 1–15 too), /dev/xvd[a-z], /dev/xvd[b-c][a-z].
func NormalizeDevice(name string) (string, bool) {
	base := strings.TrimPrefix(name, "/dev/")
	var rest string
	switch {
	case strings.HasPrefix(base, "xvd"):
		rest = base[3:]
		if len(rest) == 2 && (rest[0] == 'b' || rest[0] == 'c') && isLower(rest[1]) {
			return "/dev/" + base, true
		}
		return "/dev/" + base, len(rest) == 1 && isLower(rest[0])
	case strings.HasPrefix(base, "sd"):
		rest = base[2:]
	default:
		return name, false
	}
	if len(rest) == 0 || !isLower(rest[0]) {
		return name, false
	}
	if part := rest[1:]; part != "" {
		n, err := strconv.Atoi(part)
		if err != nil || n < 1 || n > 15 || part[0] == '0' {
			return name, false
		}
	}
	return "/dev/" + base, true
}

func isLower(c byte) bool { return c >= 'a' && c <= 'z' }

// SameDisk reports whether two normalized device names overlap: equal, or
// a disk and one of its partitions (/dev/sda and /dev/sda1).
func SameDisk(a, b string) bool {
	disk := func(d string) string { return strings.TrimRight(d, "0123456789") }
	return a == b || disk(a) == disk(b) && (a == disk(a) || b == disk(b))
}

// IsRoot reports whether the volume is attached as its instance's root.
func (v Volume) IsRoot() bool { return v.Attachment != nil && v.Attachment.Root }

// Status is the attachment's state; records older than attachment states
// (root volumes) hold "", which is attached.
func (a Attachment) Status() string {
	if a.State == "" {
		return Attached
	}
	return a.State
}
