package volume

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"nubo/internal/apierr"
	"nubo/internal/resource"
	"nubo/internal/store"
)

// FromSnapshot is what CreateVolume takes of the snapshot it restores.
type FromSnapshot struct {
	SizeGiB   int
	Encrypted bool
	KmsKeyID  string
	Host      string // where the snapshot's data is
	// BaseImageID: the snapshot is of a root volume over this image.
	BaseImageID string
	// Check is the snapshot's record as read: the volume is recorded only
	// if it did not change since (a deletion would not wait for it).
	Check store.Op
}

// Snapshots finds the snapshots volumes are made from (package snapshot,
// which imports this one).
type Snapshots interface {
	FromSnapshot(ctx context.Context, sc resource.Scope, id string) (FromSnapshot, error)
}

// fromSnapshot settles a CreateVolume with SnapshotId: the snapshot must be
// completed and on this host; the size defaults to the snapshot's and may
// not be less; an encrypted snapshot makes an encrypted volume, under the
// snapshot's key unless KmsKeyId names another.
func (s *Service) fromSnapshot(ctx context.Context, sc resource.Scope, spec *CreateSpec) (store.Op, error) {
	if !resource.ValidID(resource.Snapshot, spec.SnapshotID) {
		return store.Op{}, apierr.New("InvalidSnapshotID.Malformed", "Invalid id: \"%s\" (expecting \"snap-...\")", spec.SnapshotID)
	}
	if s.Snapshots == nil {
		return store.Op{}, apierr.New(resource.Snapshot.NotFoundCode, "The snapshot '%s' does not exist.", spec.SnapshotID)
	}
	snap, err := s.Snapshots.FromSnapshot(ctx, sc, spec.SnapshotID)
	if err != nil {
		return store.Op{}, err
	}
	if snap.Host != s.Host {
		return store.Op{}, apierr.New(apierr.UnsupportedOperation, "The data of snapshot %s is kept on host %s; new volumes go to host %s, and nubo does not move snapshots between hosts yet.",
			spec.SnapshotID, snap.Host, s.Host)
	}
	if spec.SizeGiB == 0 {
		spec.SizeGiB = snap.SizeGiB
	}
	spec.baseImageID = snap.BaseImageID
	if spec.SizeGiB < snap.SizeGiB {
		return store.Op{}, apierr.InvalidValue("Size", strconv.Itoa(spec.SizeGiB),
			fmt.Sprintf("Volume of %d GiB is smaller than snapshot '%s', expect size >= %d GiB.", spec.SizeGiB, spec.SnapshotID, snap.SizeGiB))
	}
	if snap.Encrypted {
		on := true
		spec.Encrypted = &on
		if spec.KmsKeyID == "" {
			spec.KmsKeyID = snap.KmsKeyID
		}
	}
	return snap.Check, nil
}

// snapshotChanged answers a CreateVolume whose snapshot changed between
// its check and the write (deleted, or tagged: the client may retry).
func snapshotChanged(spec CreateSpec, err error) error {
	if spec.SnapshotID != "" && errors.Is(err, store.ErrConflict) {
		return apierr.New("IncorrectState", "Snapshot '%s' changed while the volume was being created; try again.", spec.SnapshotID)
	}
	return err
}
