package agent

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"nubo/internal/ami"
	"nubo/internal/blockstore"
	"nubo/internal/instance"
	"nubo/internal/resource"
	"nubo/internal/snapshot"
	"nubo/internal/snapstore"
	"nubo/internal/store"
	"nubo/internal/volume"
)

// fileBlocks is fakeBlocks whose volumes have files (sparse, in dir), as
// snapshots read and restores write them.
type fileBlocks struct {
	*fakeBlocks
	dir string
}

func (b *fileBlocks) path(id string) string { return filepath.Join(b.dir, id) }

func (b *fileBlocks) OpenFile(ctx context.Context, id string, flag int) (*os.File, error) {
	v, ok := b.vol(id)
	switch {
	case !ok:
		return nil, blockstore.ErrNotFound
	case v.key != nil && !v.unlocked:
		return nil, blockstore.ErrLocked
	}
	f, err := os.OpenFile(b.path(id), flag&^unix.O_DIRECT|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if fi, err := f.Stat(); err == nil && fi.Size() < v.size {
		err = f.Truncate(v.size)
	}
	return f, err
}

func (b *fileBlocks) Device(ctx context.Context, id string) (blockstore.Device, bool, error) {
	v, ok := b.vol(id)
	if !ok || v.loop == 0 {
		return blockstore.Device{}, false, nil
	}
	return blockstore.Device{Path: fmt.Sprintf("/dev/loop%d", v.loop), Major: 7, Minor: v.loop}, true, nil
}

// countingFreezer is a snapstore.Freezer over fake cgroup files (a plain
// freezer.state per instance) that records what it was asked to freeze.
type countingFreezer struct {
	real *snapstore.Freezer
	mu   sync.Mutex
	devs map[string][][]uint64 // instance → devices of each freeze
}

func (f *countingFreezer) Freeze(ctx context.Context, id string, devs []uint64) (*snapstore.Frozen, error) {
	f.mu.Lock()
	f.devs[id] = append(f.devs[id], devs)
	f.mu.Unlock()
	return f.real.Freeze(ctx, id, nil) // the fake devices have no sysfs
}

func (f *countingFreezer) ThawAll(ids []string) error { return f.real.ThawAll(ids) }

func (f *countingFreezer) freezes(id string) [][]uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.devs[id])
}

type snapEnv struct {
	*env
	files  *fileBlocks
	snaps  *snapstore.Store
	freeze *countingFreezer
}

func newSnapEnv(t *testing.T) *snapEnv {
	t.Helper()
	v := newEnv(t, 8)
	v.stopAgent()
	e := &snapEnv{env: v, files: &fileBlocks{fakeBlocks: v.blocks, dir: t.TempDir()}}
	var err error
	if e.snaps, err = snapstore.Open(snapstore.Config{Dir: filepath.Join(t.TempDir(), "snapshots"), Log: slog.New(slog.NewTextHandler(io.Discard, nil))}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.snaps.Close() })
	e.freeze = &countingFreezer{real: &snapstore.Freezer{Root: t.TempDir()}, devs: map[string][][]uint64{}}
	e.start(t)
	return e
}

func (e *snapEnv) start(t *testing.T) {
	a := &Agent{Store: e.st, Host: "h1", Runtime: e.rt, Network: e.net, VPCs: e.svc.VPCs, Roots: e.roots, Blocks: e.files, Keys: fakeKeys{},
		Snapshots: e.snaps, Freezer: e.freeze, Images: e.svc.Images,
		ImageRoot: func(im ami.Image) string { return "/images/" + im.Location }, Dir: e.dir,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Ready: func(string) bool { return true },
		Resync: 100 * time.Millisecond, StopGrace: time.Second, TerminatedTTL: time.Hour}
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel, e.done = cancel, make(chan struct{})
	go func() { defer close(e.done); _ = a.Run(ctx) }()
	t.Cleanup(e.stopAgent)
}

// cgroup makes the fake freezer cgroup of a running instance.
func (e *snapEnv) cgroup(t *testing.T, id string) string {
	dir := filepath.Join(e.freeze.real.Root, id)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "freezer.state")
	os.WriteFile(p, []byte("THAWED\n"), 0o600)
	return p
}

var lineageN = 0

