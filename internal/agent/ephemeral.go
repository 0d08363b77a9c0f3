package agent

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"nubo/internal/blockstore"
	"nubo/internal/catalog"
	"nubo/internal/runtime"
)

// Instance store: types with local disks (i3, i4i, …) get each disk as a
// block volume of this host made at boot and deleted when the instance stops
// or ends, as EC2 wipes instance store then. Its key is random and never
// stored (the kernel alone holds it while the disk exists), so the delete is
// a crypto-erase and a host restart loses the disks, as a host failure does
// on EC2.

// maxEphemeral bounds the disks of any type (d-sized types have up to 8).
const maxEphemeral = 8

// ephemeralID names disk n of an instance as a volume ID, the same every
// time: a repeated boot finds the disks it made.
func ephemeralID(instanceID string, n int) string {
	sum := sha256.Sum256(fmt.Appendf(nil, "instance-store/%s/%d", instanceID, n))
	return "vol-" + hex.EncodeToString(sum[:])[:17]
}

// EphemeralDevice is the name of instance store disk n inside the instance
// (NVMe, as EC2 shows instance store; EBS volumes keep their /dev/sd* names).
func EphemeralDevice(n int) string { return fmt.Sprintf("/dev/nvme%dn1", n+1) }

// ephemeralDevices makes (or finds) the instance store disks of a type.
func (a *Agent) ephemeralDevices(ctx context.Context, id string, it catalog.InstanceType) ([]runtime.BlockDevice, error) {
	if a.Blocks == nil || it.InstanceStorageInfo == nil {
		return nil, nil
	}
	var devs []runtime.BlockDevice
	n := 0
	for _, d := range it.InstanceStorageInfo.Disks {
		for range d.Count {
			dev, err := a.ephemeralDisk(ctx, ephemeralID(id, n), d.SizeInGB*1000*1000*1000/4096*4096)
			if err != nil {
				return nil, fmt.Errorf("instance store disk %d: %w", n, err)
			}
			devs = append(devs, runtime.BlockDevice{Name: EphemeralDevice(n), HostPath: dev.Path, Major: dev.Major, Minor: dev.Minor})
			n++
		}
	}
	return devs, nil
}

func (a *Agent) ephemeralDisk(ctx context.Context, vol string, size int64) (blockstore.Device, error) {
	dev, err := a.Blocks.Attach(ctx, vol)
	if err == nil {
		return dev, nil
	}
	if !errors.Is(err, blockstore.ErrNotFound) && !errors.Is(err, blockstore.ErrLocked) {
		return blockstore.Device{}, err
	}
	// Locked: its key died with a host restart, and its data with it.
	if err := a.Blocks.Delete(ctx, vol); err != nil {
		return blockstore.Device{}, err
	}
	key := make([]byte, blockstore.KeySize)
	if _, err := rand.Read(key); err != nil {
		return blockstore.Device{}, err
	}
	if err := a.Blocks.Create(ctx, vol, size, key); err != nil {
		return blockstore.Device{}, err
	}
	clear(key)
	return a.Blocks.Attach(ctx, vol)
}

// ephemeralCount is how many instance store disks a type has; an unknown
// type (an orphan's) might have any number.
func ephemeralCount(instanceType string) int {
	it, ok := catalog.LookupInstanceType(instanceType)
	if !ok {
		return maxEphemeral
	}
	n := 0
	if it.InstanceStorageInfo != nil {
		for _, d := range it.InstanceStorageInfo.Disks {
			n += d.Count
		}
	}
	return n
}

// wipeEphemeral deletes the first n instance store disks of an instance
// (idempotent).
func (a *Agent) wipeEphemeral(ctx context.Context, id string, n int) error {
	if a.Blocks == nil {
		return nil
	}
	for n := range n {
		vol := ephemeralID(id, n)
		if err := a.Blocks.Detach(ctx, vol); err != nil && !errors.Is(err, blockstore.ErrNotFound) && !errors.Is(err, blockstore.ErrBusy) {
			return err
		}
		if err := a.Blocks.Delete(ctx, vol); err != nil && !errors.Is(err, blockstore.ErrNotFound) {
			return err
		}
	}
	return nil
}
