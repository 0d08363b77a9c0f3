package ami

import (
	"context"
	"errors"
	"fmt"

	"nubo/internal/apierr"
	"nubo/internal/kms"
	"nubo/internal/resource"
	"nubo/internal/snapshot"
	"nubo/internal/volume"
)

// RegisterSpec is a RegisterImage request: the root device's snapshot
// (BlockDeviceMapping.N.Ebs.SnapshotId of RootDeviceName).
type RegisterSpec struct {
	Name, Description, Architecture string
	RootDevice                      string // "": /dev/xvda
	SnapshotID                      string
	SizeGiB                         int    // 0: the snapshot's
	VolumeType                      string // "": gp3
	DeleteOnTermination             *bool
	Tags                            []resource.Tag
}

// Register makes an AMI of a snapshot of a root volume: its base image,
// which the snapshot's record names, is the lower layer. Available at once
// (the snapshot is completed).
func (m *Maker) Register(ctx context.Context, account string, spec RegisterSpec) (Image, error) {
	if err := CheckName(spec.Name); err != nil {
		return Image{}, err
	}
	if spec.SnapshotID == "" {
		return Image{}, apierr.New(apierr.MissingParameter,
			"The request must contain BlockDeviceMapping.N.Ebs.SnapshotId for the root device: nubo registers images from snapshots of root volumes only.")
	}
	sc := m.Images.scope(account)
	x, err := m.Snapshots.Get(ctx, sc, spec.SnapshotID)
	if err != nil {
		return Image{}, err
	}
	if x.State != snapshot.Completed {
		return Image{}, apierr.New("IncorrectState", "Snapshot '%s' is '%s'; images are registered from completed snapshots.", x.ID, x.State)
	}
	if x.BaseImageID == "" {
		return Image{}, apierr.New(apierr.InvalidParameterValue,
			"Snapshot %s is not of an instance's root volume: a nubo root volume holds the changes made over a base image, and only such snapshots (or copies of them) can be registered.", x.ID)
	}
	base, err := m.Images.Get(ctx, account, x.BaseImageID)
	if err != nil {
		return Image{}, apierr.New("InvalidAMIID.NotFound", "The base image %s of snapshot %s no longer exists.", x.BaseImageID, x.ID)
	}
	if spec.Architecture != "" && spec.Architecture != base.Architecture {
		return Image{}, apierr.InvalidValue("Architecture", spec.Architecture, fmt.Sprintf("Snapshot %s is of a %s image.", x.ID, base.Architecture))
	}
	if spec.SizeGiB != 0 && spec.SizeGiB < x.VolumeSizeGiB {
		return Image{}, apierr.InvalidValue("BlockDeviceMapping.Ebs.VolumeSize", fmt.Sprint(spec.SizeGiB),
			fmt.Sprintf("Volume of %d GiB is smaller than snapshot '%s' (%d GiB).", spec.SizeGiB, x.ID, x.VolumeSizeGiB))
	}
	if spec.VolumeType != "" {
		if _, err := volume.Rule("BlockDeviceMapping.Ebs.VolumeType", spec.VolumeType); err != nil {
			return Image{}, err
		}
	}
	if err := m.uniqueName(ctx, account, spec.Name); err != nil {
		return Image{}, err
	}
	tags, err := resource.Merge("", nil, spec.Tags)
	if err != nil {
		return Image{}, err
	}
	im := layered(base, resource.NewID(resource.Image), spec.Name, spec.Description, tags, m.now())
	if spec.RootDevice != "" {
		im.RootDevice = spec.RootDevice
	}
	im.SizeGiB = max(spec.SizeGiB, x.VolumeSizeGiB)
	im.RootVolumeType = spec.VolumeType
	im.RootSnapshotID, im.RootEncrypted, im.RootKmsKeyID = x.ID, x.Encrypted, x.KmsKeyID
	im.RootDeleteOnTermination = spec.DeleteOnTermination
	if err := m.Images.Register(ctx, account, im); err != nil {
		return Image{}, fmt.Errorf("registering %s: %w", im.ID, err)
	}
	im.OwnerID = account
	return im, nil
}

