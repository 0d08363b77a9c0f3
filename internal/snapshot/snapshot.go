// Package snapshot is EBS snapshots: their records and the rules of the
// snapshot API. As with volumes, the API writes intent (a pending snapshot,
// a pending copy, a deletion) and the agent of the snapshot's Host makes it
// real with package snapstore and writes the outcome (completed or error).
package snapshot

import (
	"time"

	"nubo/internal/resource"
)

// Snapshot states, as EC2 names them, and nubo's own Deleting.
const (
	Pending   = "pending"
	Completed = "completed"
	Error     = "error"
	// Deleting: DeleteSnapshot hides the record at once (EC2 has no such
	// state); the agent removes the data, then the record.
	Deleting = "deleting"
)

// CopyVolumeID is the VolumeId EC2 shows on copies of snapshots.
const CopyVolumeID = "vol-ffffffff"

// Snapshot is the stored record of a snapshot.
type Snapshot struct {
	resource.Meta        // CreateTime is EC2's StartTime
	VolumeID      string `json:"volumeId"`
	VolumeSizeGiB int    `json:"volumeSizeGiB"`
	State         string `json:"state"`
	Progress      int    `json:"progress"` // percent
	Description   string `json:"description,omitempty"`
	Encrypted     bool   `json:"encrypted"`
	KmsKeyID      string `json:"kmsKeyId,omitempty"` // the wrapping key's ARN
	Host          string `json:"host"`               // the host holding the data

	// Lineage names the chunks the snapshot shares (package snapstore):
	// those of the snapshots of its volume, of the volume it was restored
	// from and of copies under the same key. A UUID: EC2's
	// DataEncryptionKeyId of an encrypted snapshot.
	Lineage string `json:"lineage"`
	// WrappedKey is the lineage's data key wrapped by KmsKeyID (package
	// kms); nil when unencrypted. The plaintext key is never stored.
	WrappedKey []byte `json:"wrappedKey,omitempty"`

	// BaseImageID: the snapshot is of a root volume (an overlay's upper
	// layer) over this image's root filesystem; RegisterImage needs it.
	BaseImageID string `json:"baseImageId,omitempty"`

	// SourceSnapshotID: the snapshot this one is a copy of (CopySnapshot).
	SourceSnapshotID string `json:"sourceSnapshotId,omitempty"`
	// Group and InstanceID: the snapshots one CreateSnapshots made, taken
	// under one freeze of the instance.
	Group      string `json:"group,omitempty"`
	InstanceID string `json:"instanceId,omitempty"`

	CompletionTime time.Time `json:"completionTime,omitzero"`
	// FullSizeBytes is the data the snapshot holds (its non-zero chunks);
	// StoredBytes what taking it added to the host's store.
	FullSizeBytes int64  `json:"fullSizeBytes,omitempty"`
	StoredBytes   int64  `json:"storedBytes,omitempty"`
	StatusMessage string `json:"statusMessage,omitempty"`

	// CreateVolumePermissions: who else may make volumes of it.
	CreateVolumePermissions []Permission `json:"createVolumePermissions,omitempty"`
}

// Permission is one createVolumePermission: an account, or the group "all".
type Permission struct {
	UserID string `json:"userId,omitempty"`
	Group  string `json:"group,omitempty"`
}

// DataKeyID is EC2's DataEncryptionKeyId: snapshots that share it share a
// data key (the same lineage). "" when unencrypted.
func (s Snapshot) DataKeyID() string {
	if !s.Encrypted {
		return ""
	}
	return s.Lineage
}
