package main

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"golang.org/x/crypto/ssh"
)

// snapshotReps is how many times each snapshot figure is measured.
const snapshotReps = 3

// benchSnapshots measures EBS snapshots through a real `nubo serve`, with a
// 1 GiB volume attached to a running instance (debian-12-minimal) and
// filled with random data from inside it: a full snapshot, then one after
// 10 MiB changed (the incremental case), each timed from CreateSnapshot to
// completed, with the bytes the host's snapshot store grew by and the
// longest stall a process in the instance saw meanwhile (the freeze);
// then a volume from the last snapshot, timed to available (the restore
// is eager) and to its first read inside the instance. Encrypted and not.
func benchSnapshots(ctx context.Context) error {
	if os.Geteuid() != 0 {
		fmt.Println("\nsnapshots: skipped (needs root)")
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
	store := filepath.Join(srv.DataDir, "ebs", "snapshots")
	fmt.Printf("\nEBS snapshots: 1 GiB of random data, volume attached to a running instance (t3.large), median of %d\n", snapshotReps)
	fmt.Printf("  %-12s %-30s %-30s %-20s %s\n", "", "full snapshot", "after 10 MiB changed", "volume from snapshot", "")
	fmt.Printf("  %-12s %9s %10s %9s %9s %10s %9s %10s %12s %s\n", "volume", "time", "stored", "freeze", "time", "stored", "freeze", "available", "first read", "restored")
	for i, encrypted := range []bool{false, true} {
		r, err := measureSnapshots(ctx, c, sh, zone, store, encrypted, fmt.Sprintf("/dev/sd%c", 'f'+2*i))
		if err != nil {
			return fmt.Errorf("encrypted=%v: %w", encrypted, err)
		}
		name := "unencrypted"
		if encrypted {
			name = "encrypted"
		}
		fmt.Printf("  %-12s %9s %6.0f MiB %9s %9s %6.1f MiB %9s %10s %12s %s\n", name,
			med(r.full), medBytes(r.fullBytes), med(r.fullFreeze), med(r.incr), medBytes(r.incrBytes), med(r.incrFreeze),
			med(r.available), med(r.firstRead), r.verdict)
	}
	fmt.Println("  (time: CreateSnapshot to completed; stored: growth of DATA/ebs/snapshots; freeze: the longest stall of a 1 ms loop in the instance;")
	fmt.Println("   available: CreateVolume with SnapshotId to available, the whole restore; first read: then attached and 1 MiB read inside)")
	return nil
}

type snapResult struct {
	full, fullFreeze, incr, incrFreeze, available, firstRead []time.Duration
	fullBytes, incrBytes                                     []int64
	verdict                                                  string
}

func measureSnapshots(ctx context.Context, c *ec2.Client, sh *ssh.Client, zone, store string, encrypted bool, device string) (snapResult, error) {
	var r snapResult
	// gp3 at 750 MiB/s (the most 3,000 IOPS allow): the fill is not held back.
	v, err := c.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: &zone, Size: aws.Int32(1), VolumeType: types.VolumeTypeGp3,
		Throughput: aws.Int32(750), Encrypted: aws.Bool(encrypted)})
	if err != nil {
		return r, err
	}
	id := aws.ToString(v.VolumeId)
	defer c.DeleteVolume(context.WithoutCancel(ctx), &ec2.DeleteVolumeInput{VolumeId: v.VolumeId})
	if err := waitVolumeState(ctx, c, id, "available"); err != nil {
		return r, err
	}
	detach, err := attach(ctx, c, sh, id, device)
	if err != nil {
		return r, err
	}
	defer detach()
	if _, err := sshRun(sh, fmt.Sprintf("sudo dd if=/dev/urandom of=%s bs=1M count=1024 oflag=direct status=none", device)); err != nil {
		return r, err
	}
	var snaps []string
	defer func() {
		for _, s := range snaps {
			c.DeleteSnapshot(context.WithoutCancel(ctx), &ec2.DeleteSnapshotInput{SnapshotId: aws.String(s)})
		}
	}()
	// Full snapshots: each one's lineage emptied first (its snapshots
	// deleted, the agent's sweep done), so each stores everything again.
	for range snapshotReps {
		if err := deleteAll(ctx, c, &snaps, store); err != nil {
			return r, err
		}
		took, grew, freeze, s, err := timedSnapshot(ctx, c, sh, id, store)
		if err != nil {
			return r, err
		}
		snaps = append(snaps, s)
		r.full, r.fullBytes, r.fullFreeze = append(r.full, took), append(r.fullBytes, grew), append(r.fullFreeze, freeze)
	}
	for i := range snapshotReps {
		seek := 100 + 200*i // MiB
		if _, err := sshRun(sh, fmt.Sprintf("sudo dd if=/dev/urandom of=%s bs=1M count=10 seek=%d oflag=direct conv=notrunc status=none", device, seek)); err != nil {
			return r, err
		}
		took, grew, freeze, s, err := timedSnapshot(ctx, c, sh, id, store)
		if err != nil {
			return r, err
		}
		snaps = append(snaps, s)
		r.incr, r.incrBytes, r.incrFreeze = append(r.incr, took), append(r.incrBytes, grew), append(r.incrFreeze, freeze)
	}
	want, err := sshRun(sh, fmt.Sprintf("sudo sha256sum %s", device))
	if err != nil {
		return r, err
	}
	last := snaps[len(snaps)-1]
	for i := range snapshotReps {
		start := time.Now()
		nv, err := c.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: &zone, SnapshotId: &last, VolumeType: types.VolumeTypeGp3, Throughput: aws.Int32(750)})
		if err != nil {
			return r, err
		}
		nid := aws.ToString(nv.VolumeId)
		err = waitVolumeState(ctx, c, nid, "available")
		r.available = append(r.available, time.Since(start))
		if err != nil {
			return r, err
		}
		dev := device[:len(device)-1] + string(device[len(device)-1]+1)
		undo, err := attach(ctx, c, sh, nid, dev)
		if err == nil {
			_, err = sshRun(sh, fmt.Sprintf("sudo dd if=%s of=/dev/null bs=1M count=1 iflag=direct status=none", dev))
			r.firstRead = append(r.firstRead, time.Since(start))
		}
		if err == nil && i == 0 {
			got, err2 := sshRun(sh, fmt.Sprintf("sudo sha256sum %s", dev))
			err = err2
			r.verdict = "bit for bit"
			if strings.Fields(got)[0] != strings.Fields(want)[0] {
				r.verdict = "DIFFERS"
			}
		}
		if undo != nil {
			undo()
		}
		c.DeleteVolume(context.WithoutCancel(ctx), &ec2.DeleteVolumeInput{VolumeId: &nid})
		if err != nil {
			return r, err
		}
	}
	return r, nil
}

