package ec2

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"nubo/internal/instance"
	"nubo/internal/kms"
	"nubo/internal/resource"
	"nubo/internal/store"
	"nubo/internal/volume"
)

// volEnv is the API with volumes over real services, driven by
// aws-sdk-go-v2; agent stands in for the host agent's writes.
type volEnv struct {
	c *ec2.Client
	v *igEnv
}

func newVolEnv(t *testing.T) *volEnv {
	t.Helper()
	c, v := sdkInstances(t)
	st := v.a.Instances.Store
	v.a.Volumes = &volume.Service{Store: st, Host: "h1", Zones: []string{"us-east-1a"}, KMS: &kms.Service{Store: st}}
	return &volEnv{c: c, v: v}
}

func (e *volEnv) scope() resource.Scope {
	return resource.Scope{Account: e.v.account, Region: "us-east-1"}
}

func (e *volEnv) agent(t *testing.T, id string, f func(*volume.Volume)) {
	t.Helper()
	_, err := store.Update(context.Background(), e.v.a.Instances.Store, resource.Key(e.scope(), resource.Volume, id),
		func(v *volume.Volume) error { f(v); return nil })
	if err != nil {
		t.Fatal(err)
	}
}

// create makes a volume and lets the agent make it available.
func (e *volEnv) create(t *testing.T, in *ec2.CreateVolumeInput) string {
	t.Helper()
	if in.AvailabilityZone == nil {
		in.AvailabilityZone = aws.String("us-east-1a")
	}
	out, err := e.c.CreateVolume(tctx(t), in)
	if err != nil {
		t.Fatal(err)
	}
	e.agent(t, *out.VolumeId, func(v *volume.Volume) { v.State = volume.Available })
	return *out.VolumeId
}