// CopySpec is a CopyImage request within the Region.
type CopySpec struct {
	SourceID, SourceRegion string
	Name, Description      string
	Encrypted              bool
	KmsKeyID               string
	Tags                   []resource.Tag
}

// Copy makes a new AMI of an image: its snapshots copied (CopySnapshot,
// re-encrypted when asked), pending until the copies complete. A built
// image has no snapshot: its copy is a new AMI over it, whose instances'
// root volumes are encrypted when the copy asks for it.
func (m *Maker) Copy(ctx context.Context, account string, spec CopySpec) (Image, error) {
	if err := CheckName(spec.Name); err != nil {
		return Image{}, err
	}
	if spec.SourceRegion != m.Images.Region {
		return Image{}, apierr.New(apierr.UnsupportedOperation, "nubo copies images within Region %s only (SourceRegion %s).", m.Images.Region, spec.SourceRegion)
	}
	if spec.KmsKeyID != "" && !spec.Encrypted {
		return Image{}, apierr.New("InvalidParameterDependency", "The parameter KmsKeyId requires the parameter Encrypted to be set.")
	}
	src, err := m.Images.Get(ctx, account, spec.SourceID)
	if err != nil {
		return Image{}, err
	}
	if src.State != "available" {
		return Image{}, apierr.New("InvalidAMIID.Unavailable", "Image %s is %s, not available.", src.ID, src.State)
	}
	if err := m.uniqueName(ctx, account, spec.Name); err != nil {
		return Image{}, err
	}
	tags, err := resource.Merge("", nil, spec.Tags)
	if err != nil {
		return Image{}, err
	}
	sc := m.Images.scope(account)
	base := src
	if src.BaseImageID != "" {
		if base, err = m.Images.Get(ctx, account, src.BaseImageID); err != nil {
			return Image{}, err
		}
	}
	im := layered(base, resource.NewID(resource.Image), spec.Name, spec.Description, tags, m.now())
	im.RootDevice, im.SizeGiB, im.RootVolumeType = src.RootDevice, src.SizeGiB, src.RootVolumeType
	im.RootDeleteOnTermination = src.RootDeleteOnTermination
	if src.RootSnapshotID == "" {
		im.RootEncrypted = spec.Encrypted
		if spec.Encrypted {
			if im.RootKmsKeyID, err = m.key(ctx, sc, spec.KmsKeyID); err != nil {
				return Image{}, err
			}
		}
	} else {
		im.State = "pending"
		desc := fmt.Sprintf("Copied for %s from %s", im.ID, src.ID)
		x, err := m.Snapshots.Copy(ctx, sc, snapshot.CopySpec{SourceID: src.RootSnapshotID, SourceRegion: spec.SourceRegion,
			Description: desc, Encrypted: spec.Encrypted, KmsKeyID: spec.KmsKeyID})
		if err != nil {
			return Image{}, err
		}
		im.RootSnapshotID, im.RootEncrypted, im.RootKmsKeyID = x.ID, x.Encrypted, x.KmsKeyID
		for _, d := range src.Data {
			x, err := m.Snapshots.Copy(ctx, sc, snapshot.CopySpec{SourceID: d.SnapshotID, SourceRegion: spec.SourceRegion,
				Description: desc, Encrypted: spec.Encrypted, KmsKeyID: spec.KmsKeyID})
			if err != nil {
				return Image{}, err
			}
			d.SnapshotID, d.Encrypted = x.ID, x.Encrypted
			im.Data = append(im.Data, d)
		}
	}
	if err := m.Images.Register(ctx, account, im); err != nil {
		return Image{}, fmt.Errorf("registering %s: %w", im.ID, err)
	}
	im.OwnerID = account
	return im, nil
}

// key resolves a copy's KMS key: KmsKeyId, else the AWS managed key.
func (m *Maker) key(ctx context.Context, sc resource.Scope, id string) (string, error) {
	k := m.Volumes.KMS
	if id == "" {
		return k.DefaultKey(ctx, sc)
	}
	arn, err := k.Resolve(ctx, sc, id)
	if errors.Is(err, kms.ErrNotFound) {
		return "", apierr.InvalidValue("KmsKeyId", id, "No KMS key with this key ID, key ARN, alias or alias ARN exists in this account and Region.")
	}
	return arn, err
}
