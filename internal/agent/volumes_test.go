package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"nubo/internal/blockstore"
	"nubo/internal/instance"
	"nubo/internal/resource"
	"nubo/internal/store"
	"nubo/internal/volume"
)

// fakeBlocks keeps volumes in memory, as blockstore.Store would on disk.
type fakeBlocks struct {
	mu       sync.Mutex
	vols     map[string]*fakeVol
	nextLoop uint32
}

type fakeVol struct {
	size     int64
	key      []byte
	unlocked bool
	loop     uint32 // 0: not attached
}

func newFakeBlocks() *fakeBlocks { return &fakeBlocks{vols: map[string]*fakeVol{}} }

func (b *fakeBlocks) Create(ctx context.Context, id string, size int64, key []byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.vols[id]; ok {
		return blockstore.ErrExists
	}
	b.vols[id] = &fakeVol{size: size, key: bytes.Clone(key), unlocked: true}
	return nil
}

func (b *fakeBlocks) get(id string) (*fakeVol, error) {
	v, ok := b.vols[id]
	if !ok {
		return nil, blockstore.ErrNotFound
	}
	return v, nil
}

func (b *fakeBlocks) Unlock(ctx context.Context, id string, key []byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	v, err := b.get(id)
	if err != nil {
		return err
	}
	if v.key == nil {
		return blockstore.ErrNotEncrypted
	}
	if !bytes.Equal(v.key, key) {
		return blockstore.ErrWrongKey
	}
	v.unlocked = true
	return nil
}

func (b *fakeBlocks) Attach(ctx context.Context, id string) (blockstore.Device, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	v, err := b.get(id)
	if err != nil {
		return blockstore.Device{}, err
	}
	if !v.unlocked {
		return blockstore.Device{}, blockstore.ErrLocked
	}
	if v.loop == 0 {
		b.nextLoop++
		v.loop = b.nextLoop
	}
	return blockstore.Device{Path: fmt.Sprintf("/dev/loop%d", v.loop), Major: 7, Minor: v.loop}, nil
}

func (b *fakeBlocks) Detach(ctx context.Context, id string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if v, err := b.get(id); err == nil {
		v.loop = 0
	}
	return nil
}

func (b *fakeBlocks) Resize(ctx context.Context, id string, size int64) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	v, err := b.get(id)
	if err != nil {
		return err
	}
	if size < v.size {
		return blockstore.ErrShrink
	}
	v.size = size
	return nil
}

func (b *fakeBlocks) Delete(ctx context.Context, id string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if v, ok := b.vols[id]; ok && v.loop != 0 {
		return blockstore.ErrAttached
	}
	delete(b.vols, id)
	return nil
}

func (b *fakeBlocks) vol(id string) (fakeVol, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	v, ok := b.vols[id]
	if !ok {
		return fakeVol{}, false
	}
	return *v, true
}

// fakeKeys "unwraps" by reversing the bytes.
type fakeKeys struct{}

func (fakeKeys) Decrypt(ctx context.Context, sc resource.Scope, arn string, wrapped []byte) ([]byte, error) {
	if arn == "" {
		return nil, errors.New("no key ARN")
	}
	k := bytes.Clone(wrapped)
	slices.Reverse(k)
	return k, nil
}

var testScope = resource.Scope{Account: account, Region: "us-east-1"}

func (v *env) putVolume(t *testing.T, vol volume.Volume) string {
	t.Helper()
	vol.Backing, vol.Host, vol.Zone = volume.BackingBlock, "h1", "us-east-1a"
	if vol.Type == "" {
		vol.Type, vol.Iops, vol.Throughput = "gp3", 3000, 125
	}
	key := resource.Key(testScope, resource.Volume, vol.ID)
	if err := v.st.Apply(context.Background(), store.Op{Key: key, Value: vol}); err != nil {
		t.Fatal(err)
	}
	return key
}

func (v *env) changeVolume(t *testing.T, key string, change func(*volume.Volume)) {
	t.Helper()
	if _, err := store.Update(context.Background(), v.st, key, func(x *volume.Volume) error { change(x); return nil }); err != nil {
		t.Fatal(err)
	}
}