// running launches an instance and marks it running, as its agent would.
func (e *volEnv) running(t *testing.T) types.Instance {
	t.Helper()
	in, err := runOne(t, e.c, e.v.image, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = store.Update(context.Background(), e.v.a.Instances.Store, instance.Key(e.v.account, "us-east-1", *in.InstanceId),
		func(x *instance.Instance) error { x.State = instance.Running; return nil })
	if err != nil {
		t.Fatal(err)
	}
	return in
}

func (e *volEnv) describe(t *testing.T, id string) types.Volume {
	t.Helper()
	out, err := e.c.DescribeVolumes(tctx(t), &ec2.DescribeVolumesInput{VolumeIds: []string{id}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Volumes) != 1 {
		t.Fatalf("%d volumes", len(out.Volumes))
	}
	return out.Volumes[0]
}

func (e *volEnv) filter(t *testing.T, name string, values ...string) []string {
	t.Helper()
	out, err := e.c.DescribeVolumes(tctx(t), &ec2.DescribeVolumesInput{Filters: []types.Filter{{Name: aws.String(name), Values: values}}})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, v := range out.Volumes {
		ids = append(ids, *v.VolumeId)
	}
	return ids
}

func TestVolumeLifecycleWithSDK(t *testing.T) {
	e := newVolEnv(t)
	ctx := tctx(t)
	out, err := e.c.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1a"), Size: aws.Int32(10),
		VolumeType: types.VolumeTypeGp3, Throughput: aws.Int32(200),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeVolume, Tags: []types.Tag{{Key: aws.String("Name"), Value: aws.String("data")}}}}})
	if err != nil {
		t.Fatal(err)
	}
	id := *out.VolumeId
	if out.State != types.VolumeStateCreating || aws.ToInt32(out.Size) != 10 || aws.ToString(out.AvailabilityZone) != "us-east-1a" ||
		out.VolumeType != types.VolumeTypeGp3 || aws.ToInt32(out.Iops) != 3000 || aws.ToInt32(out.Throughput) != 200 ||
		aws.ToBool(out.Encrypted) || out.MultiAttachEnabled == nil || *out.MultiAttachEnabled || out.CreateTime == nil ||
		out.SnapshotId == nil || *out.SnapshotId != "" || len(out.Tags) != 1 {
		t.Fatalf("CreateVolume answered %+v", out)
	}
	d := e.describe(t, id)
	if d.State != types.VolumeStateCreating || len(d.Attachments) != 0 || aws.ToInt32(d.Throughput) != 200 || !d.CreateTime.Equal(*out.CreateTime) {
		t.Fatalf("described %+v", d)
	}
	e.agent(t, id, func(v *volume.Volume) { v.State = volume.Available })

	in := e.running(t)
	att, err := e.c.AttachVolume(ctx, &ec2.AttachVolumeInput{VolumeId: &id, InstanceId: in.InstanceId, Device: aws.String("/dev/sdf")})
	if err != nil {
		t.Fatal(err)
	}
	if att.State != types.VolumeAttachmentStateAttaching || aws.ToString(att.Device) != "/dev/sdf" || aws.ToString(att.InstanceId) != *in.InstanceId ||
		aws.ToString(att.VolumeId) != id || att.AttachTime == nil || aws.ToBool(att.DeleteOnTermination) {
		t.Fatalf("AttachVolume answered %+v", att)
	}
	d = e.describe(t, id)
	if d.State != types.VolumeStateInUse || len(d.Attachments) != 1 || d.Attachments[0].State != types.VolumeAttachmentStateAttaching ||
		aws.ToString(d.Attachments[0].InstanceId) != *in.InstanceId {
		t.Fatalf("attached volume %+v", d)
	}
	// The root volume is there too, attached, not ours to detach.
	root := *in.BlockDeviceMappings[0].Ebs.VolumeId
	r := e.describe(t, root)
	if r.State != types.VolumeStateInUse || len(r.Attachments) != 1 || r.Attachments[0].State != types.VolumeAttachmentStateAttached ||
		aws.ToString(r.Attachments[0].Device) != "/dev/xvda" || !aws.ToBool(r.Attachments[0].DeleteOnTermination) {
		t.Fatalf("root volume %+v", r)
	}
	_, err = e.c.DetachVolume(ctx, &ec2.DetachVolumeInput{VolumeId: &root})
	if msg := wantAPIError(t, err, "UnsupportedOperation"); !strings.Contains(msg, "root volume") {
		t.Fatal(msg)
	}

	// DescribeInstances maps both; its filters see the attached volume.
	bdm := describeOne(t, e.c, *in.InstanceId).BlockDeviceMappings
	if len(bdm) != 2 || aws.ToString(bdm[1].DeviceName) != "/dev/sdf" || aws.ToString(bdm[1].Ebs.VolumeId) != id ||
		bdm[1].Ebs.Status != types.AttachmentStatusAttaching || aws.ToString(bdm[0].Ebs.VolumeId) != root {
		t.Fatalf("block device mapping %+v", bdm)
	}
	for name, value := range map[string]string{"block-device-mapping.volume-id": id, "block-device-mapping.device-name": "/dev/sdf",
		"block-device-mapping.status": "attaching"} {
		got, err := e.c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{Filters: []types.Filter{{Name: aws.String(name), Values: []string{value}}}})
		if err != nil || len(got.Reservations) != 1 {
			t.Fatalf("%s=%s: %+v %v", name, value, got, err)
		}
	}
	if got, err := e.c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{Filters: []types.Filter{{Name: aws.String("block-device-mapping.device-name"),
		Values: []string{"/dev/sdg"}}}}); err != nil || len(got.Reservations) != 0 {
		t.Fatalf("sdg matched %+v %v", got, err)
	}

	// DeleteOnTermination of both, through ModifyInstanceAttribute.
	_, err = e.c.ModifyInstanceAttribute(ctx, &ec2.ModifyInstanceAttributeInput{InstanceId: in.InstanceId, BlockDeviceMappings: []types.InstanceBlockDeviceMappingSpecification{
		{DeviceName: aws.String("/dev/sdf"), Ebs: &types.EbsInstanceBlockDeviceSpecification{DeleteOnTermination: aws.Bool(true)}},
		{DeviceName: aws.String("/dev/xvda"), Ebs: &types.EbsInstanceBlockDeviceSpecification{DeleteOnTermination: aws.Bool(false)}}}})
	if err != nil {
		t.Fatal(err)
	}
	attr, err := e.c.DescribeInstanceAttribute(ctx, &ec2.DescribeInstanceAttributeInput{InstanceId: in.InstanceId, Attribute: types.InstanceAttributeNameBlockDeviceMapping})
	if err != nil {
		t.Fatal(err)
	}
	if m := attr.BlockDeviceMappings; len(m) != 2 || aws.ToBool(m[0].Ebs.DeleteOnTermination) || !aws.ToBool(m[1].Ebs.DeleteOnTermination) {
		t.Fatalf("attribute %+v", m)
	}
	if r := e.describe(t, root); aws.ToBool(r.Attachments[0].DeleteOnTermination) {
		t.Fatal("root volume still DeleteOnTermination")
	}
	var rec instance.Instance
	if _, err := e.v.a.Instances.Store.Get(ctx, instance.Key(e.v.account, "us-east-1", *in.InstanceId), &rec); err != nil || rec.DeleteOnTermination {
		t.Fatalf("instance record DeleteOnTermination %v %v", rec.DeleteOnTermination, err)
	}
	_, err = e.c.ModifyInstanceAttribute(ctx, &ec2.ModifyInstanceAttributeInput{InstanceId: in.InstanceId, BlockDeviceMappings: []types.InstanceBlockDeviceMappingSpecification{
		{DeviceName: aws.String("/dev/sdz"), Ebs: &types.EbsInstanceBlockDeviceSpecification{DeleteOnTermination: aws.Bool(true)}}}})
	wantAPIError(t, err, "InvalidInstanceAttributeValue")

	// In use: no delete. Detach, twice (forced the second time).
	_, err = e.c.DeleteVolume(ctx, &ec2.DeleteVolumeInput{VolumeId: &id})
	wantAPIError(t, err, "VolumeInUse")
	_, err = e.c.DetachVolume(ctx, &ec2.DetachVolumeInput{VolumeId: &id, InstanceId: aws.String("i-0123456789abcdef0")})
	wantAPIError(t, err, "InvalidAttachment.NotFound")
	det, err := e.c.DetachVolume(ctx, &ec2.DetachVolumeInput{VolumeId: &id, Device: aws.String("/dev/sdf")})
	if err != nil || det.State != types.VolumeAttachmentStateDetaching || aws.ToString(det.InstanceId) != *in.InstanceId || !aws.ToBool(det.DeleteOnTermination) {
		t.Fatalf("DetachVolume: %+v %v", det, err)
	}
	det, err = e.c.DetachVolume(ctx, &ec2.DetachVolumeInput{VolumeId: &id, Force: aws.Bool(true)})
	if err != nil || det.State != types.VolumeAttachmentStateDetaching {
		t.Fatalf("second DetachVolume: %+v %v", det, err)
	}
	e.agent(t, id, func(v *volume.Volume) { v.Attachment, v.State = nil, volume.Available })
	_, err = e.c.DetachVolume(ctx, &ec2.DetachVolumeInput{VolumeId: &id})
	wantAPIError(t, err, "IncorrectState")
	if _, err := e.c.DeleteVolume(ctx, &ec2.DeleteVolumeInput{VolumeId: &id}); err != nil {
		t.Fatal(err)
	}
	if d := e.describe(t, id); d.State != types.VolumeStateDeleting {
		t.Fatalf("deleted volume is %s", d.State)
	}
	if len(describeOne(t, e.c, *in.InstanceId).BlockDeviceMappings) != 1 {
		t.Fatal("detached volume still mapped")
	}
}