func testLineage() string {
	lineageN++
	return fmt.Sprintf("00000000-0000-4000-8000-%012d", lineageN)
}

// putSnapshot writes a pending snapshot record, as the API does.
func (e *snapEnv) putSnapshot(t *testing.T, x snapshot.Snapshot) string {
	t.Helper()
	x.State, x.Host = snapshot.Pending, "h1"
	if x.Lineage == "" {
		x.Lineage = testLineage()
	}
	if x.Encrypted && x.WrappedKey == nil {
		k := make([]byte, snapstore.KeySize)
		rand.Read(k)
		x.KmsKeyID, x.WrappedKey = "arn:aws:kms:us-east-1:"+account+":key/k", k // fakeKeys reverses it
	}
	key := snapshot.Key(testScope, x.ID)
	if err := e.st.Apply(context.Background(), store.Op{Key: key, Value: x}); err != nil {
		t.Fatal(err)
	}
	return key
}

func (e *snapEnv) waitSnapshot(t *testing.T, key, what string, ok func(*snapshot.Snapshot) bool) snapshot.Snapshot {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		var x snapshot.Snapshot
		_, err := e.st.Get(context.Background(), key, &x)
		switch {
		case errors.Is(err, store.ErrNotFound):
			if ok(nil) {
				return x
			}
		case err != nil:
			t.Fatal(err)
		case ok(&x):
			return x
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s never happened; record %+v", key, what, x)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func snapState(s string) func(*snapshot.Snapshot) bool {
	return func(x *snapshot.Snapshot) bool { return x != nil && x.State == s }
}

func snapGone(x *snapshot.Snapshot) bool { return x == nil }

// volumeWithData makes an available volume and writes data into its file.
func (e *snapEnv) volumeWithData(t *testing.T, vol volume.Volume, data map[int64][]byte) string {
	t.Helper()
	vol.State = volume.Creating
	key := e.putVolume(t, vol)
	e.waitVolume(t, key, "created", state(volume.Available))
	f, err := e.files.OpenFile(context.Background(), vol.ID, os.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for off, b := range data {
		if _, err := f.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
	}
	return key
}

func (e *snapEnv) content(t *testing.T, id string, n int64) []byte {
	t.Helper()
	b := make([]byte, n)
	f, err := os.Open(e.files.path(id))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.ReadAt(b, 0); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	return b
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func TestSnapshotTakeRestoreDelete(t *testing.T) {
	e := newSnapEnv(t)
	data := map[int64][]byte{0: randomBytes(3 << 20), 100 << 20: randomBytes(4096)}
	e.volumeWithData(t, volume.Volume{Meta: resource.Meta{ID: "vol-00000000000000001"}, SizeGiB: 1, Encrypted: true,
		KmsKeyID: "arn:aws:kms:us-east-1:" + account + ":key/v", WrappedKey: randomBytes(blockstore.KeySize)}, data)
	key := e.putSnapshot(t, snapshot.Snapshot{Meta: resource.Meta{ID: "snap-00000000000000001"}, VolumeID: "vol-00000000000000001",
		VolumeSizeGiB: 1, Encrypted: true})
	x := e.waitSnapshot(t, key, "completed", snapState(snapshot.Completed))
	if x.Progress != 100 || x.CompletionTime.IsZero() || x.FullSizeBytes != 7*snapstore.ChunkSize || x.StoredBytes == 0 || x.StatusMessage != "" {
		t.Fatalf("completed snapshot %+v", x)
	}
	if m, err := e.snaps.Manifest(x.Lineage, x.ID); err != nil || !m.Encrypted || m.Labels["account"] != account || len(m.Chunks) != 7 {
		t.Fatalf("manifest %+v, %v", m, err)
	}

	// A volume from it, larger, holds the same bytes.
	restored := e.putVolume(t, volume.Volume{Meta: resource.Meta{ID: "vol-00000000000000002"}, SizeGiB: 2, State: volume.Creating,
		SnapshotID: x.ID, Encrypted: true, KmsKeyID: "arn:aws:kms:us-east-1:" + account + ":key/v", WrappedKey: randomBytes(blockstore.KeySize)})
	e.waitVolume(t, restored, "restored", state(volume.Available))
	if !bytes.Equal(e.content(t, "vol-00000000000000002", 101<<20), e.content(t, "vol-00000000000000001", 101<<20)) {
		t.Fatal("the restored volume differs from the snapshotted one")
	}

	// A deletion waits while a volume is made from the snapshot (here one
	// another host makes), then removes the data and the record.
	other := resource.Key(testScope, resource.Volume, "vol-00000000000000003")
	err := e.st.Apply(context.Background(), store.Op{Key: other, Value: volume.Volume{Meta: resource.Meta{ID: "vol-00000000000000003"},
		Backing: volume.BackingBlock, SizeGiB: 1, State: volume.Creating, SnapshotID: x.ID, Host: "h2"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Update(context.Background(), e.st, key, func(x *snapshot.Snapshot) error { x.State = snapshot.Deleting; return nil }); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	e.waitSnapshot(t, key, "still there while a volume is made of it", snapState(snapshot.Deleting))
	if err := e.st.Delete(context.Background(), other); err != nil {
		t.Fatal(err)
	}
	e.waitSnapshot(t, key, "deleted", snapGone)
	if _, err := e.snaps.Manifest(x.Lineage, x.ID); !errors.Is(err, snapstore.ErrNotFound) {
		t.Fatalf("manifest of a deleted snapshot: %v", err)
	}
}

// TestSnapshotsOfARunningInstance: a volume attached to a running instance
// is read frozen; a CreateSnapshots group is taken under one freeze.
func TestSnapshotsOfARunningInstance(t *testing.T) {
	e := newSnapEnv(t)
	id := e.run(t, instance.RunSpec{})[0]
	e.wait(t, id, instance.Running)
	state := e.cgroup(t, id)
	var keys []string
	for i, dev := range []string{"/dev/sdf", "/dev/sdg"} {
		vid := fmt.Sprintf("vol-0000000000000001%d", i)
		k := e.volumeWithData(t, volume.Volume{Meta: resource.Meta{ID: vid}, SizeGiB: 1}, map[int64][]byte{0: randomBytes(1 << 20)})
		e.changeVolume(t, k, func(v *volume.Volume) {
			v.State, v.Attachment = volume.InUse, &volume.Attachment{InstanceID: id, Device: dev, State: volume.Attaching}
		})
		e.waitVolume(t, k, "attached", attachState(volume.Attached))
		keys = append(keys, k)
	}
	one := e.putSnapshot(t, snapshot.Snapshot{Meta: resource.Meta{ID: "snap-00000000000000011"}, VolumeID: "vol-00000000000000010", VolumeSizeGiB: 1})
	e.waitSnapshot(t, one, "completed", snapState(snapshot.Completed))
	if f := e.freeze.freezes(id); len(f) != 1 || len(f[0]) != 1 {
		t.Fatalf("freezes of %s: %v; want one, of the volume's device", id, f)
	}
	if b, _ := os.ReadFile(state); string(b) != "THAWED" {
		t.Fatalf("the instance's freezer state after the snapshot: %q", b)
	}
	// One transaction, as CreateSnapshots writes them.
	var group []string
	var ops []store.Op
	for i := range 2 {
		x := snapshot.Snapshot{Meta: resource.Meta{ID: fmt.Sprintf("snap-0000000000000002%d", i)}, VolumeID: fmt.Sprintf("vol-0000000000000001%d", i),
			VolumeSizeGiB: 1, Group: "g1", InstanceID: id, State: snapshot.Pending, Host: "h1", Lineage: testLineage()}
		group = append(group, snapshot.Key(testScope, x.ID))
		ops = append(ops, store.Op{Key: group[i], Value: x})
	}
	if err := e.st.Apply(context.Background(), ops...); err != nil {
		t.Fatal(err)
	}
	for _, k := range group {
		e.waitSnapshot(t, k, "completed", snapState(snapshot.Completed))
	}
	if f := e.freeze.freezes(id); len(f) != 2 || len(f[1]) != 2 {
		t.Fatalf("freezes of %s: %v; want the group's one, of both devices", id, f)
	}
}

func TestSnapshotCopiesAndFailures(t *testing.T) {
	e := newSnapEnv(t)
	data := map[int64][]byte{1 << 20: randomBytes(2 << 20)}
	e.volumeWithData(t, volume.Volume{Meta: resource.Meta{ID: "vol-00000000000000001"}, SizeGiB: 1}, data)
	src := e.putSnapshot(t, snapshot.Snapshot{Meta: resource.Meta{ID: "snap-00000000000000001"}, VolumeID: "vol-00000000000000001", VolumeSizeGiB: 1})
	s := e.waitSnapshot(t, src, "completed", snapState(snapshot.Completed))
	same := e.putSnapshot(t, snapshot.Snapshot{Meta: resource.Meta{ID: "snap-00000000000000002"}, VolumeID: snapshot.CopyVolumeID, VolumeSizeGiB: 1,
		SourceSnapshotID: s.ID, Lineage: s.Lineage})
	enc := e.putSnapshot(t, snapshot.Snapshot{Meta: resource.Meta{ID: "snap-00000000000000003"}, VolumeID: snapshot.CopyVolumeID, VolumeSizeGiB: 1,
		SourceSnapshotID: s.ID, Encrypted: true})
	c1 := e.waitSnapshot(t, same, "copied", snapState(snapshot.Completed))
	c2 := e.waitSnapshot(t, enc, "copied", snapState(snapshot.Completed))
	if c1.StoredBytes != 0 || c2.StoredBytes == 0 || c1.FullSizeBytes != s.FullSizeBytes || c2.FullSizeBytes != s.FullSizeBytes {
		t.Fatalf("copies: same lineage %+v, re-encrypted %+v", c1, c2)
	}
	// The source goes; the encrypted copy still restores the data.
	if _, err := store.Update(context.Background(), e.st, src, func(x *snapshot.Snapshot) error { x.State = snapshot.Deleting; return nil }); err != nil {
		t.Fatal(err)
	}
	e.waitSnapshot(t, src, "deleted", snapGone)
	k := e.putVolume(t, volume.Volume{Meta: resource.Meta{ID: "vol-00000000000000002"}, SizeGiB: 1, State: volume.Creating, SnapshotID: c2.ID,
		Encrypted: true, KmsKeyID: "arn:aws:kms:us-east-1:" + account + ":key/v", WrappedKey: randomBytes(blockstore.KeySize)})
	e.waitVolume(t, k, "restored from the copy", state(volume.Available))
	if !bytes.Equal(e.content(t, "vol-00000000000000002", 4<<20), e.content(t, "vol-00000000000000001", 4<<20)) {
		t.Fatal("the volume from the re-encrypted copy differs")
	}

	// A snapshot of no volume fails; so does a volume from no snapshot.
	bad := e.putSnapshot(t, snapshot.Snapshot{Meta: resource.Meta{ID: "snap-00000000000000009"}, VolumeID: "vol-00000000000000009", VolumeSizeGiB: 1})
	if x := e.waitSnapshot(t, bad, "failed", snapState(snapshot.Error)); x.StatusMessage == "" {
		t.Fatal("no status message on the failed snapshot")
	}
	k = e.putVolume(t, volume.Volume{Meta: resource.Meta{ID: "vol-00000000000000003"}, SizeGiB: 1, State: volume.Creating, SnapshotID: "snap-00000000000000008"})
	e.waitVolume(t, k, "failed", state(volume.Error))
}

// TestSnapshotSweepAtStart: data whose record is gone (deleted while the
// agent was down) is removed when the agent starts.
func TestSnapshotSweepAtStart(t *testing.T) {
	e := newSnapEnv(t)
	e.volumeWithData(t, volume.Volume{Meta: resource.Meta{ID: "vol-00000000000000001"}, SizeGiB: 1}, map[int64][]byte{0: randomBytes(1 << 20)})
	key := e.putSnapshot(t, snapshot.Snapshot{Meta: resource.Meta{ID: "snap-00000000000000001"}, VolumeID: "vol-00000000000000001", VolumeSizeGiB: 1})
	x := e.waitSnapshot(t, key, "completed", snapState(snapshot.Completed))
	e.stopAgent()
	if err := e.st.Delete(context.Background(), key); err != nil {
		t.Fatal(err)
	}
	e.start(t)
	deadline := time.Now().Add(10 * time.Second)
	for {
		ls, _ := e.snaps.Lineages()
		if !slices.Contains(ls, x.Lineage) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the data of a snapshot whose record is gone is still there")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
