package ec2

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"nubo/internal/resource"
	"nubo/internal/snapshot"
	"nubo/internal/store"
	"nubo/internal/volume"
)

// snapEnv is volEnv with snapshots; complete stands in for the agent.
type snapEnv struct{ *volEnv }

func newSnapEnv(t *testing.T) *snapEnv {
	t.Helper()
	e := newVolEnv(t)
	a := e.v.a
	a.Snapshots = &snapshot.Service{Store: a.Instances.Store, Volumes: a.Volumes, KMS: a.Volumes.KMS}
	a.Tags = resource.Tagger{Store: a.Instances.Store}
	a.Volumes.Snapshots = a.Snapshots
	return &snapEnv{e}
}

func (e *snapEnv) record(t *testing.T, id string) snapshot.Snapshot {
	t.Helper()
	var x snapshot.Snapshot
	if _, err := e.v.a.Instances.Store.Get(context.Background(), snapshot.Key(e.scope(), id), &x); err != nil {
		t.Fatal(err)
	}
	return x
}

// complete does what the agent does once a snapshot is taken.
func (e *snapEnv) complete(t *testing.T, id string) {
	t.Helper()
	_, err := store.Update(context.Background(), e.v.a.Instances.Store, snapshot.Key(e.scope(), id), func(x *snapshot.Snapshot) error {
		x.State, x.Progress, x.CompletionTime, x.FullSizeBytes = snapshot.Completed, 100, time.Now(), 3<<20
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func (e *snapEnv) snapshot(t *testing.T, volumeID string) string {
	t.Helper()
	out, err := e.c.CreateSnapshot(tctx(t), &ec2.CreateSnapshotInput{VolumeId: &volumeID})
	if err != nil {
		t.Fatal(err)
	}
	e.complete(t, *out.SnapshotId)
	return *out.SnapshotId
}

func (e *snapEnv) describeSnap(t *testing.T, id string) types.Snapshot {
	t.Helper()
	out, err := e.c.DescribeSnapshots(tctx(t), &ec2.DescribeSnapshotsInput{SnapshotIds: []string{id}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Snapshots) != 1 {
		t.Fatalf("%d snapshots", len(out.Snapshots))
	}
	return out.Snapshots[0]
}

func (e *snapEnv) snapFilter(t *testing.T, in *ec2.DescribeSnapshotsInput) []string {
	t.Helper()
	out, err := e.c.DescribeSnapshots(tctx(t), in)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, x := range out.Snapshots {
		ids = append(ids, *x.SnapshotId)
	}
	return ids
}

func byName(name string, values ...string) []types.Filter {
	return []types.Filter{{Name: aws.String(name), Values: values}}
}

func TestSnapshotLifecycleWithSDK(t *testing.T) {
	e := newSnapEnv(t)
	ctx := tctx(t)
	vol := e.create(t, &ec2.CreateVolumeInput{Size: aws.Int32(8), VolumeType: types.VolumeTypeGp3})
	out, err := e.c.CreateSnapshot(ctx, &ec2.CreateSnapshotInput{VolumeId: &vol, Description: aws.String("nightly"),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeSnapshot, Tags: []types.Tag{{Key: aws.String("Name"), Value: aws.String("db")}}}}})
	if err != nil {
		t.Fatal(err)
	}
	id := *out.SnapshotId
	if out.State != types.SnapshotStatePending || aws.ToString(out.Progress) != "0%" || aws.ToString(out.VolumeId) != vol ||
		aws.ToInt32(out.VolumeSize) != 8 || aws.ToString(out.OwnerId) != e.v.account || aws.ToString(out.Description) != "nightly" ||
		aws.ToBool(out.Encrypted) || out.StartTime == nil || len(out.Tags) != 1 || out.StorageTier != types.StorageTierStandard {
		t.Fatalf("CreateSnapshot answered %+v", out)
	}
	if rec := e.record(t, id); rec.Host != "h1" || rec.Lineage == "" || rec.WrappedKey != nil {
		t.Fatalf("record %+v", rec)
	}
	// A pending snapshot restores nothing yet.
	_, err = e.c.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1a"), SnapshotId: &id})
	wantAPIError(t, err, "IncorrectState")

	e.complete(t, id)
	d := e.describeSnap(t, id)
	if d.State != types.SnapshotStateCompleted || aws.ToString(d.Progress) != "100%" || d.CompletionTime == nil ||
		aws.ToInt64(d.FullSnapshotSizeInBytes) != 3<<20 || !d.StartTime.Equal(*out.StartTime) || d.DataEncryptionKeyId != nil {
		t.Fatalf("described %+v", d)
	}
	other := e.snapshot(t, vol)
	for _, c := range []struct {
		in   *ec2.DescribeSnapshotsInput
		want int
	}{
		{&ec2.DescribeSnapshotsInput{}, 2},
		{&ec2.DescribeSnapshotsInput{OwnerIds: []string{"self"}}, 2},
		{&ec2.DescribeSnapshotsInput{OwnerIds: []string{e.v.account}}, 2},
		{&ec2.DescribeSnapshotsInput{OwnerIds: []string{"amazon"}}, 0},
		{&ec2.DescribeSnapshotsInput{RestorableByUserIds: []string{"all"}}, 2},
		{&ec2.DescribeSnapshotsInput{Filters: byName("description", "night*")}, 1},
		{&ec2.DescribeSnapshotsInput{Filters: byName("tag:Name", "db")}, 1},
		{&ec2.DescribeSnapshotsInput{Filters: byName("tag-key", "Name")}, 1},
		{&ec2.DescribeSnapshotsInput{Filters: byName("volume-id", vol)}, 2},
		{&ec2.DescribeSnapshotsInput{Filters: byName("volume-size", "8")}, 2},
		{&ec2.DescribeSnapshotsInput{Filters: byName("status", "completed")}, 2},
		{&ec2.DescribeSnapshotsInput{Filters: byName("progress", "100%")}, 2},
		{&ec2.DescribeSnapshotsInput{Filters: byName("encrypted", "true")}, 0},
		{&ec2.DescribeSnapshotsInput{Filters: byName("owner-id", e.v.account)}, 2},
		{&ec2.DescribeSnapshotsInput{Filters: byName("snapshot-id", other)}, 1},
		{&ec2.DescribeSnapshotsInput{Filters: byName("start-time", d.StartTime.UTC().Format("2006-01-02T15:04:05.000Z"))}, 1},
	} {
		if got := e.snapFilter(t, c.in); len(got) != c.want {
			t.Errorf("DescribeSnapshots %+v: %v, want %d", c.in, got, c.want)
		}
	}
	_, err = e.c.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{Filters: byName("colour", "red")})
	wantAPIError(t, err, "InvalidParameterValue")

	// Volumes from it: its size by default, not smaller, larger allowed.
	nv, err := e.c.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1a"), SnapshotId: &id})
	if err != nil || aws.ToInt32(nv.Size) != 8 || aws.ToString(nv.SnapshotId) != id || aws.ToBool(nv.Encrypted) {
		t.Fatalf("CreateVolume from a snapshot: %+v %v", nv, err)
	}
	_, err = e.c.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1a"), SnapshotId: &id, Size: aws.Int32(4)})
	if msg := wantAPIError(t, err, "InvalidParameterValue"); !strings.Contains(msg, "smaller than snapshot") {
		t.Fatal(msg)
	}
	if big, err := e.c.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1a"), SnapshotId: &id, Size: aws.Int32(20)}); err != nil || aws.ToInt32(big.Size) != 20 {
		t.Fatalf("a larger volume from a snapshot: %+v %v", big, err)
	}
	if got := e.filter(t, "snapshot-id", id); len(got) != 2 {
		t.Fatalf("volumes of snapshot-id %s: %v", id, got)
	}

	// Tags work on snapshots like on any resource.
	if _, err := e.c.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{other}, Tags: []types.Tag{{Key: aws.String("k"), Value: aws.String("v")}}}); err != nil {
		t.Fatal(err)
	}
	if got := e.snapFilter(t, &ec2.DescribeSnapshotsInput{Filters: byName("tag:k", "v")}); len(got) != 1 {
		t.Fatalf("tagged snapshot: %v", got)
	}

	// Deletion hides it at once; the agent deletes the record later.
	if _, err := e.c.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: &id}); err != nil {
		t.Fatal(err)
	}
	if rec := e.record(t, id); rec.State != snapshot.Deleting {
		t.Fatalf("deleted snapshot's record is %s", rec.State)
	}
	_, err = e.c.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{id}})
	wantAPIError(t, err, "InvalidSnapshot.NotFound")
	_, err = e.c.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: &id})
	wantAPIError(t, err, "InvalidSnapshot.NotFound")
	_, err = e.c.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1a"), SnapshotId: &id})
	wantAPIError(t, err, "InvalidSnapshot.NotFound")
	if got := e.snapFilter(t, &ec2.DescribeSnapshotsInput{}); len(got) != 1 || got[0] != other {
		t.Fatalf("after the deletion: %v", got)
	}
}