func TestDescribeVolumesFiltersAndPages(t *testing.T) {
	e := newVolEnv(t)
	ctx := tctx(t)
	var ids []string
	for i := 0; i < 6; i++ {
		in := &ec2.CreateVolumeInput{Size: aws.Int32(int32(i + 1))}
		if i%2 == 0 {
			in.VolumeType = types.VolumeTypeIo1
			in.Iops = aws.Int32(100)
			in.Size = aws.Int32(4)
			in.TagSpecifications = []types.TagSpecification{{ResourceType: types.ResourceTypeVolume, Tags: []types.Tag{{Key: aws.String("team"), Value: aws.String("db")}}}}
		}
		ids = append(ids, e.create(t, in))
	}
	if got := e.filter(t, "volume-type", "io1"); len(got) != 3 {
		t.Fatalf("io1: %v", got)
	}
	if got := e.filter(t, "tag:team", "db"); len(got) != 3 {
		t.Fatalf("tag: %v", got)
	}
	if got := e.filter(t, "tag-key", "team"); len(got) != 3 {
		t.Fatalf("tag-key: %v", got)
	}
	if got := e.filter(t, "size", "2", "4"); len(got) != 5 { // three io1 of 4 GiB, the gp2 ones of 2 and 4
		t.Fatalf("size: %v", got)
	}
	if got := e.filter(t, "status", "available"); len(got) != 6 {
		t.Fatalf("status: %v", got)
	}
	if got := e.filter(t, "volume-id", ids[1]); len(got) != 1 || got[0] != ids[1] {
		t.Fatalf("volume-id: %v", got)
	}
	if got := e.filter(t, "encrypted", "true"); len(got) != 0 {
		t.Fatalf("encrypted: %v", got)
	}
	if got := e.filter(t, "availability-zone", "us-east-1a"); len(got) != 6 {
		t.Fatalf("zone: %v", got)
	}
	if got := e.filter(t, "attachment.status", "attached"); len(got) != 0 {
		t.Fatalf("attachment.status: %v", got)
	}
	_, err := e.c.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{Filters: []types.Filter{{Name: aws.String("colour"), Values: []string{"x"}}}})
	wantAPIError(t, err, "InvalidParameterValue")

	// Pages of 5 (EC2's minimum), in ID order, then the rest.
	p := ec2.NewDescribeVolumesPaginator(e.c, &ec2.DescribeVolumesInput{MaxResults: aws.Int32(5)})
	var seen []string
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range out.Volumes {
			seen = append(seen, *v.VolumeId)
		}
	}
	if len(seen) != 6 {
		t.Fatalf("paged %v", seen)
	}
	_, err = e.c.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{VolumeIds: ids[:1], MaxResults: aws.Int32(5)})
	wantAPIError(t, err, "InvalidParameterCombination")
	_, err = e.c.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{VolumeIds: []string{"vol-0123456789abcdef0"}})
	wantAPIError(t, err, "InvalidVolume.NotFound")
	_, err = e.c.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{VolumeIds: []string{"vol-nope"}})
	wantAPIError(t, err, "InvalidVolumeID.Malformed")

	// Status and attributes.
	st, err := e.c.DescribeVolumeStatus(ctx, &ec2.DescribeVolumeStatusInput{VolumeIds: ids[:2]})
	if err != nil || len(st.VolumeStatuses) != 2 {
		t.Fatalf("status %+v %v", st, err)
	}
	s := st.VolumeStatuses[0].VolumeStatus
	if s.Status != types.VolumeStatusInfoStatusOk || len(s.Details) != 2 || s.Details[0].Name != types.VolumeStatusNameIoEnabled ||
		aws.ToString(s.Details[0].Status) != "passed" || aws.ToString(s.Details[1].Status) != "normal" { // io1: provisioned IOPS
		t.Fatalf("status %+v", s)
	}
	va, err := e.c.DescribeVolumeAttribute(ctx, &ec2.DescribeVolumeAttributeInput{VolumeId: &ids[0], Attribute: types.VolumeAttributeNameAutoEnableIO})
	if err != nil || va.AutoEnableIO == nil || aws.ToBool(va.AutoEnableIO.Value) {
		t.Fatalf("autoEnableIO %+v %v", va, err)
	}
	va, err = e.c.DescribeVolumeAttribute(ctx, &ec2.DescribeVolumeAttributeInput{VolumeId: &ids[0], Attribute: types.VolumeAttributeNameProductCodes})
	if err != nil || va.ProductCodes == nil || len(va.ProductCodes) != 0 {
		t.Fatalf("productCodes %+v %v", va, err)
	}
}