// waitVolume polls until ok holds for the volume record (nil: deleted).
func (v *env) waitVolume(t *testing.T, key, what string, ok func(*volume.Volume) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var vol volume.Volume
		_, err := v.st.Get(context.Background(), key, &vol)
		switch {
		case errors.Is(err, store.ErrNotFound):
			if ok(nil) {
				return
			}
		case err != nil:
			t.Fatal(err)
		case ok(&vol):
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s never happened; record %+v attachment %+v", key, what, vol, vol.Attachment)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func attachState(s string) func(*volume.Volume) bool {
	return func(v *volume.Volume) bool { return v != nil && v.Attachment != nil && v.Attachment.State == s }
}

func state(s string) func(*volume.Volume) bool {
	return func(v *volume.Volume) bool { return v != nil && v.State == s && v.Attachment == nil }
}

func gone(v *volume.Volume) bool { return v == nil }

func TestVolumeLifecycle(t *testing.T) {
	v := newEnv(t, 8)
	id := v.run(t, instance.RunSpec{})[0]
	v.wait(t, id, instance.Running)

	wrapped := []byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
	key := v.putVolume(t, volume.Volume{Meta: resource.Meta{ID: "vol-00000000000000001"}, SizeGiB: 2, State: volume.Creating,
		Encrypted: true, KmsKeyID: "arn:aws:kms:us-east-1:" + account + ":key/k", WrappedKey: wrapped})
	v.waitVolume(t, key, "created", state(volume.Available))
	fv, ok := v.blocks.vol("vol-00000000000000001")
	if want := bytes.Clone(wrapped); !ok || fv.size != 2<<30 || !bytes.Equal(fv.key, reverse(want)) {
		t.Fatalf("made volume %+v (exists %v), want 2 GiB keyed by the unwrapped key", fv, ok)
	}

	// Attach to the running instance: the runtime gets the device with the type's limits.
	v.changeVolume(t, key, func(x *volume.Volume) {
		x.State = volume.InUse
		x.Attachment = &volume.Attachment{InstanceID: id, Device: "/dev/sdf", State: volume.Attaching}
	})
	v.waitVolume(t, key, "attached", attachState(volume.Attached))
	devs := v.rt.Devices(id)
	if len(devs) != 1 || devs[0].Name != "/dev/sdf" || devs[0].IOPS != 3000 || devs[0].BPS != 125<<20 || devs[0].HostPath == "" {
		t.Fatalf("runtime devices %+v", devs)
	}

	// Grow it while attached.
	v.changeVolume(t, key, func(x *volume.Volume) {
		x.Modification = &volume.Modification{State: "modifying", OriginalSizeGiB: 2, TargetSizeGiB: 4}
		x.SizeGiB = 4
	})
	v.waitVolume(t, key, "grown", func(x *volume.Volume) bool { return x.Modification != nil && x.Modification.State == "completed" })
	if fv, _ := v.blocks.vol("vol-00000000000000001"); fv.size != 4<<30 {
		t.Fatalf("size after modify %d", fv.size)
	}

	// A mounted device holds the detach until unmounted.
	v.rt.Mount(id, "/dev/sdf", true)
	v.changeVolume(t, key, func(x *volume.Volume) { x.Attachment.State = volume.Detaching })
	time.Sleep(300 * time.Millisecond)
	v.waitVolume(t, key, "still detaching while mounted", attachState(volume.Detaching))
	v.rt.Mount(id, "/dev/sdf", false)
	v.waitVolume(t, key, "detached", state(volume.Available))
	if len(v.rt.Devices(id)) != 0 {
		t.Fatalf("device still in the instance: %+v", v.rt.Devices(id))
	}
	if fv, _ := v.blocks.vol("vol-00000000000000001"); fv.loop != 0 {
		t.Fatal("loop device still bound after detach")
	}

	// Forced detach does not wait for the unmount.
	v.changeVolume(t, key, func(x *volume.Volume) {
		x.State = volume.InUse
		x.Attachment = &volume.Attachment{InstanceID: id, Device: "/dev/sdg", State: volume.Attaching}
	})
	v.waitVolume(t, key, "attached again", attachState(volume.Attached))
	v.rt.Mount(id, "/dev/sdg", true)
	v.changeVolume(t, key, func(x *volume.Volume) { x.Attachment.State, x.Attachment.Force = volume.Detaching, true })
	v.waitVolume(t, key, "force-detached", state(volume.Available))

	v.changeVolume(t, key, func(x *volume.Volume) { x.State = volume.Deleting })
	v.waitVolume(t, key, "deleted", gone)
	if _, ok := v.blocks.vol("vol-00000000000000001"); ok {
		t.Fatal("data of a deleted volume kept")
	}
}

func reverse(b []byte) []byte { slices.Reverse(b); return b }

// A volume attached while the instance is stopped is there from its next
// boot; termination deletes DeleteOnTermination volumes and frees the others.
func TestVolumesAcrossStopAndTermination(t *testing.T) {
	v := newEnv(t, 8)
	ctx := context.Background()
	id := v.run(t, instance.RunSpec{})[0]
	v.wait(t, id, instance.Running)
	if _, err := v.svc.Stop(ctx, account, []string{id}, false); err != nil {
		t.Fatal(err)
	}
	v.wait(t, id, instance.Stopped)

	keep := v.putVolume(t, volume.Volume{Meta: resource.Meta{ID: "vol-00000000000000002"}, SizeGiB: 1, State: volume.Creating})
	drop := v.putVolume(t, volume.Volume{Meta: resource.Meta{ID: "vol-00000000000000003"}, SizeGiB: 1, State: volume.Creating, Type: "io2", Iops: 1000})
	v.waitVolume(t, keep, "created", state(volume.Available))
	v.waitVolume(t, drop, "created", state(volume.Available))
	v.changeVolume(t, keep, func(x *volume.Volume) {
		x.State, x.Attachment = volume.InUse, &volume.Attachment{InstanceID: id, Device: "/dev/sdf", State: volume.Attaching}
	})
	v.changeVolume(t, drop, func(x *volume.Volume) {
		x.State, x.Attachment = volume.InUse, &volume.Attachment{InstanceID: id, Device: "/dev/sdg", State: volume.Attaching, DeleteOnTermination: true}
	})
	v.waitVolume(t, keep, "attached to a stopped instance", attachState(volume.Attached))
	v.waitVolume(t, drop, "attached to a stopped instance", attachState(volume.Attached))

	if _, err := v.svc.Start(ctx, account, []string{id}); err != nil {
		t.Fatal(err)
	}
	v.wait(t, id, instance.Running)
	spec, _ := v.rt.Spec(id)
	var names []string
	for _, d := range spec.Devices {
		names = append(names, d.Name)
		if d.Name == "/dev/sdg" && (d.IOPS != 1000 || d.BPS != 250<<20) {
			t.Errorf("io2 device limits %+v, want 1000 IOPS and 250 MiB/s", d)
		}
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"/dev/sdf", "/dev/sdg"}) {
		t.Fatalf("boot devices %v", names)
	}

	if _, err := v.svc.Terminate(ctx, account, []string{id}); err != nil {
		t.Fatal(err)
	}
	v.wait(t, id, instance.Terminated)
	v.waitVolume(t, keep, "freed by termination", state(volume.Available))
	v.waitVolume(t, drop, "deleted with its instance", gone)
}

