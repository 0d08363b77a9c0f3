package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"golang.org/x/sys/unix"
)

// TestRootVolumeEncryptedOutlivesInstance: an instance launched with an
// encrypted root volume (BlockDeviceMapping Ebs.Encrypted, DeleteOnTermination
// false) writes a file; nothing on the host's disk holds it in plaintext;
// CreateSnapshot of the root volume completes; after termination the
// volume is available, and attached to another instance it mounts as ext4
// whose upper/ holds what the first instance changed.
func TestRootVolumeEncryptedOutlivesInstance(t *testing.T) {
	srv, c, image := startWithImages(t)
	pem := loginKey(t, c)
	out, err := c.RunInstances(ctx(t), &ec2.RunInstancesInput{ImageId: aws.String(image), InstanceType: types.InstanceTypeT3Micro,
		MinCount: aws.Int32(1), MaxCount: aws.Int32(1), KeyName: aws.String("login"),
		BlockDeviceMappings: []types.BlockDeviceMapping{{DeviceName: aws.String("/dev/xvda"),
			Ebs: &types.EbsBlockDevice{Encrypted: aws.Bool(true), DeleteOnTermination: aws.Bool(false), VolumeType: types.VolumeTypeGp3}}}})
	if err != nil {
		t.Fatal(err)
	}
	a := aws.ToString(out.Instances[0].InstanceId)
	waitState(t, c, "running", a)
	in := describeOne(t, c, a)
	root := aws.ToString(in.BlockDeviceMappings[0].Ebs.VolumeId)
	v := volumeOf(t, c, root)
	if !aws.ToBool(v.Encrypted) || aws.ToString(v.KmsKeyId) == "" || v.State != types.VolumeStateInUse || len(v.Attachments) != 1 ||
		aws.ToBool(v.Attachments[0].DeleteOnTermination) || aws.ToString(v.Attachments[0].InstanceId) != a {
		t.Fatalf("root volume: encrypted %v key %q state %s attachments %+v", aws.ToBool(v.Encrypted), aws.ToString(v.KmsKeyId), v.State, v.Attachments)
	}
	ip := aws.ToString(in.PublicIpAddress)
	sshUntil(t, pem, ip, 2*time.Minute)
	half1, half2 := randomHex(t), randomHex(t)
	if got := sshAdmin(t, pem, ip, "printf '%s%s\\n' "+half1+" "+half2+" > /home/admin/marker && sync && echo ok"); got != "ok" {
		t.Fatalf("writing the marker: %q", got)
	}

	// Grown while running: the instance's root filesystem grows with it.
	if _, err := c.ModifyVolume(ctx(t), &ec2.ModifyVolumeInput{VolumeId: aws.String(root), Size: aws.Int32(12)}); err != nil {
		t.Fatal(err)
	}
	waitModified(t, c, root)
	if got := sshAdmin(t, pem, ip, "df -BG --output=size / | tail -1"); strings.TrimSpace(got) != "12G" {
		// Online growth needs CAP_SYS_RESOURCE; without it, the next boot grows it.
		t.Logf("root filesystem after ModifyVolume to 12 GiB, before a stop and start: %s", got)
		restart(t, c, a)
		ip = aws.ToString(describeOne(t, c, a).PublicIpAddress)
		sshUntil(t, pem, ip, 2*time.Minute)
		if got := sshAdmin(t, pem, ip, "df -BG --output=size / | tail -1; cat /home/admin/marker"); got != "12G\n"+half1+half2 {
			t.Errorf("root filesystem after ModifyVolume to 12 GiB and a restart: %q", got)
		}
	}

	// Written and not synced: the snapshot's freeze must flush it from the
	// host's page cache (the filesystem is mounted on the host).
	if got := sshAdmin(t, pem, ip, "echo unsynced > /home/admin/late && echo ok"); got != "ok" {
		t.Fatalf("writing: %q", got)
	}
	snap, err := c.CreateSnapshot(ctx(t), &ec2.CreateSnapshotInput{VolumeId: aws.String(root)})
	if err != nil {
		t.Fatal(err)
	}
	snapID := aws.ToString(snap.SnapshotId)
	if s := waitSnapshot(t, c, snapID); !aws.ToBool(s.Encrypted) {
		t.Errorf("the root volume's snapshot is not encrypted")
	}

	unix.Sync()
	if where := findOnDisk(t, srv.DataDir, []byte(half1+half2)); where != "" {
		t.Errorf("the encrypted root volume's data is in plaintext on the host's disk, in %s", where)
	}

	if _, err := c.TerminateInstances(ctx(t), &ec2.TerminateInstancesInput{InstanceIds: []string{a}}); err != nil {
		t.Fatal(err)
	}
	waitState(t, c, "terminated", a)
	waitVolume(t, c, root, types.VolumeStateAvailable)

	out, err = c.RunInstances(ctx(t), &ec2.RunInstancesInput{ImageId: aws.String(image), InstanceType: types.InstanceTypeT3Micro,
		MinCount: aws.Int32(1), MaxCount: aws.Int32(1), KeyName: aws.String("login")})
	if err != nil {
		t.Fatal(err)
	}
	b := aws.ToString(out.Instances[0].InstanceId)
	waitState(t, c, "running", b)
	ipB := aws.ToString(describeOne(t, c, b).PublicIpAddress)
	attach(t, c, root, b, "/dev/sdf")
	sshUntil(t, pem, ipB, 2*time.Minute)
	got := sshAdmin(t, pem, ipB, "set -e; sudo mkdir -p /old; sudo mount /dev/sdf /old; cat /old/upper/home/admin/marker; sudo umount /old")
	if strings.TrimSpace(got) != half1+half2 {
		t.Fatalf("the old root volume's upper layer holds %q", got)
	}

	// The snapshot, restored, holds the file written just before it.
	restored, err := c.CreateVolume(ctx(t), &ec2.CreateVolumeInput{AvailabilityZone: in.Placement.AvailabilityZone, SnapshotId: aws.String(snapID)})
	if err != nil {
		t.Fatal(err)
	}
	rid := aws.ToString(restored.VolumeId)
	waitVolume(t, c, rid, types.VolumeStateAvailable)
	attach(t, c, rid, b, "/dev/sdg")
	got = sshAdmin(t, pem, ipB, "set -e; sudo mkdir -p /snap; sudo mount /dev/sdg /snap; cat /snap/upper/home/admin/late; sudo umount /snap")
	if got != "unsynced" {
		t.Fatalf("the restored snapshot holds %q", got)
	}
}

func waitModified(t *testing.T, c *ec2.Client, id string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		d, err := c.DescribeVolumesModifications(ctx(t), &ec2.DescribeVolumesModificationsInput{VolumeIds: []string{id}})
		if err != nil {
			t.Fatal(err)
		}
		if len(d.VolumesModifications) == 1 {
			switch m := d.VolumesModifications[0]; m.ModificationState {
			case types.VolumeModificationStateCompleted, types.VolumeModificationStateOptimizing:
				return
			case types.VolumeModificationStateFailed:
				t.Fatalf("modification of %s failed: %s", id, aws.ToString(m.StatusMessage))
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("modification of %s not completed", id)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func waitSnapshot(t *testing.T, c *ec2.Client, id string) types.Snapshot {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		d, err := c.DescribeSnapshots(ctx(t), &ec2.DescribeSnapshotsInput{SnapshotIds: []string{id}})
		if err != nil {
			t.Fatal(err)
		}
		if len(d.Snapshots) == 1 {
			switch s := d.Snapshots[0]; s.State {
			case types.SnapshotStateCompleted:
				return s
			case types.SnapshotStateError:
				t.Fatalf("snapshot %s: error: %s", id, aws.ToString(s.StateMessage))
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("snapshot %s not completed", id)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
