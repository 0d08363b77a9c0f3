package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"

	"nubo/internal/nubotest"
)

// benchVolumes measures I/O from inside an instance (debian-12-minimal) on
// EBS volumes: gp3 with its defaults (3,000 IOPS, 125 MiB/s, which the host
// enforces) and io2 provisioned at 64,000 IOPS (limits far above what this
// machine does, so the storage itself is measured), each encrypted and not.
// Sequential: dd with 1 MiB direct I/O; random: 4 KiB direct I/O from 4
// threads. Medians of reps runs; the encrypted/unencrypted ratios are of
// figures measured in the same run.
func benchVolumes(ctx context.Context, reps int) error {
	if os.Geteuid() != 0 {
		fmt.Println("\nvolumes: skipped (needs root)")
		return nil
	}
	srv, c, stop, err := benchServer(ctx, "debian-12-minimal")
	if err != nil {
		return err
	}
	defer stop()
	sh, zone, err := volumeBenchInstance(ctx, c)
	if err != nil {
		return err
	}
	defer sh.Close()

	type config struct {
		name      string
		typ       types.VolumeType
		size, iop int32
		encrypted bool
	}
	configs := []config{
		{"gp3", types.VolumeTypeGp3, 4, 0, false},
		{"gp3 encrypted", types.VolumeTypeGp3, 4, 0, true},
		{"io2 64k", types.VolumeTypeIo2, 64, 64000, false},
		{"io2 64k encrypted", types.VolumeTypeIo2, 64, 64000, true},
	}
	fmt.Printf("\nEBS volumes: I/O inside an instance (t3.large, debian-12-minimal), median of %d\n", reps)
	fmt.Printf("  %-18s %12s %12s %12s %12s\n", "volume", "seq write", "seq read", "rand write", "rand read")
	results := map[string]ioResult{}
	for i, cf := range configs {
		in := &ec2.CreateVolumeInput{AvailabilityZone: aws.String(zone), Size: aws.Int32(cf.size), VolumeType: cf.typ, Encrypted: aws.Bool(cf.encrypted)}
		if cf.iop > 0 {
			in.Iops = aws.Int32(cf.iop)
		}
		device := fmt.Sprintf("/dev/sd%c", 'f'+i)
		r, err := measureVolume(ctx, c, sh, srv.DataDir, in, device, reps)
		if err != nil {
			return fmt.Errorf("%s: %w", cf.name, err)
		}
		results[cf.name] = r
		fmt.Printf("  %-18s %7.0f MiB/s %7.0f MiB/s %8.0f IOPS %8.0f IOPS\n", cf.name, r.seqWrite, r.seqRead, r.randWrite, r.randRead)
	}
	g := results["gp3"]
	holds := func(v, limit float64) string {
		if v <= limit*1.1 {
			return "holds"
		}
		return "EXCEEDED"
	}
	fmt.Printf("  gp3 limits (125 MiB/s, 3000 IOPS): seq write %s, seq read %s, rand write %s, rand read %s\n",
		holds(g.seqWrite, 125), holds(g.seqRead, 125), holds(g.randWrite, 3000), holds(g.randRead, 3000))
	for _, pair := range [][2]string{{"gp3 encrypted", "gp3"}, {"io2 64k encrypted", "io2 64k"}} {
		e, u := results[pair[0]], results[pair[1]]
		fmt.Printf("  encrypted/unencrypted, %-8s seq write %.2f  seq read %.2f  rand write %.2f  rand read %.2f  (target seq ≥ 0.50)\n",
			pair[1]+":", e.seqWrite/u.seqWrite, e.seqRead/u.seqRead, e.randWrite/u.randWrite, e.randRead/u.randRead)
	}
	return nil
}

type ioResult struct{ seqWrite, seqRead, randWrite, randRead float64 }

