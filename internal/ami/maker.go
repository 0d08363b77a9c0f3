package ami

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"nubo/internal/apierr"
	"nubo/internal/resource"
	"nubo/internal/snapshot"
	"nubo/internal/store"
	"nubo/internal/volume"
)

// Maker makes AMIs from instances (CreateImage), from snapshots
// (RegisterImage) and from other AMIs (CopyImage). Such an AMI is two
// layers: a built image's root filesystem (BaseImageID, the overlay's
// lower layer) and a snapshot of a root volume (RootSnapshotID, the
// overlay's upper layer), restored into each new instance's root volume.
type Maker struct {
	Images    *Registry
	Volumes   *volume.Service
	Snapshots *snapshot.Service
	Now       func() time.Time
}

func (m *Maker) now() time.Time {
	if m.Now != nil {
		return m.Now().UTC()
	}
	return time.Now().UTC()
}

// CheckName checks an AMI name as EC2 does: 3–128 characters of letters,
// digits and ()[] ./-'@_.
func CheckName(name string) error {
	if name == "" {
		return apierr.Missing("Name")
	}
	ok := len(name) >= 3 && len(name) <= 128
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("()[] ./-'@_", c)) {
			ok = false
		}
	}
	if !ok {
		return apierr.New("InvalidAMIName.Malformed", "AMI name %q must be 3 to 128 characters: letters, numbers, spaces and ()[] ./-'@_.", name)
	}
	return nil
}

// uniqueName refuses a name another of the account's images has.
func (m *Maker) uniqueName(ctx context.Context, account, name string) error {
	ims, err := m.Images.List(ctx, account)
	if err != nil {
		return err
	}
	for _, im := range ims {
		if im.OwnerID == account && im.Name == name {
			return apierr.New("InvalidAMIName.Duplicate", "AMI name %s is already in use by AMI %s.", name, im.ID)
		}
	}
	return nil
}

// CreateSpec is a CreateImage request.
type CreateSpec struct {
	InstanceID, Name, Description string
	// NoReboot is accepted either way: nubo never reboots the instance.
	// Its volumes are read under one freeze of its processes, after every
	// filesystem on them was flushed (syncfs), which is consistent for
	// the filesystems, not for applications that keep state in memory.
	NoReboot     bool
	Tags         []resource.Tag // the image's
	SnapshotTags []resource.Tag
	// Mappings change the image's mapping of the instance's devices.
	Mappings []DeviceSpec
}

// DeviceSpec is CreateImage's BlockDeviceMapping.N for one of the
// instance's devices: left out (NoDevice, data volumes only), or its
// volume's size (not less), type and DeleteOnTermination in the image.
type DeviceSpec struct {
	Device              string
	NoDevice            bool
	SizeGiB             int
	VolumeType          string
	DeleteOnTermination *bool
}

// instanceRecord is what Maker reads of an instance record (package
// instance imports this one).
type instanceRecord struct {
	ID           string `json:"id"`
	State        string `json:"state"`
	RootVolumeID string `json:"rootVolumeId"`
	RootDevice   string `json:"rootDevice"`
}