// Instance store: i3.large's disk exists while the instance runs, with a
// key of its own, and is wiped at stop; the next start gets a fresh one.
func TestInstanceStore(t *testing.T) {
	v := newEnv(t, 8)
	ctx := context.Background()
	id := v.run(t, instance.RunSpec{InstanceType: "i3.large"})[0]
	v.wait(t, id, instance.Running)
	disk := ephemeralID(id, 0)
	first, ok := v.blocks.vol(disk)
	if !ok || first.size != 475_000_000_000/4096*4096 || len(first.key) != blockstore.KeySize || first.loop == 0 {
		t.Fatalf("instance store disk %+v (exists %v)", first, ok)
	}
	if devs := v.rt.Devices(id); len(devs) != 1 || devs[0].Name != "/dev/nvme1n1" {
		t.Fatalf("devices %+v", devs)
	}
	if _, err := v.svc.Stop(ctx, account, []string{id}, false); err != nil {
		t.Fatal(err)
	}
	v.wait(t, id, instance.Stopped)
	if _, ok := v.blocks.vol(disk); ok {
		t.Fatal("instance store kept across a stop")
	}
	if _, err := v.svc.Start(ctx, account, []string{id}); err != nil {
		t.Fatal(err)
	}
	v.wait(t, id, instance.Running)
	if again, ok := v.blocks.vol(disk); !ok || bytes.Equal(again.key, first.key) {
		t.Fatal("no fresh instance store disk after start")
	}
	if _, err := v.svc.Terminate(ctx, account, []string{id}); err != nil {
		t.Fatal(err)
	}
	v.wait(t, id, instance.Terminated)
	if _, ok := v.blocks.vol(disk); ok {
		t.Fatal("instance store kept after termination")
	}
}