// volumeBenchInstance launches the instance the volumes attach to and
// returns an SSH client logged in as admin, and its zone.
func volumeBenchInstance(ctx context.Context, c *ec2.Client) (*ssh.Client, string, error) {
	kp, err := c.CreateKeyPair(ctx, &ec2.CreateKeyPairInput{KeyName: aws.String("bench"), KeyType: types.KeyTypeEd25519})
	if err != nil {
		return nil, "", err
	}
	signer, err := ssh.ParsePrivateKey([]byte(aws.ToString(kp.KeyMaterial)))
	if err != nil {
		return nil, "", err
	}
	if _, err := nubotest.OpenDefaultGroup(ctx, c, "", 22); err != nil {
		return nil, "", err
	}
	image, err := imageID(ctx, c, "debian-12-minimal")
	if err != nil {
		return nil, "", err
	}
	out, err := c.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: image, InstanceType: types.InstanceTypeT3Large,
		MinCount: aws.Int32(1), MaxCount: aws.Int32(1), KeyName: aws.String("bench")})
	if err != nil {
		return nil, "", err
	}
	id := aws.ToString(out.Instances[0].InstanceId)
	if err := waitRunning(ctx, c, []string{id}, 50*time.Millisecond); err != nil {
		return nil, "", err
	}
	d, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		return nil, "", err
	}
	inst := d.Reservations[0].Instances[0]
	cfg := &ssh.ClientConfig{User: "admin", Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)}, HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 2 * time.Second}
	deadline := time.Now().Add(time.Minute)
	for {
		sh, err := ssh.Dial("tcp", net.JoinHostPort(aws.ToString(inst.PublicIpAddress), "22"), cfg)
		if err == nil {
			return sh, aws.ToString(inst.Placement.AvailabilityZone), nil
		}
		if time.Now().After(deadline) {
			return nil, "", fmt.Errorf("no SSH login to %s: %w", id, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// measureVolume creates, attaches, measures, detaches and deletes one volume.
func measureVolume(ctx context.Context, c *ec2.Client, sh *ssh.Client, dataDir string, in *ec2.CreateVolumeInput, device string, reps int) (ioResult, error) {
	v, err := c.CreateVolume(ctx, in)
	if err != nil {
		return ioResult{}, err
	}
	id := aws.ToString(v.VolumeId)
	defer c.DeleteVolume(context.WithoutCancel(ctx), &ec2.DeleteVolumeInput{VolumeId: v.VolumeId})
	if err := waitVolumeState(ctx, c, id, "available"); err != nil {
		return ioResult{}, err
	}
	inst, err := instanceOf(sh)
	if err != nil {
		return ioResult{}, err
	}
	if _, err := c.AttachVolume(ctx, &ec2.AttachVolumeInput{VolumeId: v.VolumeId, InstanceId: aws.String(inst), Device: aws.String(device)}); err != nil {
		return ioResult{}, err
	}
	defer func() {
		c.DetachVolume(context.WithoutCancel(ctx), &ec2.DetachVolumeInput{VolumeId: v.VolumeId})
		_ = waitVolumeState(context.WithoutCancel(ctx), c, id, "available")
	}()
	if err := waitVolumeState(ctx, c, id, "attached"); err != nil {
		return ioResult{}, err
	}
	// An encrypted volume's file is served through the pool's page cache
	// (fscrypt without inline encryption has no direct I/O): writes are
	// timed to their fsync, and reads start with that cache dropped, so
	// both include the encryption.
	file := filepath.Join(dataDir, "ebs", "pool", id, "volume")
	var runs []ioResult
	for range reps {
		var r ioResult
		if r.seqWrite, err = ddMiBps(sh, fmt.Sprintf("sudo dd if=/dev/zero of=%s bs=1M count=512 oflag=direct conv=fsync", device)); err != nil {
			return ioResult{}, err
		}
		if err := dropCache(file); err != nil {
			return ioResult{}, err
		}
		if r.seqRead, err = ddMiBps(sh, fmt.Sprintf("sudo dd if=%s of=/dev/null bs=1M count=512 iflag=direct", device)); err != nil {
			return ioResult{}, err
		}
		if r.randWrite, err = randIOPS(sh, device, "write"); err != nil {
			return ioResult{}, err
		}
		if err := dropCache(file); err != nil {
			return ioResult{}, err
		}
		if r.randRead, err = randIOPS(sh, device, "read"); err != nil {
			return ioResult{}, err
		}
		runs = append(runs, r)
	}
	med := func(f func(ioResult) float64) float64 {
		vs := make([]float64, len(runs))
		for i, r := range runs {
			vs[i] = f(r)
		}
		sort.Float64s(vs)
		return vs[len(vs)/2]
	}
	return ioResult{
		seqWrite:  med(func(r ioResult) float64 { return r.seqWrite }),
		seqRead:   med(func(r ioResult) float64 { return r.seqRead }),
		randWrite: med(func(r ioResult) float64 { return r.randWrite }),
		randRead:  med(func(r ioResult) float64 { return r.randRead }),
	}, nil
}

// instanceOf asks the instance its ID (IMDS).
func instanceOf(sh *ssh.Client) (string, error) {
	out, err := sshRun(sh, `t=$(curl -s -X PUT -H "X-aws-ec2-metadata-token-ttl-seconds: 60" http://169.254.169.254/latest/api/token); curl -s -H "X-aws-ec2-metadata-token: $t" http://169.254.169.254/latest/meta-data/instance-id`)
	return strings.TrimSpace(out), err
}

func waitVolumeState(ctx context.Context, c *ec2.Client, id, want string) error {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		d, err := c.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{VolumeIds: []string{id}})
		if err != nil {
			return err
		}
		v := d.Volumes[0]
		switch {
		case want == "attached" && len(v.Attachments) == 1 && v.Attachments[0].State == types.VolumeAttachmentStateAttached,
			want != "attached" && string(v.State) == want && len(v.Attachments) == 0:
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("volume %s never %s", id, want)
}

func sshRun(sh *ssh.Client, cmd string) (string, error) {
	s, err := sh.NewSession()
	if err != nil {
		return "", err
	}
	defer s.Close()
	out, err := s.CombinedOutput(cmd)
	if err != nil {
		return "", fmt.Errorf("%q: %w: %s", cmd, err, out)
	}
	return string(out), nil
}

// dd prints e.g. "536870912 bytes (537 MB, 512 MiB) copied, 4.3 s, 125 MB/s".
var ddCopied = regexp.MustCompile(`(\d+) bytes .* copied, ([0-9.e+-]+) s`)

func ddMiBps(sh *ssh.Client, cmd string) (float64, error) {
	out, err := sshRun(sh, cmd)
	if err != nil {
		return 0, err
	}
	m := ddCopied.FindStringSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("dd said %q", out)
	}
	n, _ := strconv.ParseFloat(m[1], 64)
	secs, _ := strconv.ParseFloat(m[2], 64)
	return n / secs / (1 << 20), nil
}

// randIO does 4 KiB O_DIRECT I/O at random offsets of the device's first
// 512 MiB (written by the sequential pass) from 4 threads for 3 s, then
// fsyncs, and prints operations per second.
const randIO = `
import mmap, os, random, sys, threading, time
path, mode = sys.argv[1], sys.argv[2]
fd = os.open(path, (os.O_RDWR if mode == "write" else os.O_RDONLY) | os.O_DIRECT)
blocks, secs, threads = (512 << 20) // 4096, 3.0, 4
counts = [0] * threads
start = time.monotonic()
stop = start + secs
def work(i):
    buf, rnd, n = mmap.mmap(-1, 4096), random.Random(i), 0
    io = os.pwritev if mode == "write" else os.preadv
    while time.monotonic() < stop:
        io(fd, [buf], rnd.randrange(blocks) * 4096)
        n += 1
    counts[i] = n
ts = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
for t in ts: t.start()
for t in ts: t.join()
os.fsync(fd)
print(sum(counts) / (time.monotonic() - start))
`

func randIOPS(sh *ssh.Client, device, mode string) (float64, error) {
	out, err := sshRun(sh, fmt.Sprintf("sudo python3 -c '%s' %s %s", randIO, device, mode))
	if err != nil {
		return 0, err
	}
	return strconv.ParseFloat(strings.TrimSpace(out), 64)
}

// dropCache drops the host's cached pages of a volume's file.
func dropCache(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return err
	}
	return unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
}
