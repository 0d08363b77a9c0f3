package e2e

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
)

// TestCreateImageFromInstance: a file written in an instance is in an
// instance launched from CreateImage's AMI, and in one launched from an
// encrypted CopyImage of it; RegisterImage takes the root snapshot and
// refuses a snapshot of a data volume; the snapshot cannot be deleted
// while an AMI uses it, and can once they are deregistered.
func TestCreateImageFromInstance(t *testing.T) {
	_, c, image := startWithImages(t)
	pem := loginKey(t, c)
	out, err := c.RunInstances(ctx(t), &ec2.RunInstancesInput{ImageId: aws.String(image), InstanceType: types.InstanceTypeT3Micro,
		MinCount: aws.Int32(1), MaxCount: aws.Int32(1), KeyName: aws.String("login")})
	if err != nil {
		t.Fatal(err)
	}
	a := aws.ToString(out.Instances[0].InstanceId)
	zone := out.Instances[0].Placement.AvailabilityZone
	waitState(t, c, "running", a)
	ip := aws.ToString(describeOne(t, c, a).PublicIpAddress)
	sshUntil(t, pem, ip, 2*time.Minute)
	if got := sshAdmin(t, pem, ip, "echo baked in > /home/admin/baked && sudo sh -c 'echo etc > /etc/baked' && echo ok"); got != "ok" {
		t.Fatalf("writing: %q", got)
	}
	data, err := c.CreateVolume(ctx(t), &ec2.CreateVolumeInput{AvailabilityZone: zone, Size: aws.Int32(1)})
	if err != nil {
		t.Fatal(err)
	}
	waitVolume(t, c, aws.ToString(data.VolumeId), types.VolumeStateAvailable)
	attach(t, c, aws.ToString(data.VolumeId), a, "/dev/sdf")
	// Left mounted: the image's freeze flushes it.
	if got := sshAdmin(t, pem, ip, "set -e; sudo mkfs.ext4 -q /dev/sdf; sudo mkdir /data; sudo mount /dev/sdf /data; echo data > /tmp/d; sudo cp /tmp/d /data/file; echo ok"); got != "ok" {
		t.Fatalf("data volume: %q", got)
	}

	start := time.Now()
	img, err := c.CreateImage(ctx(t), &ec2.CreateImageInput{InstanceId: aws.String(a), Name: aws.String("baked-1"),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeImage, Tags: []types.Tag{{Key: aws.String("k"), Value: aws.String("v")}}}}})
	if err != nil {
		t.Fatal(err)
	}
	ami := aws.ToString(img.ImageId)
	im := waitImage(t, c, ami)
	t.Logf("CreateImage → available: %v", time.Since(start))
	if len(im.BlockDeviceMappings) != 2 {
		t.Fatalf("mapping: %+v", im.BlockDeviceMappings)
	}
	root, dataMap := im.BlockDeviceMappings[0], im.BlockDeviceMappings[1]
	rootSnap := aws.ToString(root.Ebs.SnapshotId)
	if rootSnap == "" || aws.ToInt32(root.Ebs.VolumeSize) == 0 || root.Ebs.VolumeType != types.VolumeTypeGp3 || aws.ToBool(root.Ebs.Encrypted) ||
		aws.ToString(dataMap.DeviceName) != "/dev/sdf" || aws.ToString(dataMap.Ebs.SnapshotId) == "" {
		t.Errorf("mapping: root %+v data %+v", *root.Ebs, *dataMap.Ebs)
	}

	// The mapping: the data volume left out, the root larger.
	img2, err := c.CreateImage(ctx(t), &ec2.CreateImageInput{InstanceId: aws.String(a), Name: aws.String("baked-2"), NoReboot: aws.Bool(true),
		BlockDeviceMappings: []types.BlockDeviceMapping{{DeviceName: aws.String("/dev/sdf"), NoDevice: aws.String("")},
			{DeviceName: aws.String("/dev/xvda"), Ebs: &types.EbsBlockDevice{VolumeSize: aws.Int32(9), DeleteOnTermination: aws.Bool(false)}}}})
	if err != nil {
		t.Fatal(err)
	}
	if im2 := waitImage(t, c, aws.ToString(img2.ImageId)); len(im2.BlockDeviceMappings) != 1 || aws.ToInt32(im2.BlockDeviceMappings[0].Ebs.VolumeSize) != 9 ||
		aws.ToBool(im2.BlockDeviceMappings[0].Ebs.DeleteOnTermination) {
		t.Errorf("CreateImage with a mapping: %+v", im2.BlockDeviceMappings)
	}

	// RegisterImage: the root snapshot, yes; a data volume's, no.
	reg, err := c.RegisterImage(ctx(t), &ec2.RegisterImageInput{Name: aws.String("registered"), RootDeviceName: aws.String("/dev/xvda"),
		BlockDeviceMappings: []types.BlockDeviceMapping{{DeviceName: aws.String("/dev/xvda"), Ebs: &types.EbsBlockDevice{SnapshotId: aws.String(rootSnap)}}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := waitImage(t, c, aws.ToString(reg.ImageId)); aws.ToString(got.BlockDeviceMappings[0].Ebs.SnapshotId) != rootSnap {
		t.Errorf("registered: %+v", got.BlockDeviceMappings)
	}
	_, err = c.RegisterImage(ctx(t), &ec2.RegisterImageInput{Name: aws.String("not-a-root"), RootDeviceName: aws.String("/dev/xvda"),
		BlockDeviceMappings: []types.BlockDeviceMapping{{DeviceName: aws.String("/dev/xvda"), Ebs: &types.EbsBlockDevice{SnapshotId: dataMap.Ebs.SnapshotId}}}})
	expectCode(t, err, "InvalidParameterValue")

	cp, err := c.CopyImage(ctx(t), &ec2.CopyImageInput{SourceImageId: aws.String(ami), SourceRegion: aws.String(c.Options().Region),
		Name: aws.String("baked-encrypted"), Encrypted: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	copied := waitImage(t, c, aws.ToString(cp.ImageId))
	if !aws.ToBool(copied.BlockDeviceMappings[0].Ebs.Encrypted) || aws.ToString(copied.BlockDeviceMappings[0].Ebs.SnapshotId) == rootSnap {
		t.Errorf("copy: %+v", *copied.BlockDeviceMappings[0].Ebs)
	}

	for _, from := range []string{ami, aws.ToString(cp.ImageId)} {
		// Larger than the image's root: the restored filesystem grows to it.
		out, err := c.RunInstances(ctx(t), &ec2.RunInstancesInput{ImageId: aws.String(from), InstanceType: types.InstanceTypeT3Micro,
			MinCount: aws.Int32(1), MaxCount: aws.Int32(1), KeyName: aws.String("login"),
			BlockDeviceMappings: []types.BlockDeviceMapping{{DeviceName: aws.String("/dev/xvda"), Ebs: &types.EbsBlockDevice{VolumeSize: aws.Int32(10)}}}})
		if err != nil {
			t.Fatal(err)
		}
		b := aws.ToString(out.Instances[0].InstanceId)
		waitState(t, c, "running", b)
		in := describeOne(t, c, b)
		v := volumeOf(t, c, aws.ToString(in.BlockDeviceMappings[0].Ebs.VolumeId))
		if want := from != ami; aws.ToBool(v.Encrypted) != want {
			t.Errorf("root volume of an instance of %s: encrypted %v", from, aws.ToBool(v.Encrypted))
		}
		ipB := aws.ToString(in.PublicIpAddress)
		sshUntil(t, pem, ipB, 2*time.Minute)
		if got := sshAdmin(t, pem, ipB, "cat /home/admin/baked /etc/baked"); got != "baked in\netc" {
			t.Errorf("instance of %s: %q", from, got)
		}
		if got := sshAdmin(t, pem, ipB, "df -BG --output=size / | tail -1"); strings.TrimSpace(got) != "10G" {
			t.Errorf("root filesystem of an instance of %s with a 10 GiB root: %q", from, got)
		}
		if got := sshAdmin(t, pem, ipB, "sudo mount /dev/sdf /data && cat /data/file"); got != "data" {
			t.Errorf("data volume of an instance of %s: %q", from, got)
		}
		if len(in.BlockDeviceMappings) != 2 || aws.ToString(in.BlockDeviceMappings[1].DeviceName) != "/dev/sdf" {
			t.Errorf("instance of %s: mapping %+v", from, in.BlockDeviceMappings)
		}
		if _, err := c.TerminateInstances(ctx(t), &ec2.TerminateInstancesInput{InstanceIds: []string{b}}); err != nil {
			t.Fatal(err)
		}
	}

	_, err = c.DeleteSnapshot(ctx(t), &ec2.DeleteSnapshotInput{SnapshotId: aws.String(rootSnap)})
	expectCode(t, err, "InvalidSnapshot.InUse")
	for _, id := range []string{ami, aws.ToString(reg.ImageId)} {
		if _, err := c.DeregisterImage(ctx(t), &ec2.DeregisterImageInput{ImageId: aws.String(id)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.DeleteSnapshot(ctx(t), &ec2.DeleteSnapshotInput{SnapshotId: aws.String(rootSnap)}); err != nil {
		t.Fatalf("DeleteSnapshot after DeregisterImage: %v", err)
	}
}

func waitImage(t *testing.T, c *ec2.Client, id string) types.Image {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		d, err := c.DescribeImages(ctx(t), &ec2.DescribeImagesInput{ImageIds: []string{id}})
		if err != nil {
			t.Fatal(err)
		}
		if len(d.Images) == 1 {
			switch im := d.Images[0]; im.State {
			case types.ImageStateAvailable:
				return im
			case types.ImageStateFailed:
				t.Fatalf("image %s failed", id)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("image %s not available", id)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func expectCode(t *testing.T, err error, code string) {
	t.Helper()
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != code {
		t.Errorf("got %v, want %s", err, code)
	}
}