// Create snapshots the instance's root volume and its data volumes (one
// group, under one freeze) and registers a pending AMI naming them; it is
// available once they complete (Settle).
func (m *Maker) Create(ctx context.Context, account string, spec CreateSpec) (Image, error) {
	if err := CheckName(spec.Name); err != nil {
		return Image{}, err
	}
	if !resource.ValidID(resource.Instance, spec.InstanceID) {
		return Image{}, apierr.New("InvalidInstanceID.Malformed", "Invalid id: \"%s\"", spec.InstanceID)
	}
	sc := m.Images.scope(account)
	var in instanceRecord
	if _, err := m.Images.Store.Get(ctx, resource.Key(sc, resource.Instance, spec.InstanceID), &in); errors.Is(err, store.ErrNotFound) {
		return Image{}, apierr.New(resource.Instance.NotFoundCode, "The instance ID '%s' does not exist", spec.InstanceID)
	} else if err != nil {
		return Image{}, err
	}
	if in.State != "running" && in.State != "stopped" {
		return Image{}, apierr.New("IncorrectInstanceState", "Instance '%s' is %s; images are made of running or stopped instances.", in.ID, in.State)
	}
	root, err := m.Volumes.Get(ctx, sc, in.RootVolumeID)
	if err != nil {
		return Image{}, err
	}
	if !root.IsRoot() {
		return Image{}, apierr.New(apierr.UnsupportedOperation,
			"Instance %s was launched before root volumes were block volumes: its root volume %s is an overlay on the host's disk, which nubo cannot snapshot.", in.ID, root.ID)
	}
	base, err := m.Images.Get(ctx, account, root.BaseImageID)
	if err != nil {
		return Image{}, fmt.Errorf("the base image of %s: %w", root.ID, err)
	}
	if err := m.uniqueName(ctx, account, spec.Name); err != nil {
		return Image{}, err
	}
	tags, err := resource.Merge("", nil, spec.Tags)
	if err != nil {
		return Image{}, err
	}
	specs, exclude, err := m.mappings(ctx, account, in, root, spec.Mappings)
	if err != nil {
		return Image{}, err
	}
	id := resource.NewID(resource.Image)
	snaps, err := m.Snapshots.CreateForInstance(ctx, sc, snapshot.InstanceSpec{InstanceID: in.ID, ExcludeDataVolumes: exclude,
		Description: fmt.Sprintf("Created by CreateImage(%s) for %s", in.ID, id), Tags: spec.SnapshotTags})
	if err != nil {
		return Image{}, err
	}
	im := layered(base, id, spec.Name, spec.Description, tags, m.now())
	im.RootDevice, im.SizeGiB, im.RootVolumeType = in.RootDevice, root.SizeGiB, root.Type
	im.State = "pending"
	for _, x := range snaps {
		if x.VolumeID == root.ID {
			im.RootSnapshotID, im.RootEncrypted, im.RootKmsKeyID = x.ID, x.Encrypted, x.KmsKeyID
			continue
		}
		v, err := m.Volumes.Get(ctx, sc, x.VolumeID)
		if err != nil || v.Attachment == nil {
			continue // detached meanwhile: not part of the image
		}
		im.Data = append(im.Data, Mapping{Device: v.Attachment.Device, SnapshotID: x.ID, SizeGiB: x.VolumeSizeGiB,
			VolumeType: v.Type, Iops: v.Iops, Throughput: v.Throughput, Encrypted: x.Encrypted, DeleteOnTermination: v.Attachment.DeleteOnTermination})
	}
	if im.RootSnapshotID == "" {
		return Image{}, fmt.Errorf("CreateImage of %s: no snapshot of its root volume %s was made", in.ID, root.ID)
	}
	if d, ok := specs[in.RootDevice]; ok {
		im.SizeGiB = max(im.SizeGiB, d.SizeGiB)
		if d.VolumeType != "" {
			im.RootVolumeType = d.VolumeType
		}
		im.RootDeleteOnTermination = d.DeleteOnTermination
	}
	for i := range im.Data {
		if d, ok := specs[im.Data[i].Device]; ok {
			im.Data[i].SizeGiB = max(im.Data[i].SizeGiB, d.SizeGiB)
			if d.VolumeType != "" {
				im.Data[i].VolumeType = d.VolumeType
			}
			if d.DeleteOnTermination != nil {
				im.Data[i].DeleteOnTermination = *d.DeleteOnTermination
			}
		}
	}
	if err := m.Images.Register(ctx, account, im); err != nil {
		return Image{}, fmt.Errorf("registering %s: %w", id, err)
	}
	im.OwnerID = account
	return im, nil
}

// layered is a new AMI over base's root filesystem.
func layered(base Image, id, name, desc string, tags map[string]string, now time.Time) Image {
	return Image{
		Meta: resource.Meta{ID: id, Tags: tags, CreateTime: now},
		Name: name, Description: desc, Architecture: base.Architecture, Platform: base.Platform,
		RootDevice: base.RootDevice, SizeGiB: base.SizeGiB, State: "available",
		Location: base.Location, Init: base.Init, UIDBase: base.UIDBase, Announces: base.Announces,
		BaseImageID: base.Base(),
	}
}