func TestSnapshotErrorsWithSDK(t *testing.T) {
	e := newSnapEnv(t)
	ctx := tctx(t)
	in := e.running(t)
	root := *in.BlockDeviceMappings[0].Ebs.VolumeId
	_, err := e.c.CreateSnapshot(ctx, &ec2.CreateSnapshotInput{VolumeId: &root})
	if msg := wantAPIError(t, err, "UnsupportedOperation"); !strings.Contains(msg, "root volume") {
		t.Fatal(msg)
	}
	_, err = e.c.CreateSnapshots(ctx, &ec2.CreateSnapshotsInput{InstanceSpecification: &types.InstanceSpecification{InstanceId: in.InstanceId}})
	if msg := wantAPIError(t, err, "UnsupportedOperation"); !strings.Contains(msg, "no block volumes") {
		t.Fatal(msg)
	}
	for _, c := range []struct {
		id, code string
	}{{"", "MissingParameter"}, {"vol-xyz", "InvalidVolumeID.Malformed"}, {"vol-0123456789abcdef0", "InvalidVolume.NotFound"}} {
		_, err = e.c.CreateSnapshot(ctx, &ec2.CreateSnapshotInput{VolumeId: aws.String(c.id)})
		wantAPIError(t, err, c.code)
	}
	creating, err := e.c.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1a"), Size: aws.Int32(1)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.c.CreateSnapshot(ctx, &ec2.CreateSnapshotInput{VolumeId: creating.VolumeId})
	wantAPIError(t, err, "IncorrectState")
	vol := e.create(t, &ec2.CreateVolumeInput{Size: aws.Int32(1)})
	_, err = e.c.CreateSnapshot(ctx, &ec2.CreateSnapshotInput{VolumeId: &vol, Description: aws.String(strings.Repeat("d", 256))})
	wantAPIError(t, err, "InvalidParameterValue")
	_, err = e.c.CreateSnapshot(ctx, &ec2.CreateSnapshotInput{VolumeId: &vol, DryRun: aws.Bool(true)})
	wantAPIError(t, err, "DryRunOperation")
	_, err = e.c.CreateSnapshot(ctx, &ec2.CreateSnapshotInput{VolumeId: &vol, OutpostArn: aws.String("arn:aws:outposts:us-east-1:1:outpost/op-1")})
	wantAPIError(t, err, "UnsupportedOperation")
	if got := e.snapFilter(t, &ec2.DescribeSnapshotsInput{}); len(got) != 0 {
		t.Fatalf("failed calls made snapshots: %v", got)
	}
	for _, id := range []string{"snap-1", "vol-01234567"} {
		_, err = e.c.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{id}})
		wantAPIError(t, err, "InvalidSnapshotID.Malformed")
		_, err = e.c.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: aws.String(id)})
		wantAPIError(t, err, "InvalidSnapshotID.Malformed")
	}
	_, err = e.c.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{"snap-0123456789abcdef0"}})
	wantAPIError(t, err, "InvalidSnapshot.NotFound")

	// An AMI using a snapshot keeps it.
	id := e.snapshot(t, vol)
	e.v.a.Snapshots.InUse = func(ctx context.Context, sc resource.Scope, snap string) (string, error) {
		if snap == id {
			return "ami-0123456789abcdef0", nil
		}
		return "", nil
	}
	_, err = e.c.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: &id})
	if msg := wantAPIError(t, err, "InvalidSnapshot.InUse"); !strings.Contains(msg, "ami-0123456789abcdef0") {
		t.Fatal(msg)
	}
	_, err = e.c.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: &id, DryRun: aws.Bool(true)})
	wantAPIError(t, err, "DryRunOperation")
}

