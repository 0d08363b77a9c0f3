package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"nubo/internal/blockstore"
	"nubo/internal/instance"
	"nubo/internal/resource"
	"nubo/internal/runtime"
	"nubo/internal/store"
	"nubo/internal/volume"
)

// Blocks keeps the block volumes of this host (a blockstore.Store).
type Blocks interface {
	Create(ctx context.Context, id string, size int64, key []byte) error
	Unlock(ctx context.Context, id string, key []byte) error
	Attach(ctx context.Context, id string) (blockstore.Device, error)
	Detach(ctx context.Context, id string) error
	Resize(ctx context.Context, id string, size int64) error
	Delete(ctx context.Context, id string) error
}

var _ Blocks = (*blockstore.Store)(nil)

// Keys unwraps volumes' data keys (a kms.Service).
type Keys interface {
	Decrypt(ctx context.Context, scope resource.Scope, arn string, wrapped []byte) ([]byte, error)
}

func isVolumeKey(k string) bool { return strings.Contains(k, "/"+resource.Volume.Name+"/") }

// scopeOf reads account and region from a record key, …/res/<acct>/<region>/<kind>/<id>.
func scopeOf(key string) resource.Scope {
	rest, _ := strings.CutPrefix(key, instance.AllPrefix)
	parts := strings.SplitN(rest, "/", 3)
	if len(parts) < 3 {
		return resource.Scope{}
	}
	return resource.Scope{Account: parts[0], Region: parts[1]}
}

// errSkip aborts a record update whose premise no longer holds.
var errSkip = errors.New("record changed")

// reconcileVolume makes a block volume of this host what its record asks:
// made, grown, attached to its instance, detached, deleted.
func (a *Agent) reconcileVolume(ctx context.Context, key string) error {
	if a.Blocks == nil {
		return nil
	}
	var v volume.Volume
	if _, err := a.Store.Get(ctx, key, &v); errors.Is(err, store.ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	if v.Host != a.Host || !v.IsBlock() {
		return nil
	}
	sc := scopeOf(key)
	if v.IsRoot() { // its instance's reconcile's (rootvol.go), but for a modification
		if m := v.Modification; m != nil && m.State == "modifying" {
			return a.modifyRoot(ctx, key, sc, v)
		}
		return nil
	}
	switch v.State {
	case volume.Creating:
		return a.createVolume(ctx, key, sc, v)
	case volume.Deleting:
		return a.deleteVolume(ctx, key, v)
	case volume.Available, volume.InUse:
	default:
		return nil
	}
	if m := v.Modification; m != nil && m.State == "modifying" {
		if err := a.modifyVolume(ctx, key, sc, v); err != nil {
			return err
		}
	}
	if v.Attachment == nil {
		return nil
	}
	switch v.Attachment.State {
	case volume.Detaching:
		return a.detachVolume(ctx, key, sc, v)
	default: // attaching, or attached (made sure of: a boot may have missed it)
		return a.attachVolume(ctx, key, sc, v)
	}
}

// unlock gives the kernel an encrypted volume's key (idempotent; needed
// after the pool was mounted anew) and returns it; nil if unencrypted.
func (a *Agent) unlock(ctx context.Context, sc resource.Scope, v volume.Volume, create bool) ([]byte, error) {
	if !v.Encrypted {
		return nil, nil
	}
	if a.Keys == nil {
		return nil, fmt.Errorf("volume %s is encrypted and this agent has no key service", v.ID)
	}
	key, err := a.Keys.Decrypt(ctx, sc, v.KmsKeyID, v.WrappedKey)
	if err != nil {
		return nil, fmt.Errorf("unwrapping the key of %s: %w", v.ID, err)
	}
	if !create {
		if err := a.Blocks.Unlock(ctx, v.ID, key); err != nil {
			return nil, err
		}
	}
	return key, nil
}

func (a *Agent) createVolume(ctx context.Context, key string, sc resource.Scope, v volume.Volume) error {
	dataKey, err := a.unlock(ctx, sc, v, true)
	if err != nil {
		return err
	}
	err = a.Blocks.Create(ctx, v.ID, int64(v.SizeGiB)<<30, dataKey)
	if errors.Is(err, blockstore.ErrExists) {
		// Made before a crash: it is ours if our key opens it.
		if v.Encrypted {
			err = a.Blocks.Unlock(ctx, v.ID, dataKey)
		} else {
			err = nil
		}
	}
	if err == nil && v.SnapshotID != "" {
		err = a.restoreVolume(ctx, sc, v)
	}
	state, msg := volume.Available, ""
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		a.Log.Error("creating volume", "volume_id", v.ID, "err", err)
		state, msg = volume.Error, err.Error()
	} else {
		a.Log.Info("volume created", "volume_id", v.ID, "size_gib", v.SizeGiB, "encrypted", v.Encrypted)
	}
	return a.updateVolume(ctx, key, func(x *volume.Volume) error {
		if x.State != volume.Creating {
			return errSkip
		}
		x.State, x.StatusMessage = state, msg
		if state == volume.Available && x.Attachment != nil {
			x.State = volume.InUse // made at launch for its instance (an image's mapping): attached next
		}
		return nil
	})
}

