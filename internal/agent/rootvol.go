package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"nubo/internal/ami"
	"nubo/internal/blockstore"
	"nubo/internal/instance"
	"nubo/internal/resource"
	"nubo/internal/store"
	"nubo/internal/volume"
)

// rootvol is where the host mounts an instance's root block volume; the
// overlay's upper and work dirs are inside.
func (a *Agent) rootvol(id string) string { return filepath.Join(a.dir(id), "rootvol") }

// rootVolume reads the instance's root volume record; ok false when it is
// none of this host's block volumes (an overlay, or gone).
func (a *Agent) rootVolume(ctx context.Context, in instance.Instance) (volume.Volume, bool, error) {
	if a.Blocks == nil || in.RootVolumeID == "" {
		return volume.Volume{}, false, nil
	}
	var v volume.Volume
	_, err := a.Store.Get(ctx, resource.Key(resource.Scope{Account: in.Account, Region: in.Region}, resource.Volume, in.RootVolumeID), &v)
	if errors.Is(err, store.ErrNotFound) {
		return v, false, nil
	}
	if err != nil {
		return v, false, err
	}
	return v, v.IsBlock() && v.Host == a.Host, nil
}

// mountRoot mounts the instance's root filesystem at its rootfs: the image
// under the root volume's changes. A block root volume is made at the
// first boot (restored from the image's root snapshot, or formatted),
// attached to a loop device and mounted on the host first.
func (a *Agent) mountRoot(ctx context.Context, in instance.Instance, im ami.Image) error {
	v, block, err := a.rootVolume(ctx, in)
	if err != nil {
		return err
	}
	if !block {
		return a.Roots.Mount(in.RootVolumeID, a.ImageRoot(im), a.rootfs(in.ID), im.UIDBase)
	}
	if mounted, err := volume.IsMounted(a.rootfs(in.ID)); err != nil || mounted {
		return err
	}
	start := time.Now()
	sc := resource.Scope{Account: in.Account, Region: in.Region}
	if mounted, err := volume.IsMounted(a.rootvol(in.ID)); err != nil {
		return err
	} else if !mounted {
		if err := a.makeRoot(ctx, sc, v); err != nil {
			return fmt.Errorf("root volume %s of %s: %w", v.ID, in.ID, err)
		}
	}
	if err := volume.MountOverlay(a.rootvol(in.ID), a.ImageRoot(im), a.rootfs(in.ID), im.UIDBase); err != nil {
		return err
	}
	a.Log.Debug("root volume mounted", "instance_id", in.ID, "volume_id", v.ID, "took", time.Since(start))
	return nil
}

// makeRoot makes the root volume if it is new, attaches it and mounts its
// filesystem (formatted if it has none). A volume whose making did not
// finish (a crash, a failed restore) is made again: its instance never ran.
func (a *Agent) makeRoot(ctx context.Context, sc resource.Scope, v volume.Volume) error {
	key, err := a.unlock(ctx, sc, v, true)
	if err != nil {
		return err
	}
	instanceID := v.Attachment.InstanceID
	err = a.Blocks.Create(ctx, v.ID, int64(v.SizeGiB)<<30, key)
	if errors.Is(err, blockstore.ErrExists) && !a.rootMade(instanceID, v.ID) {
		a.Log.Warn("root volume made again: its making did not finish", "volume_id", v.ID, "instance_id", instanceID)
		if err = a.Blocks.Detach(ctx, v.ID); err == nil {
			if err = a.Blocks.Delete(ctx, v.ID); err == nil {
				err = a.Blocks.Create(ctx, v.ID, int64(v.SizeGiB)<<30, key)
			}
		}
	}
	switch {
	case err == nil && v.SnapshotID != "":
		if err := a.restoreVolume(ctx, sc, v); err != nil {
			return err
		}
	case errors.Is(err, blockstore.ErrExists):
		if v.Encrypted {
			if err := a.Blocks.Unlock(ctx, v.ID, key); err != nil {
				return err
			}
		}
	case err != nil:
		return err
	}
	dev, err := a.Blocks.Attach(ctx, v.ID)
	if err != nil {
		return err
	}
	has, err := volume.HasFilesystem(dev.Path)
	if err != nil {
		return err
	}
	if !has {
		if err := volume.Format(ctx, dev.Path); err != nil {
			return err
		}
	}
	mnt := a.rootvol(instanceID)
	if err := volume.MountFS(dev.Path, mnt); err != nil {
		return err
	}
	if err := a.setRootMade(instanceID, v.ID); err != nil {
		return err
	}
	// Larger than its filesystem (restored from a smaller snapshot, or
	// grown while stopped): grown offline, after the mount replayed the
	// journal and the unmount left it clean. Online growth would need
	// CAP_SYS_RESOURCE, which a nubo in a container may lack.
	if grow, err := volume.NeedsGrow(dev.Path); err != nil || !grow {
		return err
	}
	if err := volume.UnmountFS(mnt); err != nil {
		return err
	}
	if err := volume.Grow(ctx, dev.Path, false); err != nil {
		return err
	}
	return volume.MountFS(dev.Path, mnt)
}