func TestModifyVolumeWithSDK(t *testing.T) {
	e := newVolEnv(t)
	ctx := tctx(t)
	id := e.create(t, &ec2.CreateVolumeInput{Size: aws.Int32(100)}) // gp2
	_, err := e.c.DescribeVolumesModifications(ctx, &ec2.DescribeVolumesModificationsInput{VolumeIds: []string{id}})
	wantAPIError(t, err, "InvalidVolumeModification.NotFound")
	_, err = e.c.ModifyVolume(ctx, &ec2.ModifyVolumeInput{VolumeId: &id, Size: aws.Int32(50)})
	if msg := wantAPIError(t, err, "InvalidParameterValue"); !strings.Contains(msg, "New size cannot be smaller than existing size") {
		t.Fatal(msg)
	}
	out, err := e.c.ModifyVolume(ctx, &ec2.ModifyVolumeInput{VolumeId: &id, Size: aws.Int32(200), VolumeType: types.VolumeTypeGp3, Throughput: aws.Int32(300)})
	if err != nil {
		t.Fatal(err)
	}
	m := out.VolumeModification
	if m.ModificationState != types.VolumeModificationStateModifying || aws.ToInt32(m.OriginalSize) != 100 || aws.ToInt32(m.TargetSize) != 200 ||
		m.OriginalVolumeType != types.VolumeTypeGp2 || m.TargetVolumeType != types.VolumeTypeGp3 || aws.ToInt32(m.OriginalIops) != 300 ||
		aws.ToInt32(m.TargetIops) != 3000 || aws.ToInt32(m.TargetThroughput) != 300 || m.OriginalThroughput != nil || m.StartTime == nil {
		t.Fatalf("modification %+v", m)
	}
	// The record has the target at once.
	if d := e.describe(t, id); aws.ToInt32(d.Size) != 200 || d.VolumeType != types.VolumeTypeGp3 || aws.ToInt32(d.Throughput) != 300 {
		t.Fatalf("after modify %+v", d)
	}
	_, err = e.c.ModifyVolume(ctx, &ec2.ModifyVolumeInput{VolumeId: &id, Size: aws.Int32(300)})
	wantAPIError(t, err, "IncorrectModificationState")
	ms, err := e.c.DescribeVolumesModifications(ctx, &ec2.DescribeVolumesModificationsInput{
		Filters: []types.Filter{{Name: aws.String("modification-state"), Values: []string{"modifying"}}}})
	if err != nil || len(ms.VolumesModifications) != 1 || aws.ToString(ms.VolumesModifications[0].VolumeId) != id {
		t.Fatalf("modifications %+v %v", ms, err)
	}
	_, err = e.c.ModifyVolume(ctx, &ec2.ModifyVolumeInput{VolumeId: &id, VolumeType: "gp9"})
	wantAPIError(t, err, "InvalidParameterValue")
	_, err = e.c.ModifyVolume(ctx, &ec2.ModifyVolumeInput{VolumeId: aws.String("vol-0123456789abcdef0"), Size: aws.Int32(300)})
	wantAPIError(t, err, "InvalidVolume.NotFound")
}