func (a *Agent) deleteVolume(ctx context.Context, key string, v volume.Volume) error {
	err := a.Blocks.Delete(ctx, v.ID)
	if errors.Is(err, blockstore.ErrAttached) {
		// Still bound to a loop device (its instance ended without a detach).
		if err = a.Blocks.Detach(ctx, v.ID); err == nil {
			err = a.Blocks.Delete(ctx, v.ID)
		}
	}
	if err != nil {
		return err
	}
	a.Log.Info("volume deleted", "volume_id", v.ID)
	err = a.Store.Delete(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}

func (a *Agent) modifyVolume(ctx context.Context, key string, sc resource.Scope, v volume.Volume) error {
	if _, err := a.unlock(ctx, sc, v, false); err != nil {
		return err
	}
	err := a.Blocks.Resize(ctx, v.ID, int64(v.SizeGiB)<<30)
	if ctx.Err() != nil {
		return err
	}
	// New limits reach a running instance with the next attach check.
	if err == nil && v.Attachment != nil {
		if err := a.giveDevice(ctx, sc, v); err != nil {
			return err
		}
	}
	return a.endModification(ctx, key, v, err)
}

// endModification records a modification's outcome.
func (a *Agent) endModification(ctx context.Context, key string, v volume.Volume, err error) error {
	return a.updateVolume(ctx, key, func(x *volume.Volume) error {
		m := x.Modification
		if m == nil || m.State != "modifying" || x.SizeGiB != v.SizeGiB {
			return errSkip
		}
		m.EndTime, m.Progress = a.Now().UTC(), 100
		m.State, m.StatusMessage = "completed", ""
		if err != nil {
			m.State, m.StatusMessage = "failed", err.Error()
		}
		return nil
	})
}

// attachVolume binds the volume to a loop device and gives it to its
// instance if that runs here; a stopped instance gets it at its next boot.
func (a *Agent) attachVolume(ctx context.Context, key string, sc resource.Scope, v volume.Volume) error {
	att := v.Attachment
	var in instance.Instance
	_, err := a.Store.Get(ctx, resource.Key(sc, resource.Instance, att.InstanceID), &in)
	if errors.Is(err, store.ErrNotFound) || err == nil && in.State == instance.Terminated {
		return a.endAttachment(ctx, key, v, att.InstanceID)
	}
	if err != nil {
		return err
	}
	if in.MachineName() != a.Host {
		return fmt.Errorf("volume %s: instance %s runs on host %s; volumes attach only to instances on their own machine", v.ID, in.ID, in.MachineName())
	}
	if _, err := a.Runtime.State(ctx, in.ID); err == nil {
		if err := a.giveDevice(ctx, sc, v); err != nil {
			return err
		}
	} else if !errors.Is(err, runtime.ErrNotFound) {
		return err
	}
	if att.State == volume.Attached {
		return nil
	}
	a.Log.Info("volume attached", "volume_id", v.ID, "instance_id", in.ID, "device", att.Device)
	return a.updateVolume(ctx, key, func(x *volume.Volume) error {
		if x.Attachment == nil || x.Attachment.InstanceID != att.InstanceID || x.Attachment.State != volume.Attaching {
			return errSkip
		}
		x.Attachment.State = volume.Attached
		return nil
	})
}

// blockDevice binds the volume to its loop device and describes it for the runtime.
func (a *Agent) blockDevice(ctx context.Context, sc resource.Scope, v volume.Volume) (runtime.BlockDevice, error) {
	if _, err := a.unlock(ctx, sc, v, false); err != nil {
		return runtime.BlockDevice{}, err
	}
	dev, err := a.Blocks.Attach(ctx, v.ID)
	if err != nil {
		return runtime.BlockDevice{}, err
	}
	iops, mibps := volume.Limits(v)
	return runtime.BlockDevice{Name: v.Attachment.Device, HostPath: dev.Path, Major: dev.Major, Minor: dev.Minor,
		IOPS: uint64(iops), BPS: uint64(mibps) << 20}, nil
}

func (a *Agent) giveDevice(ctx context.Context, sc resource.Scope, v volume.Volume) error {
	d, err := a.blockDevice(ctx, sc, v)
	if err != nil {
		return err
	}
	if err := a.Runtime.AttachDevice(ctx, v.Attachment.InstanceID, d); err != nil {
		return fmt.Errorf("giving %s to %s as %s: %w", v.ID, v.Attachment.InstanceID, d.Name, err)
	}
	return nil
}

// detachVolume takes the device from the instance (waiting, as EC2 does,
// while a filesystem on it is mounted inside, unless forced), then unbinds it.
func (a *Agent) detachVolume(ctx context.Context, key string, sc resource.Scope, v volume.Volume) error {
	att := v.Attachment
	err := a.Runtime.DetachDevice(ctx, att.InstanceID, att.Device, att.Force)
	if errors.Is(err, runtime.ErrDeviceBusy) {
		// EC2 leaves the volume "busy" in detaching until it is unmounted.
		a.later(ctx, key, time.Second)
		return nil
	}
	if err != nil && !errors.Is(err, runtime.ErrNotFound) {
		return err
	}
	return a.endAttachment(ctx, key, v, att.InstanceID)
}

// endAttachment unbinds the volume's device and records it detached.
func (a *Agent) endAttachment(ctx context.Context, key string, v volume.Volume, instanceID string) error {
	// ErrBusy: a forced detach left a lazily unmounted filesystem open; the
	// kernel unbinds the device at its last close.
	if err := a.Blocks.Detach(ctx, v.ID); err != nil && !errors.Is(err, blockstore.ErrBusy) {
		return err
	}
	a.Log.Info("volume detached", "volume_id", v.ID, "instance_id", instanceID)
	return a.updateVolume(ctx, key, func(x *volume.Volume) error {
		if x.Attachment == nil || x.Attachment.InstanceID != instanceID {
			return errSkip
		}
		x.Attachment, x.State = nil, volume.Available
		return nil
	})
}

func (a *Agent) updateVolume(ctx context.Context, key string, change func(*volume.Volume) error) error {
	_, err := store.Update(ctx, a.Store, key, change)
	if errors.Is(err, errSkip) || errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}

// instanceVolumes returns the block volumes attached (or attaching) to in.
func (a *Agent) instanceVolumes(ctx context.Context, in instance.Instance) ([]store.KV, []volume.Volume, error) {
	sc := resource.Scope{Account: in.Account, Region: in.Region}
	kvs, err := a.Store.List(ctx, resource.Prefix(sc, resource.Volume))
	if err != nil {
		return nil, nil, err
	}
	var keys []store.KV
	var vols []volume.Volume
	for _, kv := range kvs {
		var v volume.Volume
		if err := json.Unmarshal(kv.Value, &v); err != nil {
			return nil, nil, fmt.Errorf("decoding %s: %w", kv.Key, err)
		}
		if v.IsBlock() && v.Attachment != nil && v.Attachment.InstanceID == in.ID && !v.Attachment.Root && v.State != volume.Deleting {
			keys, vols = append(keys, kv), append(vols, v)
		}
	}
	return keys, vols, nil
}

// bootDevices are the devices an instance has from boot: its attached
// block volumes (those being detached included: the detach finishes after).
func (a *Agent) bootDevices(ctx context.Context, in instance.Instance) ([]runtime.BlockDevice, error) {
	if a.Blocks == nil {
		return nil, nil
	}
	_, vols, err := a.instanceVolumes(ctx, in)
	if err != nil {
		return nil, err
	}
	sc := resource.Scope{Account: in.Account, Region: in.Region}
	var devs []runtime.BlockDevice
	for _, v := range vols {
		switch v.State {
		case volume.Creating:
			// Made at launch from the image's mapping: the instance boots with it.
			return nil, fmt.Errorf("volume %s is still being restored from %s", v.ID, v.SnapshotID)
		case volume.Error:
			continue // its restore failed: the instance boots without it
		}
		d, err := a.blockDevice(ctx, sc, v)
		if err != nil {
			return nil, err
		}
		devs = append(devs, d)
	}
	return devs, nil
}

// releaseVolumes ends a terminated instance's attachments: volumes marked
// DeleteOnTermination are deleted, the others become available.
func (a *Agent) releaseVolumes(ctx context.Context, in instance.Instance) error {
	if a.Blocks == nil {
		return nil
	}
	kvs, vols, err := a.instanceVolumes(ctx, in)
	if err != nil {
		return err
	}
	for i, v := range vols {
		if err := a.Blocks.Detach(ctx, v.ID); err != nil && !errors.Is(err, blockstore.ErrBusy) {
			return err
		}
		err := a.updateVolume(ctx, kvs[i].Key, func(x *volume.Volume) error {
			if x.Attachment == nil || x.Attachment.InstanceID != in.ID {
				return errSkip
			}
			if x.Attachment.DeleteOnTermination {
				x.State = volume.Deleting
			} else {
				x.State = volume.Available
			}
			x.Attachment = nil
			return nil
		})
		if err != nil {
			return err
		}
		a.queue.add(kvs[i].Key)
	}
	return nil
}