// TestSnapshotLineages: snapshots of one encrypted volume share a data key
// (DataEncryptionKeyId), so do volumes restored from them and copies under
// the same key; a copy under another key or newly encrypted does not.
func TestSnapshotLineagesWithSDK(t *testing.T) {
	e := newSnapEnv(t)
	ctx := tctx(t)
	vol := e.create(t, &ec2.CreateVolumeInput{Size: aws.Int32(2), Encrypted: aws.Bool(true)})
	s1, s2 := e.snapshot(t, vol), e.snapshot(t, vol)
	d1, d2 := e.describeSnap(t, s1), e.describeSnap(t, s2)
	if !aws.ToBool(d1.Encrypted) || aws.ToString(d1.KmsKeyId) == "" || aws.ToString(d1.KmsKeyId) != aws.ToString(e.describe(t, vol).KmsKeyId) ||
		aws.ToString(d1.DataEncryptionKeyId) == "" || aws.ToString(d1.DataEncryptionKeyId) != aws.ToString(d2.DataEncryptionKeyId) {
		t.Fatalf("snapshots of one encrypted volume: %+v / %+v", d1, d2)
	}
	lineage := aws.ToString(d1.DataEncryptionKeyId)
	if r1, r2 := e.record(t, s1), e.record(t, s2); len(r1.WrappedKey) == 0 || string(r1.WrappedKey) != string(r2.WrappedKey) {
		t.Fatal("the snapshots of one volume hold different wrapped keys")
	}
	// A volume restored from s2 is encrypted under its key; its snapshots join the lineage.
	nv, err := e.c.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1a"), SnapshotId: &s2})
	if err != nil || !aws.ToBool(nv.Encrypted) || aws.ToString(nv.KmsKeyId) != aws.ToString(d1.KmsKeyId) {
		t.Fatalf("volume from an encrypted snapshot: %+v %v", nv, err)
	}
	e.agent(t, *nv.VolumeId, func(v *volume.Volume) { v.State = volume.Available })
	if got := aws.ToString(e.describeSnap(t, e.snapshot(t, *nv.VolumeId)).DataEncryptionKeyId); got != lineage {
		t.Fatalf("snapshot of the restored volume: lineage %s, want %s", got, lineage)
	}
	// Copies.
	same, err := e.c.CopySnapshot(ctx, &ec2.CopySnapshotInput{SourceSnapshotId: &s1, SourceRegion: aws.String("us-east-1")})
	if err != nil {
		t.Fatal(err)
	}
	c := e.describeSnap(t, *same.SnapshotId)
	if c.State != types.SnapshotStatePending || aws.ToString(c.DataEncryptionKeyId) != lineage || aws.ToString(c.VolumeId) != snapshot.CopyVolumeID ||
		!strings.Contains(aws.ToString(c.Description), s1) || aws.ToInt32(c.VolumeSize) != 2 {
		t.Fatalf("copy under the same key: %+v", c)
	}
	if e.record(t, *same.SnapshotId).SourceSnapshotID != s1 {
		t.Fatal("the copy does not name its source")
	}
	plain := e.create(t, &ec2.CreateVolumeInput{Size: aws.Int32(1)})
	ps := e.snapshot(t, plain)
	enc, err := e.c.CopySnapshot(ctx, &ec2.CopySnapshotInput{SourceSnapshotId: &ps, SourceRegion: aws.String("us-east-1"), Encrypted: aws.Bool(true),
		Description: aws.String("encrypted copy")})
	if err != nil {
		t.Fatal(err)
	}
	ec := e.describeSnap(t, *enc.SnapshotId)
	if !aws.ToBool(ec.Encrypted) || aws.ToString(ec.KmsKeyId) == "" || aws.ToString(ec.DataEncryptionKeyId) == "" || aws.ToString(ec.Description) != "encrypted copy" {
		t.Fatalf("encrypted copy of an unencrypted snapshot: %+v", ec)
	}
	if e.record(t, *enc.SnapshotId).Lineage == e.record(t, ps).Lineage {
		t.Fatal("the encrypted copy stayed in the unencrypted lineage")
	}
	// An unencrypted copy of an unencrypted snapshot shares its lineage.
	pc, err := e.c.CopySnapshot(ctx, &ec2.CopySnapshotInput{SourceSnapshotId: &ps, SourceRegion: aws.String("us-east-1")})
	if err != nil || e.record(t, *pc.SnapshotId).Lineage != e.record(t, ps).Lineage || e.record(t, *pc.SnapshotId).Encrypted {
		t.Fatalf("unencrypted copy: %+v %v", pc, err)
	}

	for _, c := range []struct {
		in   *ec2.CopySnapshotInput
		code string
	}{
		{&ec2.CopySnapshotInput{SourceSnapshotId: &s1, SourceRegion: aws.String("eu-west-1")}, "UnsupportedOperation"},
		{&ec2.CopySnapshotInput{SourceSnapshotId: &s1, SourceRegion: aws.String("us-east-1"), KmsKeyId: aws.String("alias/aws/ebs")}, "InvalidParameterDependency"},
		{&ec2.CopySnapshotInput{SourceSnapshotId: &s1, SourceRegion: aws.String("us-east-1"), Encrypted: aws.Bool(true), KmsKeyId: aws.String("alias/nope")}, "InvalidParameterValue"},
		{&ec2.CopySnapshotInput{SourceSnapshotId: same.SnapshotId, SourceRegion: aws.String("us-east-1")}, "IncorrectState"},
		{&ec2.CopySnapshotInput{SourceSnapshotId: aws.String("snap-0123456789abcdef0"), SourceRegion: aws.String("us-east-1")}, "InvalidSnapshot.NotFound"},
		{&ec2.CopySnapshotInput{SourceSnapshotId: &s1, SourceRegion: aws.String("us-east-1"), DryRun: aws.Bool(true)}, "DryRunOperation"},
	} {
		_, err := e.c.CopySnapshot(ctx, c.in)
		wantAPIError(t, err, c.code)
	}
}