func TestVolumeEncryptionWithSDK(t *testing.T) {
	e := newVolEnv(t)
	ctx := tctx(t)
	get, err := e.c.GetEbsEncryptionByDefault(ctx, &ec2.GetEbsEncryptionByDefaultInput{})
	if err != nil || aws.ToBool(get.EbsEncryptionByDefault) {
		t.Fatalf("by default at first: %+v %v", get, err)
	}
	key, err := e.c.GetEbsDefaultKmsKeyId(ctx, &ec2.GetEbsDefaultKmsKeyIdInput{})
	if err != nil || aws.ToString(key.KmsKeyId) != "arn:aws:kms:us-east-1:"+e.v.account+":alias/aws/ebs" {
		t.Fatalf("default key %+v %v", key, err)
	}
	en, err := e.c.EnableEbsEncryptionByDefault(ctx, &ec2.EnableEbsEncryptionByDefaultInput{})
	if err != nil || !aws.ToBool(en.EbsEncryptionByDefault) {
		t.Fatalf("enable %+v %v", en, err)
	}
	out, err := e.c.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1a"), Size: aws.Int32(1), Encrypted: aws.Bool(false)})
	if err != nil {
		t.Fatal(err)
	}
	if !aws.ToBool(out.Encrypted) || !strings.HasPrefix(aws.ToString(out.KmsKeyId), "arn:aws:kms:us-east-1:"+e.v.account+":key/") {
		t.Fatalf("by default: %+v", out)
	}
	// The record holds the wrapped key only; the key service opens it.
	v, err := e.v.a.Volumes.Get(ctx, e.scope(), *out.VolumeId)
	if err != nil {
		t.Fatal(err)
	}
	if plain, err := e.v.a.Volumes.KMS.Decrypt(ctx, e.scope(), v.KmsKeyID, v.WrappedKey); err != nil || len(plain) != 64 {
		t.Fatalf("unwrapping: %d bytes, %v", len(plain), err)
	}
	dis, err := e.c.DisableEbsEncryptionByDefault(ctx, &ec2.DisableEbsEncryptionByDefaultInput{})
	if err != nil || aws.ToBool(dis.EbsEncryptionByDefault) {
		t.Fatalf("disable %+v %v", dis, err)
	}
	out, err = e.c.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1a"), Size: aws.Int32(1), Encrypted: aws.Bool(true),
		KmsKeyId: aws.String("alias/aws/ebs")})
	if err != nil || !aws.ToBool(out.Encrypted) || aws.ToString(out.KmsKeyId) != v.KmsKeyID {
		t.Fatalf("by alias: %+v %v", out, err)
	}
	if got := e.filter(t, "encrypted", "true"); len(got) != 2 {
		t.Fatalf("encrypted filter: %v", got)
	}
	_, err = e.c.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1a"), Size: aws.Int32(1), Encrypted: aws.Bool(true),
		KmsKeyId: aws.String("arn:aws:kms:us-east-1:" + e.v.account + ":key/1234abcd-12ab-34cd-56ef-1234567890ab")})
	if msg := wantAPIError(t, err, "InvalidParameterValue"); !strings.Contains(msg, "KmsKeyId") {
		t.Fatal(msg)
	}
	_, err = e.c.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1a"), Size: aws.Int32(1), KmsKeyId: aws.String("alias/aws/ebs")})
	wantAPIError(t, err, "InvalidParameterDependency")
}

