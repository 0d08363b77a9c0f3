package ami_test

import (
	"context"
	"testing"
	"time"

	"nubo/internal/ami"
	"nubo/internal/apierr"
	"nubo/internal/kms"
	"nubo/internal/resource"
	"nubo/internal/snapshot"
	"nubo/internal/store"
	"nubo/internal/store/storetest"
	"nubo/internal/volume"
)

var sc = resource.Scope{Account: "123456789012", Region: "us-east-1"}

func newMaker(t *testing.T) (*ami.Maker, *store.Store, context.Context) {
	t.Helper()
	st := storetest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	vols := &volume.Service{Store: st, Host: "h1", Zones: []string{"us-east-1a"}, KMS: &kms.Service{Store: st}}
	snaps := &snapshot.Service{Store: st, Volumes: vols, KMS: vols.KMS}
	images := &ami.Registry{Store: st, Region: sc.Region}
	m := &ami.Maker{Images: images, Volumes: vols, Snapshots: snaps}
	images.Settle, snaps.InUse = m.Settle, m.SnapshotInUse
	base := ami.Image{Meta: resource.Meta{ID: "ami-0000000000000000b"}, Name: "base", Architecture: "x86_64",
		RootDevice: "/dev/xvda", SizeGiB: 8, State: "available", Location: "base", UIDBase: 100000}
	if err := images.EnsurePublic(ctx, base); err != nil {
		t.Fatal(err)
	}
	return m, st, ctx
}

func putSnapshot(t *testing.T, ctx context.Context, st *store.Store, x snapshot.Snapshot) {
	t.Helper()
	if err := st.Apply(ctx, store.Op{Key: snapshot.Key(sc, x.ID), Value: x, ModRev: -1}); err != nil {
		t.Fatal(err)
	}
}

func code(err error) string {
	if e, ok := apierr.As(err); ok {
		return e.Code
	}
	return ""
}

// RegisterImage takes a completed snapshot of a root volume only; the
// snapshot is then in use until the AMI is deregistered. A pending AMI
// becomes available once its snapshot completes.
func TestRegisterAndSettle(t *testing.T) {
	m, st, ctx := newMaker(t)
	data := snapshot.Snapshot{Meta: resource.Meta{ID: resource.NewID(resource.Snapshot)}, VolumeSizeGiB: 1, State: snapshot.Completed, Host: "h1"}
	putSnapshot(t, ctx, st, data)
	if _, err := m.Register(ctx, sc.Account, ami.RegisterSpec{Name: "data", SnapshotID: data.ID}); code(err) != "InvalidParameterValue" {
		t.Errorf("a data volume's snapshot: %v", err)
	}
	root := snapshot.Snapshot{Meta: resource.Meta{ID: resource.NewID(resource.Snapshot)}, VolumeSizeGiB: 8, State: snapshot.Pending,
		Host: "h1", BaseImageID: "ami-0000000000000000b"}
	putSnapshot(t, ctx, st, root)
	if _, err := m.Register(ctx, sc.Account, ami.RegisterSpec{Name: "root", SnapshotID: root.ID}); code(err) != "IncorrectState" {
		t.Errorf("a pending snapshot: %v", err)
	}
	root.State = snapshot.Completed
	putSnapshot(t, ctx, st, root)
	im, err := m.Register(ctx, sc.Account, ami.RegisterSpec{Name: "root", SnapshotID: root.ID, SizeGiB: 10})
	if err != nil || im.State != "available" || im.Base() != "ami-0000000000000000b" || im.SizeGiB != 10 || im.Location != "base" {
		t.Fatalf("registered %+v, %v", im, err)
	}
	if _, err := m.Register(ctx, sc.Account, ami.RegisterSpec{Name: "root", SnapshotID: root.ID}); code(err) != "InvalidAMIName.Duplicate" {
		t.Errorf("a second image named root: %v", err)
	}
	if err := m.Snapshots.Delete(ctx, sc, root.ID); code(err) != "InvalidSnapshot.InUse" {
		t.Errorf("DeleteSnapshot of a registered root snapshot: %v", err)
	}
	if err := m.Images.Deregister(ctx, sc.Account, im.ID); err != nil {
		t.Fatal(err)
	}
	if err := m.Snapshots.Delete(ctx, sc, root.ID); err != nil {
		t.Errorf("DeleteSnapshot after DeregisterImage: %v", err)
	}

	// A copy is pending until its snapshot completes.
	src := snapshot.Snapshot{Meta: resource.Meta{ID: resource.NewID(resource.Snapshot)}, VolumeSizeGiB: 8, State: snapshot.Completed,
		Host: "h1", BaseImageID: "ami-0000000000000000b", Lineage: "11111111-1111-4111-8111-111111111111"}
	putSnapshot(t, ctx, st, src)
	orig, err := m.Register(ctx, sc.Account, ami.RegisterSpec{Name: "orig", SnapshotID: src.ID})
	if err != nil {
		t.Fatal(err)
	}
	cp, err := m.Copy(ctx, sc.Account, ami.CopySpec{SourceID: orig.ID, SourceRegion: sc.Region, Name: "copy", Encrypted: true})
	if err != nil || cp.State != "pending" || !cp.RootEncrypted || cp.RootSnapshotID == src.ID {
		t.Fatalf("copy %+v, %v", cp, err)
	}
	x, err := m.Snapshots.Get(ctx, sc, cp.RootSnapshotID)
	if err != nil || x.BaseImageID != "ami-0000000000000000b" {
		t.Fatalf("the copy's snapshot %+v, %v", x, err)
	}
	if got, _ := m.Images.Get(ctx, sc.Account, cp.ID); got.State != "pending" {
		t.Errorf("copy before its snapshot completed: %s", got.State)
	}
	x.State = snapshot.Completed
	putSnapshot(t, ctx, st, x)
	if got, _ := m.Images.Get(ctx, sc.Account, cp.ID); got.State != "available" {
		t.Errorf("copy after its snapshot completed: %s", got.State)
	}
	if _, err := m.Copy(ctx, sc.Account, ami.CopySpec{SourceID: orig.ID, SourceRegion: "eu-west-1", Name: "far"}); code(err) != "UnsupportedOperation" {
		t.Errorf("a copy from another Region: %v", err)
	}
}