// modifyRoot grows a root volume (ModifyVolume) and, if its instance has
// it mounted, its filesystem online when it can; a volume not made yet is
// made at the new size, the others' filesystems grow at their next mount.
func (a *Agent) modifyRoot(ctx context.Context, key string, sc resource.Scope, v volume.Volume) error {
	_, err := a.unlock(ctx, sc, v, false)
	if err == nil {
		err = a.Blocks.Resize(ctx, v.ID, int64(v.SizeGiB)<<30)
	}
	if errors.Is(err, blockstore.ErrNotFound) {
		err = nil // not made yet: its first boot makes it at this size
	} else if err == nil {
		if mounted, merr := volume.IsMounted(a.rootvol(v.Attachment.InstanceID)); merr != nil {
			err = merr
		} else if mounted {
			// The volume is grown; its filesystem, online if the kernel
			// lets this process (CAP_SYS_RESOURCE), else at the next boot.
			if dev, derr := a.Blocks.Attach(ctx, v.ID); derr != nil {
				err = derr
			} else if gerr := volume.Grow(ctx, dev.Path, true); gerr != nil {
				a.Log.Warn("root filesystem grows at the next boot", "volume_id", v.ID, "err", gerr)
			}
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return a.endModification(ctx, key, v, err)
}

// rootMade reports whether the instance's root volume was made (restored
// or formatted) and mounted once: DATA/instances/<id>/rootvol.made names it.
func (a *Agent) rootMade(instanceID, volumeID string) bool {
	b, err := os.ReadFile(filepath.Join(a.dir(instanceID), "rootvol.made"))
	return err == nil && strings.TrimSpace(string(b)) == volumeID
}

// setRootMade records that the root volume is made, durably: losing it
// after the instance wrote would make the volume anew, empty.
func (a *Agent) setRootMade(instanceID, volumeID string) error {
	if a.rootMade(instanceID, volumeID) {
		return nil
	}
	p := filepath.Join(a.dir(instanceID), "rootvol.made")
	f, err := os.OpenFile(p+".tmp", os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.WriteString(volumeID + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(p+".tmp", p)
	}
	if err == nil {
		err = syncDir(a.dir(instanceID))
	}
	if err != nil {
		return fmt.Errorf("recording root volume %s made: %w", volumeID, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// unmountRoot unmounts the instance's root filesystem and, if it has one,
// its root block volume's filesystem on the host.
func (a *Agent) unmountRoot(id string) error {
	if err := a.Roots.Unmount(a.rootfs(id)); err != nil {
		return err
	}
	return volume.UnmountFS(a.rootvol(id))
}

// detachRoot unbinds a halted instance's root block volume from its loop
// device (idempotent; ErrBusy: a lazy unmount still holds it, the kernel
// unbinds it at the last close).
func (a *Agent) detachRoot(ctx context.Context, in instance.Instance) error {
	v, block, err := a.rootVolume(ctx, in)
	if err != nil || !block {
		return err
	}
	if err := a.Blocks.Detach(ctx, v.ID); err != nil && !errors.Is(err, blockstore.ErrBusy) && !errors.Is(err, blockstore.ErrNotFound) {
		return err
	}
	return nil
}

// releaseBlockRoot ends a terminated instance's root block volume's
// attachment: deleting (crypto-erased by its reconcile) or available.
func (a *Agent) releaseBlockRoot(ctx context.Context, in instance.Instance) error {
	if err := a.detachRoot(ctx, in); err != nil {
		return err
	}
	key := resource.Key(resource.Scope{Account: in.Account, Region: in.Region}, resource.Volume, in.RootVolumeID)
	err := a.updateVolume(ctx, key, func(x *volume.Volume) error {
		if x.Attachment == nil || x.Attachment.InstanceID != in.ID {
			return errSkip
		}
		if in.DeleteOnTermination {
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
	a.queue.add(key)
	return nil
}