func TestVolumeErrorsWithSDK(t *testing.T) {
	e := newVolEnv(t)
	ctx := tctx(t)
	zone := aws.String("us-east-1a")
	for _, c := range []struct {
		in    ec2.CreateVolumeInput
		code  string
		names string // the parameter the message names
	}{
		{ec2.CreateVolumeInput{Size: aws.Int32(1)}, "MissingParameter", "AvailabilityZone"},
		{ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1q"), Size: aws.Int32(1)}, "InvalidZone.NotFound", "us-east-1q"},
		{ec2.CreateVolumeInput{AvailabilityZone: zone}, "MissingParameter", "Size"},
		{ec2.CreateVolumeInput{AvailabilityZone: zone, Size: aws.Int32(0)}, "InvalidParameterValue", "Size"},
		{ec2.CreateVolumeInput{AvailabilityZone: zone, Size: aws.Int32(20000)}, "InvalidParameterValue", "Size"},
		{ec2.CreateVolumeInput{AvailabilityZone: zone, Size: aws.Int32(10), VolumeType: types.VolumeTypeIo1}, "MissingParameter", "Iops"},
		{ec2.CreateVolumeInput{AvailabilityZone: zone, Size: aws.Int32(10), Iops: aws.Int32(300)}, "InvalidParameterCombination", "Iops"},
		{ec2.CreateVolumeInput{AvailabilityZone: zone, Size: aws.Int32(10), VolumeType: types.VolumeTypeSt1}, "InvalidParameterValue", "Size"},
		{ec2.CreateVolumeInput{AvailabilityZone: zone, SnapshotId: aws.String("snap-0123456789abcdef0")}, "InvalidSnapshot.NotFound", "snap-0123456789abcdef0"},
		{ec2.CreateVolumeInput{AvailabilityZone: zone, Size: aws.Int32(10), VolumeType: types.VolumeTypeIo2, Iops: aws.Int32(1000), MultiAttachEnabled: aws.Bool(true)},
			"UnsupportedOperation", "MultiAttachEnabled"},
		{ec2.CreateVolumeInput{AvailabilityZone: zone, Size: aws.Int32(10), VolumeType: "gp9"}, "InvalidParameterValue", "VolumeType"},
		{ec2.CreateVolumeInput{AvailabilityZone: zone, Size: aws.Int32(1), TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeInstance}}},
			"InvalidParameterValue", "ResourceType"},
	} {
		_, err := e.c.CreateVolume(ctx, &c.in)
		if msg := wantAPIError(t, err, c.code); !strings.Contains(msg, c.names) {
			t.Errorf("%+v: message %q does not name %s", c.in, msg, c.names)
		}
	}
	// A dry run checks and writes nothing; ClientToken makes retries one volume.
	_, err := e.c.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: zone, Size: aws.Int32(1), DryRun: aws.Bool(true)})
	wantAPIError(t, err, "DryRunOperation")
	if got := e.filter(t, "size", "1"); len(got) != 0 {
		t.Fatalf("dry run made %v", got)
	}
	in := &ec2.CreateVolumeInput{AvailabilityZone: zone, Size: aws.Int32(1), ClientToken: aws.String("once")}
	a, err := e.c.CreateVolume(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.c.CreateVolume(ctx, in)
	if err != nil || *b.VolumeId != *a.VolumeId {
		t.Fatalf("retry: %v %v", b.VolumeId, err)
	}
	in.Size = aws.Int32(2)
	_, err = e.c.CreateVolume(ctx, in)
	wantAPIError(t, err, "IdempotentParameterMismatch")

	// Attach errors: still creating, bad device, device in use, other instance's volume in use.
	inst := e.running(t)
	_, err = e.c.AttachVolume(ctx, &ec2.AttachVolumeInput{VolumeId: a.VolumeId, InstanceId: inst.InstanceId, Device: aws.String("/dev/sdf")})
	if msg := wantAPIError(t, err, "IncorrectState"); !strings.Contains(msg, "is not 'available'") {
		t.Fatal(msg)
	}
	e.agent(t, *a.VolumeId, func(v *volume.Volume) { v.State = volume.Available })
	_, err = e.c.AttachVolume(ctx, &ec2.AttachVolumeInput{VolumeId: a.VolumeId, InstanceId: inst.InstanceId, Device: aws.String("/dev/hda")})
	if msg := wantAPIError(t, err, "InvalidParameterValue"); !strings.Contains(msg, "Device") {
		t.Fatal(msg)
	}
	_, err = e.c.AttachVolume(ctx, &ec2.AttachVolumeInput{VolumeId: a.VolumeId, InstanceId: inst.InstanceId, Device: aws.String("/dev/xvda")})
	wantAPIError(t, err, "InvalidParameterValue")
	_, err = e.c.AttachVolume(ctx, &ec2.AttachVolumeInput{VolumeId: a.VolumeId, InstanceId: aws.String("i-0123456789abcdef0"), Device: aws.String("/dev/sdf")})
	wantAPIError(t, err, "InvalidInstanceID.NotFound")
	_, err = e.c.AttachVolume(ctx, &ec2.AttachVolumeInput{VolumeId: a.VolumeId, InstanceId: inst.InstanceId, Device: aws.String("/dev/sdf"), DryRun: aws.Bool(true)})
	wantAPIError(t, err, "DryRunOperation")
	root := *inst.BlockDeviceMappings[0].Ebs.VolumeId
	_, err = e.c.AttachVolume(ctx, &ec2.AttachVolumeInput{VolumeId: &root, InstanceId: inst.InstanceId, Device: aws.String("/dev/sdg")})
	wantAPIError(t, err, "VolumeInUse")
	_, err = e.c.DeleteVolume(ctx, &ec2.DeleteVolumeInput{VolumeId: aws.String("vol-bad")})
	wantAPIError(t, err, "InvalidVolumeID.Malformed")
	_, err = e.c.DeleteVolume(ctx, &ec2.DeleteVolumeInput{VolumeId: a.VolumeId, DryRun: aws.Bool(true)})
	wantAPIError(t, err, "DryRunOperation")
	if d := e.describe(t, *a.VolumeId); d.State != types.VolumeStateAvailable {
		t.Fatalf("dry-run delete left %s", d.State)
	}
}
