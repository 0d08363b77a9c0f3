package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"golang.org/x/sys/unix"

	"nubo/internal/nubotest"
)

// TestVolumeMovesBetweenInstances is step 6's user story: a 2 GiB encrypted
// gp3 volume attached to instance A is formatted, mounted and written from
// inside A by root (an unprivileged instance: the mount is performed for it
// by the host after checking the device is its own), detached, attached to
// B in the same zone, and read there. Nothing on the host's disk holds the
// data in plaintext; the same check finds the data of an unencrypted volume.
func TestVolumeMovesBetweenInstances(t *testing.T) {
	srv, c, image := startWithImages(t)
	pem := loginKey(t, c)
	out, err := c.RunInstances(ctx(t), &ec2.RunInstancesInput{ImageId: aws.String(image), InstanceType: types.InstanceTypeT3Micro,
		MinCount: aws.Int32(2), MaxCount: aws.Int32(2), KeyName: aws.String("login")})
	if err != nil {
		t.Fatal(err)
	}
	a, b := aws.ToString(out.Instances[0].InstanceId), aws.ToString(out.Instances[1].InstanceId)
	zone := aws.ToString(out.Instances[0].Placement.AvailabilityZone)
	waitState(t, c, "running", a, b)
	ipA, ipB := aws.ToString(describeOne(t, c, a).PublicIpAddress), aws.ToString(describeOne(t, c, b).PublicIpAddress)

	vol, err := c.CreateVolume(ctx(t), &ec2.CreateVolumeInput{AvailabilityZone: aws.String(zone), Size: aws.Int32(2),
		VolumeType: types.VolumeTypeGp3, Encrypted: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(vol.VolumeId)
	if !aws.ToBool(vol.Encrypted) || aws.ToInt32(vol.Iops) != 3000 || aws.ToInt32(vol.Throughput) != 125 || aws.ToString(vol.KmsKeyId) == "" {
		t.Errorf("CreateVolume: encrypted %v iops %d throughput %d key %q", aws.ToBool(vol.Encrypted), aws.ToInt32(vol.Iops), aws.ToInt32(vol.Throughput), aws.ToString(vol.KmsKeyId))
	}
	waitVolume(t, c, id, types.VolumeStateAvailable)

	// Two halves: the whole marker is never on a command line (which the
	// instance's root volume, not encrypted, might log).
	half1, half2 := randomHex(t), randomHex(t)
	marker := half1 + half2
	attach(t, c, id, a, "/dev/sdf")
	sshUntil(t, pem, ipA, 2*time.Minute)
	got := sshAdmin(t, pem, ipA, `set -e
		lsblk -dno SIZE /dev/sdf
		sudo mkfs.ext4 -q /dev/sdf
		sudo mkdir -p /mnt/data
		sudo mount /dev/sdf /mnt/data
		sudo chown admin /mnt/data
		echo hello from A > /mnt/data/file
		printf '%s%s\n' `+half1+` `+half2+` > /mnt/data/marker
		sudo umount /mnt/data
		echo done`)
	if !strings.HasPrefix(got, "2G\n") || !strings.HasSuffix(got, "done") {
		t.Fatalf("inside A:\n%s", got)
	}
	detach(t, c, id)

	attach(t, c, id, b, "/dev/sdg")
	sshUntil(t, pem, ipB, 2*time.Minute)
	got = sshAdmin(t, pem, ipB, "set -e; sudo mkdir -p /data; sudo mount /dev/sdg /data; cat /data/file; touch /data/admin-can-write; sudo umount /data")
	if got != "hello from A" {
		t.Fatalf("inside B: %q", got)
	}
	// Listed in /etc/fstab, it is mounted at boot.
	sshAdmin(t, pem, ipB, "echo '/dev/sdg /data ext4 defaults,nofail 0 2' | sudo tee -a /etc/fstab >/dev/null")
	if _, err := c.RebootInstances(ctx(t), &ec2.RebootInstancesInput{InstanceIds: []string{b}}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // let the reboot begin
	sshUntil(t, pem, ipB, 2*time.Minute)
	if got := sshAdmin(t, pem, ipB, "cat /data/file && sudo umount /data"); got != "hello from A" {
		t.Fatalf("after a reboot with /dev/sdg in /etc/fstab: %q", got)
	}
	// Mounting in place of the instance is only for its own devices.
	if got := sshAdmin(t, pem, ipB, "sudo mount /dev/sdg /mnt 2>&1; sudo umount /mnt; sudo mount -t ext4 /dev/loop0 /mnt 2>&1 || echo refused"); !strings.HasSuffix(got, "refused") {
		t.Errorf("mounting a host device: %q", got)
	}
	detach(t, c, id)

	unix.Sync()
	if where := findOnDisk(t, srv.DataDir, []byte(marker)); where != "" {
		t.Errorf("the encrypted volume's data is in plaintext on the host's disk, in %s", where)
	}

	// The same search finds what an unencrypted volume holds.
	plain, err := c.CreateVolume(ctx(t), &ec2.CreateVolumeInput{AvailabilityZone: aws.String(zone), Size: aws.Int32(1), Encrypted: aws.Bool(false)})
	if err != nil {
		t.Fatal(err)
	}
	pid := aws.ToString(plain.VolumeId)
	waitVolume(t, c, pid, types.VolumeStateAvailable)
	attach(t, c, pid, a, "/dev/sdh")
	half1, half2 = randomHex(t), randomHex(t)
	sshAdmin(t, pem, ipA, "printf '%s%s\n' "+half1+" "+half2+" | sudo dd of=/dev/sdh oflag=direct bs=4096 conv=sync status=none")
	detach(t, c, pid)
	unix.Sync()
	if findOnDisk(t, srv.DataDir, []byte(half1+half2)) == "" {
		t.Error("the search did not find an unencrypted volume's data: it proves nothing")
	}

	for _, v := range []string{id, pid} {
		if _, err := c.DeleteVolume(ctx(t), &ec2.DeleteVolumeInput{VolumeId: aws.String(v)}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		d, err := c.DescribeVolumes(ctx(t), &ec2.DescribeVolumesInput{Filters: []types.Filter{{Name: aws.String("volume-id"), Values: []string{id, pid}}}})
		if err != nil {
			t.Fatal(err)
		}
		if len(d.Volumes) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("volumes not deleted: %+v", d.Volumes)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// loginKey makes key pair "login", opens port 22 of the default group, and
// returns the private key's file.
func loginKey(t *testing.T, c *ec2.Client) string {
	t.Helper()
	if _, err := nubotest.OpenDefaultGroup(ctx(t), c, "", 22); err != nil {
		t.Fatal(err)
	}
	kp, err := c.CreateKeyPair(ctx(t), &ec2.CreateKeyPairInput{KeyName: aws.String("login"), KeyType: types.KeyTypeEd25519})
	if err != nil {
		t.Fatal(err)
	}
	pem := filepath.Join(t.TempDir(), "login.pem")
	if err := os.WriteFile(pem, []byte(aws.ToString(kp.KeyMaterial)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return pem
}

func randomHex(t *testing.T) string {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func volumeOf(t *testing.T, c *ec2.Client, id string) types.Volume {
	t.Helper()
	d, err := c.DescribeVolumes(ctx(t), &ec2.DescribeVolumesInput{VolumeIds: []string{id}})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Volumes) != 1 {
		t.Fatalf("DescribeVolumes %s: %d volumes", id, len(d.Volumes))
	}
	return d.Volumes[0]
}

func waitVolume(t *testing.T, c *ec2.Client, id string, state types.VolumeState) types.Volume {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		v := volumeOf(t, c, id)
		if v.State == state && (state != types.VolumeStateInUse || len(v.Attachments) == 1 && v.Attachments[0].State == types.VolumeAttachmentStateAttached) {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("volume %s is %s (attachments %+v), want %s", id, v.State, v.Attachments, state)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func attach(t *testing.T, c *ec2.Client, vol, inst, device string) {
	t.Helper()
	att, err := c.AttachVolume(ctx(t), &ec2.AttachVolumeInput{VolumeId: aws.String(vol), InstanceId: aws.String(inst), Device: aws.String(device)})
	if err != nil {
		t.Fatal(err)
	}
	if att.State != types.VolumeAttachmentStateAttaching || aws.ToString(att.Device) != device {
		t.Errorf("AttachVolume answered %s %s", att.State, aws.ToString(att.Device))
	}
	waitVolume(t, c, vol, types.VolumeStateInUse)
}

func detach(t *testing.T, c *ec2.Client, vol string) {
	t.Helper()
	if _, err := c.DetachVolume(ctx(t), &ec2.DetachVolumeInput{VolumeId: aws.String(vol)}); err != nil {
		t.Fatal(err)
	}
	waitVolume(t, c, vol, types.VolumeStateAvailable)
}

// findOnDisk searches every file under dir that lives on dir's own
// filesystem (what the host's disk holds: mounted pools and root volumes
// are skipped, they would show plaintext through their mounts) for needle,
// reading only the data of sparse files. It returns the first file holding
// it, or "".
func findOnDisk(t *testing.T, dir string, needle []byte) string {
	t.Helper()
	var top unix.Stat_t
	if err := unix.Stat(dir, &top); err != nil {
		t.Fatal(err)
	}
	var found string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
				return nil
			}
			return err
		}
		var st unix.Stat_t
		if unix.Lstat(path, &st) != nil || st.Dev != top.Dev {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		if ok, err := fileHolds(path, needle); err != nil {
			return err
		} else if ok {
			found = path
			return filepath.SkipAll
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// fileHolds reports whether the data extents of path contain needle.
func fileHolds(path string, needle []byte) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		return false, err
	}
	defer f.Close()
	buf := make([]byte, 4<<20)
	var carry []byte
	off := int64(0)
	for {
		start, err := unix.Seek(int(f.Fd()), off, unix.SEEK_DATA)
		if errors.Is(err, syscall.ENXIO) {
			return false, nil
		} else if err != nil {
			return false, err
		}
		end, err := unix.Seek(int(f.Fd()), start, unix.SEEK_HOLE)
		if err != nil {
			return false, err
		}
		carry = carry[:0]
		for pos := start; pos < end; {
			n, err := f.ReadAt(buf[:min(int64(len(buf)), end-pos)], pos)
			if n > 0 {
				window := append(carry, buf[:n]...)
				if bytes.Contains(window, needle) {
					return true, nil
				}
				carry = append(carry[:0], window[max(0, len(window)-len(needle)):]...)
				pos += int64(n)
			}
			if err == io.EOF {
				break
			} else if err != nil {
				return false, err
			}
		}
		off = end
	}
}

// TestVolumeOnSystemdImage: in debian-12 (systemd, cloud-init) root formats
// and mounts a volume through sudo from an SSH session (a cgroup systemd
// made), and the volume detaches once unmounted.
func TestVolumeOnSystemdImage(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("instances need root")
	}
	images, err := nubotest.ImageCache(context.Background(), "debian-12")
	if err != nil {
		t.Fatal(err)
	}
	_, c := start(t, "--image-dir", images)
	imgs, err := c.DescribeImages(ctx(t), &ec2.DescribeImagesInput{Filters: []types.Filter{{Name: aws.String("name"), Values: []string{"debian-12"}}}})
	if err != nil || len(imgs.Images) != 1 {
		t.Fatalf("debian-12 not registered: %v", err)
	}
	pem := loginKey(t, c)
	out, err := c.RunInstances(ctx(t), &ec2.RunInstancesInput{ImageId: imgs.Images[0].ImageId, InstanceType: types.InstanceTypeT3Micro,
		MinCount: aws.Int32(1), MaxCount: aws.Int32(1), KeyName: aws.String("login")})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(out.Instances[0].InstanceId)
	waitState(t, c, "running", id)
	inst := describeOne(t, c, id)
	vol, err := c.CreateVolume(ctx(t), &ec2.CreateVolumeInput{AvailabilityZone: inst.Placement.AvailabilityZone, Size: aws.Int32(1), Encrypted: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	waitVolume(t, c, aws.ToString(vol.VolumeId), types.VolumeStateAvailable)
	attach(t, c, aws.ToString(vol.VolumeId), id, "/dev/sdf")
	ip := aws.ToString(inst.PublicIpAddress)
	sshUntil(t, pem, ip, 2*time.Minute)
	got := sshAdmin(t, pem, ip, `set -e
		sudo mkfs.ext4 -q /dev/xvdf
		sudo mkdir /data
		sudo mount /dev/xvdf /data
		echo kept | sudo tee /data/f >/dev/null
		cat /data/f
		sudo umount /data`)
	if got != "kept" {
		t.Fatalf("inside: %q", got)
	}
	detach(t, c, aws.ToString(vol.VolumeId))
}
