package volume

import (
	"context"
	"fmt"
	"time"

	"nubo/internal/resource"
	"nubo/internal/store"
)

// LaunchSpec is a data volume an image's block device mapping makes at
// launch: restored from SnapshotID and attached to the new instance.
type LaunchSpec struct {
	CreateSpec
	InstanceID, Device  string
	DeleteOnTermination bool
	Time                time.Time
}

// LaunchRecord returns the record of a data volume made at launch (state
// creating, attachment attaching) and the checks the launch's transaction
// must hold (its snapshot unchanged). The agent restores it, then attaches
// it; the instance boots once it is made.
func (s *Service) LaunchRecord(ctx context.Context, sc resource.Scope, spec LaunchSpec) (Volume, []store.Op, error) {
	p, err := s.validate(ctx, sc, spec.CreateSpec)
	if err != nil {
		return Volume{}, nil, err
	}
	tags, err := resource.Merge("", nil, spec.Tags)
	if err != nil {
		return Volume{}, nil, err
	}
	v := Volume{
		Meta:    resource.Meta{ID: resource.NewID(resource.Volume), Tags: tags, CreateTime: spec.Time},
		Backing: BackingBlock, SizeGiB: p.SizeGiB, Zone: spec.Zone,
		Type: p.Type, Iops: p.Iops, Throughput: p.Throughput,
		State: Creating, Host: s.Host, Encrypted: p.encrypted, KmsKeyID: p.keyARN, SnapshotID: spec.SnapshotID,
		BaseImageID: p.baseImageID,
		Attachment: &Attachment{InstanceID: spec.InstanceID, Device: spec.Device, State: Attaching, AttachTime: spec.Time,
			DeleteOnTermination: spec.DeleteOnTermination},
	}
	if p.encrypted {
		plain, wrapped, err := s.KMS.GenerateDataKey(ctx, sc, p.keyARN, DataKeyBytes)
		if err != nil {
			return Volume{}, nil, fmt.Errorf("making the data key of %s: %w", v.ID, err)
		}
		clear(plain) // the agent unwraps its own copy
		v.WrappedKey = wrapped
	}
	return v, p.checks, nil
}