func TestCreateSnapshotsWithSDK(t *testing.T) {
	e := newSnapEnv(t)
	ctx := tctx(t)
	in := e.running(t)
	var vols []string
	for i, dev := range []string{"/dev/sdf", "/dev/sdg", "/dev/sdh"} {
		id := e.create(t, &ec2.CreateVolumeInput{Size: aws.Int32(int32(i + 1)),
			TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeVolume, Tags: []types.Tag{{Key: aws.String("disk"), Value: aws.String(dev)}}}}})
		if _, err := e.c.AttachVolume(ctx, &ec2.AttachVolumeInput{VolumeId: &id, InstanceId: in.InstanceId, Device: aws.String(dev)}); err != nil {
			t.Fatal(err)
		}
		if i < 2 { // the third is still attaching
			e.agent(t, id, func(v *volume.Volume) { v.Attachment.State = volume.Attached })
		}
		vols = append(vols, id)
	}
	out, err := e.c.CreateSnapshots(ctx, &ec2.CreateSnapshotsInput{InstanceSpecification: &types.InstanceSpecification{InstanceId: in.InstanceId,
		ExcludeBootVolume: aws.Bool(false)}, Description: aws.String("all of it"), CopyTagsFromSource: types.CopyTagsFromSourceVolume,
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeSnapshot, Tags: []types.Tag{{Key: aws.String("set"), Value: aws.String("1")}}}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Snapshots) != 2 {
		t.Fatalf("CreateSnapshots made %d snapshots, want the 2 attached volumes'", len(out.Snapshots))
	}
	group := ""
	for i, s := range out.Snapshots {
		rec := e.record(t, *s.SnapshotId)
		if aws.ToString(s.VolumeId) != vols[i] || s.State != types.SnapshotStatePending || aws.ToString(s.Description) != "all of it" ||
			len(s.Tags) != 2 || rec.Group == "" || rec.InstanceID != *in.InstanceId || group != "" && rec.Group != group {
			t.Fatalf("snapshot %d: %+v (record %+v)", i, s, rec)
		}
		group = rec.Group
	}
	out, err = e.c.CreateSnapshots(ctx, &ec2.CreateSnapshotsInput{InstanceSpecification: &types.InstanceSpecification{InstanceId: in.InstanceId,
		ExcludeDataVolumeIds: []string{vols[0]}}})
	if err != nil || len(out.Snapshots) != 1 || aws.ToString(out.Snapshots[0].VolumeId) != vols[1] || len(out.Snapshots[0].Tags) != 0 {
		t.Fatalf("CreateSnapshots excluding %s: %+v %v", vols[0], out, err)
	}
	_, err = e.c.CreateSnapshots(ctx, &ec2.CreateSnapshotsInput{InstanceSpecification: &types.InstanceSpecification{InstanceId: in.InstanceId,
		ExcludeDataVolumeIds: []string{vols[0], vols[1]}}})
	wantAPIError(t, err, "InvalidParameterValue")
	_, err = e.c.CreateSnapshots(ctx, &ec2.CreateSnapshotsInput{InstanceSpecification: &types.InstanceSpecification{InstanceId: aws.String("i-0123456789abcdef0")}})
	wantAPIError(t, err, "InvalidInstanceID.NotFound")
	_, err = e.c.CreateSnapshots(ctx, &ec2.CreateSnapshotsInput{InstanceSpecification: &types.InstanceSpecification{InstanceId: in.InstanceId}, DryRun: aws.Bool(true)})
	wantAPIError(t, err, "DryRunOperation")
}