// attach attaches a volume to the bench instance and waits; the returned
// function detaches it and waits.
func attach(ctx context.Context, c *ec2.Client, sh *ssh.Client, id, device string) (func(), error) {
	inst, err := instanceOf(sh)
	if err != nil {
		return nil, err
	}
	if _, err := c.AttachVolume(ctx, &ec2.AttachVolumeInput{VolumeId: &id, InstanceId: &inst, Device: &device}); err != nil {
		return nil, err
	}
	undo := func() {
		c.DetachVolume(context.WithoutCancel(ctx), &ec2.DetachVolumeInput{VolumeId: &id})
		_ = waitVolumeState(context.WithoutCancel(ctx), c, id, "available")
	}
	if err := waitVolumeState(ctx, c, id, "attached"); err != nil {
		undo()
		return nil, err
	}
	return undo, nil
}

// stallProbe runs in the instance: a loop of 1 ms sleeps that records the
// longest gap between iterations until /tmp/stall-stop exists.
const stallProbe = `
import os, time
os.path.exists("/tmp/stall-stop") and os.remove("/tmp/stall-stop")
open("/tmp/stall-ready", "w").close()
last, worst = time.monotonic(), 0.0
while not os.path.exists("/tmp/stall-stop"):
    time.sleep(0.001)
    now = time.monotonic()
    worst, last = max(worst, now - last), now
open("/tmp/stall", "w").write(str(worst))
`

// timedSnapshot takes a snapshot of volume id and returns how long it took
// to complete, what the store grew by, and the longest stall inside.
func timedSnapshot(ctx context.Context, c *ec2.Client, sh *ssh.Client, id, store string) (time.Duration, int64, time.Duration, string, error) {
	before := dirBytes(store)
	if _, err := sshRun(sh, fmt.Sprintf("rm -f /tmp/stall /tmp/stall-ready; (python3 -c '%s' >/dev/null 2>&1 &); while [ ! -e /tmp/stall-ready ]; do sleep 0.01; done", stallProbe)); err != nil {
		return 0, 0, 0, "", err
	}
	time.Sleep(100 * time.Millisecond)
	out, err := c.CreateSnapshot(ctx, &ec2.CreateSnapshotInput{VolumeId: &id})
	if err != nil {
		return 0, 0, 0, "", err
	}
	s := aws.ToString(out.SnapshotId)
	took, err := waitSnapshot(ctx, c, s)
	if err != nil {
		return 0, 0, 0, s, err
	}
	time.Sleep(100 * time.Millisecond)
	stall, err := sshRun(sh, "touch /tmp/stall-stop; while [ ! -e /tmp/stall ]; do sleep 0.01; done; cat /tmp/stall")
	if err != nil {
		return 0, 0, 0, s, err
	}
	secs, err := strconv.ParseFloat(strings.TrimSpace(stall), 64)
	if err != nil {
		return 0, 0, 0, s, fmt.Errorf("stall probe said %q", stall)
	}
	return took, dirBytes(store) - before, time.Duration(secs * float64(time.Second)), s, nil
}

func waitSnapshot(ctx context.Context, c *ec2.Client, id string) (time.Duration, error) {
	start := time.Now()
	for time.Since(start) < 10*time.Minute {
		d, err := c.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{id}})
		if err != nil {
			return 0, err
		}
		switch s := d.Snapshots[0]; s.State {
		case types.SnapshotStateCompleted:
			return time.Since(start), nil
		case types.SnapshotStateError:
			return 0, fmt.Errorf("snapshot %s failed: %s", id, aws.ToString(s.StateMessage))
		}
		time.Sleep(20 * time.Millisecond)
	}
	return 0, fmt.Errorf("snapshot %s never completed", id)
}

// deleteAll deletes the snapshots taken so far and waits until the host's
// store holds (almost) nothing.
func deleteAll(ctx context.Context, c *ec2.Client, snaps *[]string, store string) error {
	for _, s := range *snaps {
		if _, err := c.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: aws.String(s)}); err != nil {
			return err
		}
	}
	*snaps = nil
	deadline := time.Now().Add(time.Minute)
	for dirBytes(store) > 1<<20 {
		if time.Now().After(deadline) {
			return fmt.Errorf("deleted snapshots still take %d bytes", dirBytes(store))
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

// dirBytes is the size of the files under dir.
func dirBytes(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

func med(ds []time.Duration) string {
	if len(ds) == 0 {
		return "-"
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	m := s[len(s)/2]
	if m < time.Second {
		return m.Round(time.Millisecond).String()
	}
	return m.Round(10 * time.Millisecond).String()
}

func medBytes(bs []int64) float64 {
	s := append([]int64(nil), bs...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return float64(s[len(s)/2]) / (1 << 20)
}