// Settle moves a pending AMI to available once its snapshots completed, or
// to failed if one failed or is gone; other images are returned as they are.
func (m *Maker) Settle(ctx context.Context, im Image) (Image, error) {
	if im.State != "pending" {
		return im, nil
	}
	sc := m.Images.scope(im.OwnerID)
	state := "available"
	for _, id := range im.snapshots() {
		x, err := m.Snapshots.Get(ctx, sc, id)
		if e, ok := apierr.As(err); ok && e.Code == resource.Snapshot.NotFoundCode {
			state = "failed"
			break
		} else if err != nil {
			return im, err
		}
		if x.State == snapshot.Error {
			state = "failed"
			break
		}
		if x.State != snapshot.Completed {
			return im, nil
		}
	}
	key := resource.Key(sc, resource.Image, im.ID)
	out, err := store.Update(ctx, m.Images.Store, key, func(x *Image) error {
		if x.State == "pending" {
			x.State = state
		}
		return nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return im, nil
	}
	return out, err
}

// snapshots are the snapshots an image's mapping names.
func (im Image) snapshots() []string {
	var out []string
	if im.RootSnapshotID != "" {
		out = append(out, im.RootSnapshotID)
	}
	for _, d := range im.Data {
		out = append(out, d.SnapshotID)
	}
	return out
}

// SnapshotInUse names an AMI of the scope whose mapping holds snapshot id
// ("" if none): DeleteSnapshot refuses to delete it (snapshot.Service.InUse).
func (m *Maker) SnapshotInUse(ctx context.Context, sc resource.Scope, id string) (string, error) {
	kvs, err := m.Images.Store.List(ctx, resource.Prefix(sc, resource.Image))
	if err != nil {
		return "", err
	}
	for _, kv := range kvs {
		var im Image
		if err := json.Unmarshal(kv.Value, &im); err != nil {
			return "", fmt.Errorf("decoding %s: %w", kv.Key, err)
		}
		for _, s := range im.snapshots() {
			if s == id {
				return im.ID, nil
			}
		}
	}
	return "", nil
}

// mappings checks CreateImage's BlockDeviceMapping against the instance's
// devices and returns them by normalized device name, and the data volumes
// NoDevice leaves out.
func (m *Maker) mappings(ctx context.Context, account string, in instanceRecord, root volume.Volume, specs []DeviceSpec) (map[string]DeviceSpec, []string, error) {
	out := map[string]DeviceSpec{}
	if len(specs) == 0 {
		return out, nil, nil
	}
	attached, err := m.Volumes.Attached(ctx, m.Images.scope(account), in.ID)
	if err != nil {
		return nil, nil, err
	}
	rootDev, _ := volume.NormalizeDevice(in.RootDevice)
	var exclude []string
	for _, d := range specs {
		dev, ok := volume.NormalizeDevice(d.Device)
		if !ok {
			return nil, nil, apierr.InvalidValue("BlockDeviceMapping.DeviceName", d.Device, "Not a valid EBS device name.")
		}
		if d.VolumeType != "" {
			if _, err := volume.Rule("BlockDeviceMapping.Ebs.VolumeType", d.VolumeType); err != nil {
				return nil, nil, err
			}
		}
		if dev == rootDev {
			switch {
			case d.NoDevice:
				return nil, nil, apierr.New(apierr.InvalidParameterValue, "The root device %s cannot be left out of the image (NoDevice).", d.Device)
			case d.SizeGiB != 0 && d.SizeGiB < root.SizeGiB:
				return nil, nil, apierr.InvalidValue("BlockDeviceMapping.Ebs.VolumeSize", fmt.Sprint(d.SizeGiB),
					fmt.Sprintf("Volume of %d GiB is smaller than the root volume (%d GiB).", d.SizeGiB, root.SizeGiB))
			}
			out[in.RootDevice] = d
			continue
		}
		i := slices.IndexFunc(attached, func(v volume.Volume) bool { return v.Attachment.Device == dev })
		switch {
		case i < 0:
			return nil, nil, apierr.New(apierr.UnsupportedOperation,
				"Instance %s has no volume at %s: CreateImage maps the instance's own volumes only (new empty volumes are not supported yet).", in.ID, d.Device)
		case d.NoDevice:
			exclude = append(exclude, attached[i].ID)
		case d.SizeGiB != 0 && d.SizeGiB < attached[i].SizeGiB:
			return nil, nil, apierr.InvalidValue("BlockDeviceMapping.Ebs.VolumeSize", fmt.Sprint(d.SizeGiB),
				fmt.Sprintf("Volume of %d GiB is smaller than volume %s (%d GiB).", d.SizeGiB, attached[i].ID, attached[i].SizeGiB))
		}
		out[dev] = d
	}
	return out, exclude, nil
}
