package volume

import (
	"context"
	"fmt"
	"time"

	"nubo/internal/apierr"
	"nubo/internal/resource"
)

// RootSpec is a launch's root device mapping (BlockDeviceMapping.N.Ebs of
// the image's root device); zero fields take the image's or EC2's defaults.
type RootSpec struct {
	SizeGiB    int
	Type       string // "": gp3, as the mappings of nubo's images say
	Iops       *int
	Throughput *int
	Encrypted  *bool // nil: the snapshot's, else encryption by default
	KmsKeyID   string
	// DeleteOnTermination as given (nil: the image's mapping's, else true).
	DeleteOnTermination *bool
}

// RootPlan is a validated RootSpec: one per launch, shared by its instances.
type RootPlan struct {
	Perf
	Encrypted bool
	KmsKeyID  string
}

// PlanRoot checks a launch's root mapping against the rules of CreateVolume
// (types, sizes, encryption by default, KMS keys) without writing anything
// (but the account's default KMS key, made on first use).
func (s *Service) PlanRoot(ctx context.Context, sc resource.Scope, spec RootSpec) (RootPlan, error) {
	typ := spec.Type
	if typ == "" {
		typ = "gp3"
	}
	r, err := Rule("BlockDeviceMapping.Ebs.VolumeType", typ)
	if err != nil {
		return RootPlan{}, err
	}
	if typ == "st1" || typ == "sc1" {
		return RootPlan{}, apierr.InvalidValue("BlockDeviceMapping.Ebs.VolumeType", typ, "st1 and sc1 volumes cannot be root (boot) volumes.")
	}
	perf, err := r.Settle("BlockDeviceMapping.Ebs.VolumeSize", spec.SizeGiB, spec.Iops, spec.Throughput)
	if err != nil {
		return RootPlan{}, err
	}
	enc, key, err := s.encryption(ctx, sc, CreateSpec{Encrypted: spec.Encrypted, KmsKeyID: spec.KmsKeyID})
	if err != nil {
		return RootPlan{}, err
	}
	return RootPlan{Perf: perf, Encrypted: enc, KmsKeyID: key}, nil
}

// NewRoot is the record of an instance's new root block volume: in use,
// attached as its root, with its own data key when encrypted (stored only
// wrapped). The agent makes the volume at the instance's first boot: from
// snapshotID if set (an image's root snapshot), else an empty filesystem.
type NewRoot struct {
	ID, InstanceID, Device, Zone string
	ImageID, BaseImageID         string
	SnapshotID                   string
	DeleteOnTermination          bool
	Tags                         map[string]string
	Time                         time.Time
}

// RootRecord makes the record NewRoot describes under plan p.
func (s *Service) RootRecord(ctx context.Context, sc resource.Scope, p RootPlan, n NewRoot) (Volume, error) {
	v := Volume{
		Meta:    resource.Meta{ID: n.ID, Tags: n.Tags, CreateTime: n.Time},
		Backing: BackingBlock, SizeGiB: p.SizeGiB, Zone: n.Zone,
		Type: p.Type, Iops: p.Iops, Throughput: p.Throughput,
		State: InUse, Host: s.Host, ImageID: n.ImageID, BaseImageID: n.BaseImageID, SnapshotID: n.SnapshotID,
		Encrypted: p.Encrypted, KmsKeyID: p.KmsKeyID,
		Attachment: &Attachment{InstanceID: n.InstanceID, Device: n.Device, State: Attached, AttachTime: n.Time,
			DeleteOnTermination: n.DeleteOnTermination, Root: true},
	}
	if p.Encrypted {
		plain, wrapped, err := s.KMS.GenerateDataKey(ctx, sc, p.KmsKeyID, DataKeyBytes)
		if err != nil {
			return Volume{}, fmt.Errorf("making the data key of %s: %w", v.ID, err)
		}
		clear(plain) // the agent unwraps its own copy
		v.WrappedKey = wrapped
	}
	return v, nil
}