func TestSnapshotAttributesWithSDK(t *testing.T) {
	e := newSnapEnv(t)
	ctx := tctx(t)
	id := e.snapshot(t, e.create(t, &ec2.CreateVolumeInput{Size: aws.Int32(1)}))
	perms := func() []types.CreateVolumePermission {
		out, err := e.c.DescribeSnapshotAttribute(ctx, &ec2.DescribeSnapshotAttributeInput{SnapshotId: &id, Attribute: types.SnapshotAttributeNameCreateVolumePermission})
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToString(out.SnapshotId) != id {
			t.Fatalf("attribute of %v", out.SnapshotId)
		}
		return out.CreateVolumePermissions
	}
	if p := perms(); len(p) != 0 {
		t.Fatalf("a new snapshot's permissions: %+v", p)
	}
	_, err := e.c.ModifySnapshotAttribute(ctx, &ec2.ModifySnapshotAttributeInput{SnapshotId: &id, CreateVolumePermission: &types.CreateVolumePermissionModifications{
		Add: []types.CreateVolumePermission{{UserId: aws.String("111122223333")}, {Group: types.PermissionGroupAll}}}})
	if err != nil {
		t.Fatal(err)
	}
	if p := perms(); len(p) != 2 || aws.ToString(p[0].UserId) != "111122223333" || p[1].Group != types.PermissionGroupAll {
		t.Fatalf("after adding: %+v", p)
	}
	_, err = e.c.ModifySnapshotAttribute(ctx, &ec2.ModifySnapshotAttributeInput{SnapshotId: &id, Attribute: types.SnapshotAttributeNameCreateVolumePermission,
		OperationType: types.OperationTypeRemove, GroupNames: []string{"all"}})
	if err != nil {
		t.Fatal(err)
	}
	if p := perms(); len(p) != 1 {
		t.Fatalf("after removing the group: %+v", p)
	}
	if _, err := e.c.ResetSnapshotAttribute(ctx, &ec2.ResetSnapshotAttributeInput{SnapshotId: &id, Attribute: types.SnapshotAttributeNameCreateVolumePermission}); err != nil {
		t.Fatal(err)
	}
	if p := perms(); len(p) != 0 {
		t.Fatalf("after the reset: %+v", p)
	}
	_, err = e.c.ModifySnapshotAttribute(ctx, &ec2.ModifySnapshotAttributeInput{SnapshotId: &id, CreateVolumePermission: &types.CreateVolumePermissionModifications{
		Add: []types.CreateVolumePermission{{UserId: aws.String("12")}}}})
	wantAPIError(t, err, "InvalidParameterValue")
	// Encrypted under the AWS managed key: not shared at all.
	enc := e.snapshot(t, e.create(t, &ec2.CreateVolumeInput{Size: aws.Int32(1), Encrypted: aws.Bool(true)}))
	_, err = e.c.ModifySnapshotAttribute(ctx, &ec2.ModifySnapshotAttributeInput{SnapshotId: &enc, CreateVolumePermission: &types.CreateVolumePermissionModifications{
		Add: []types.CreateVolumePermission{{UserId: aws.String("111122223333")}}}})
	wantAPIError(t, err, "OperationNotPermitted")
	_, err = e.c.DescribeSnapshotAttribute(ctx, &ec2.DescribeSnapshotAttributeInput{SnapshotId: &id, Attribute: "kernel"})
	wantAPIError(t, err, "InvalidParameterValue")
}

func TestDescribeSnapshotsPages(t *testing.T) {
	e := newSnapEnv(t)
	ctx := tctx(t)
	vol := e.create(t, &ec2.CreateVolumeInput{Size: aws.Int32(1)})
	for range 7 {
		e.snapshot(t, vol)
	}
	var all []string
	var token *string
	for pages := 0; ; pages++ {
		out, err := e.c.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{MaxResults: aws.Int32(5), NextToken: token})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range out.Snapshots {
			all = append(all, *s.SnapshotId)
		}
		if token = out.NextToken; token == nil {
			if pages != 1 {
				t.Fatalf("%d pages", pages+1)
			}
			break
		}
	}
	if len(all) != 7 {
		t.Fatalf("pages held %d snapshots", len(all))
	}
	_, err := e.c.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{MaxResults: aws.Int32(5), SnapshotIds: all[:1]})
	wantAPIError(t, err, "InvalidParameterCombination")
}
