package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"nubo/internal/nubotest"
)

// startWithImages runs a server sharing the suite's image cache and returns
// the ID of debian-12-minimal. Tests that run instances need root and runc.
func startWithImages(t *testing.T, extra ...string) (*nubotest.Server, *ec2.Client, string) {
	t.Helper()
	return startWithImagesIn(t, t.TempDir(), extra...)
}

// startWithImagesIn is startWithImages with a data dir of the caller's (one
// holding an accounts file, say) and extra server flags.
func startWithImagesIn(t *testing.T, dir string, extra ...string) (*nubotest.Server, *ec2.Client, string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("instances need root")
	}
	if _, err := exec.LookPath("runc"); err != nil {
		t.Skip("instances need runc (make install)")
	}
	images, err := nubotest.ImageCache(context.Background(), "debian-12-minimal")
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"--image-dir", images, "--terminated-ttl", "2s", "--host-vcpus", "64", "--host-memory-mib", "65536"}, extra...)
	srv, c := startIn(t, dir, args...)
	out, err := c.DescribeImages(ctx(t), &ec2.DescribeImagesInput{Filters: []types.Filter{{Name: aws.String("name"), Values: []string{"debian-12-minimal"}}}})
	if err != nil || len(out.Images) != 1 {
		t.Fatalf("debian-12-minimal not registered: %v %+v", err, out)
	}
	return srv, c, aws.ToString(out.Images[0].ImageId)
}

// inside runs a shell command in an instance's namespaces, as root inside.
func inside(t *testing.T, srv *nubotest.Server, id, script string) string {
	t.Helper()
	pid, err := srv.InstancePID(id)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("nsenter", "-t", pid, "-a", "/bin/sh", "-c", script).CombinedOutput()
	if err != nil {
		t.Fatalf("in %s: %s: %v: %s", id, script, err, out)
	}
	return strings.TrimSpace(string(out))
}

// restart stops the instance (a normal stop) and starts it again.
func restart(t *testing.T, c *ec2.Client, id string) {
	t.Helper()
	if _, err := c.StopInstances(ctx(t), &ec2.StopInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Fatal(err)
	}
	waitState(t, c, "stopped", id)
	if _, err := c.StartInstances(ctx(t), &ec2.StartInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Fatal(err)
	}
	waitState(t, c, "running", id)
}

func waitState(t *testing.T, c *ec2.Client, state string, ids ...string) {
	t.Helper()
	in := &ec2.DescribeInstancesInput{InstanceIds: ids}
	var err error
	switch state {
	case "running":
		err = ec2.NewInstanceRunningWaiter(c, func(o *ec2.InstanceRunningWaiterOptions) { o.MinDelay, o.MaxDelay = 100*time.Millisecond, time.Second }).Wait(ctx(t), in, time.Minute)
	case "stopped":
		err = ec2.NewInstanceStoppedWaiter(c, func(o *ec2.InstanceStoppedWaiterOptions) { o.MinDelay, o.MaxDelay = 100*time.Millisecond, time.Second }).Wait(ctx(t), in, time.Minute)
	case "terminated":
		err = ec2.NewInstanceTerminatedWaiter(c, func(o *ec2.InstanceTerminatedWaiterOptions) {
			o.MinDelay, o.MaxDelay = 100*time.Millisecond, time.Second
		}).Wait(ctx(t), in, time.Minute)
	}
	if err != nil {
		t.Fatalf("waiting for %v to be %s: %v", ids, state, err)
	}
}

func TestInstancesRunIsolated(t *testing.T) {
	srv, c, image := startWithImages(t)
	out, err := c.RunInstances(ctx(t), &ec2.RunInstancesInput{ImageId: aws.String(image), InstanceType: types.InstanceTypeT3Micro,
		MinCount: aws.Int32(3), MaxCount: aws.Int32(3)})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, in := range out.Instances {
		if in.State.Name != types.InstanceStateNamePending {
			t.Fatalf("launched instance is %s, want pending", in.State.Name)
		}
		ids = append(ids, aws.ToString(in.InstanceId))
	}
	waitState(t, c, "running", ids...)
	hosts := map[string]bool{}
	for _, id := range ids {
		hosts[inside(t, srv, id, "hostname")] = true
		if init := inside(t, srv, id, "cat /proc/1/cmdline | tr '\\0' ' '"); !strings.Contains(init, "nubo-init") {
			t.Errorf("%s: PID 1 is %q", id, init)
		}
		if n := inside(t, srv, id, "nproc"); n != "2" {
			t.Errorf("%s: nproc %s, want 2 (t3.micro)", id, n)
		}
		if m := inside(t, srv, id, "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max"); m != "1073741824" {
			t.Errorf("%s: memory limit %s, want 1 GiB", id, m)
		}
		if u := inside(t, srv, id, "id -u"); u != "0" {
			t.Errorf("%s: uid inside %s", id, u)
		}
	}
	if len(hosts) != 3 {
		t.Errorf("hostnames not distinct: %v", hosts)
	}
	if _, err := c.TerminateInstances(ctx(t), &ec2.TerminateInstancesInput{InstanceIds: ids}); err != nil {
		t.Fatal(err)
	}
	waitState(t, c, "terminated", ids...)
}

func TestInstanceStopStartKeepsDisk(t *testing.T) {
	srv, c, image := startWithImages(t)
	out, err := c.RunInstances(ctx(t), &ec2.RunInstancesInput{ImageId: aws.String(image), InstanceType: types.InstanceTypeT3Nano,
		MinCount: aws.Int32(1), MaxCount: aws.Int32(1)})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(out.Instances[0].InstanceId)
	vol := aws.ToString(out.Instances[0].BlockDeviceMappings[0].Ebs.VolumeId)
	waitState(t, c, "running", id)
	inside(t, srv, id, "echo kept > /root/marker && sync")

	stop, err := c.StopInstances(ctx(t), &ec2.StopInstancesInput{InstanceIds: []string{id}})
	if err != nil || stop.StoppingInstances[0].CurrentState.Name != types.InstanceStateNameStopping {
		t.Fatalf("stop: %v %+v", err, stop)
	}
	waitState(t, c, "stopped", id)
	if _, err := c.StartInstances(ctx(t), &ec2.StartInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Fatal(err)
	}
	waitState(t, c, "running", id)
	if got := inside(t, srv, id, "cat /root/marker"); got != "kept" {
		t.Fatalf("file after stop/start: %q", got)
	}

	// Reboot: a new PID 1 (a new boot), the same disk, still running.
	before := mustPID(t, srv, id)
	if _, err := c.RebootInstances(ctx(t), &ec2.RebootInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if pid, err := srv.InstancePID(id); err == nil && pid != before {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("instance not rebooted after 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	waitState(t, c, "running", id)
	if got := inside(t, srv, id, "cat /root/marker"); got != "kept" {
		t.Fatalf("file after reboot: %q", got)
	}

	// Termination protection.
	if _, err := c.ModifyInstanceAttribute(ctx(t), &ec2.ModifyInstanceAttributeInput{InstanceId: aws.String(id),
		DisableApiTermination: &types.AttributeBooleanValue{Value: aws.Bool(true)}}); err != nil {
		t.Fatal(err)
	}
	_, err = c.TerminateInstances(ctx(t), &ec2.TerminateInstancesInput{InstanceIds: []string{id}})
	wantAPIError(t, err, "OperationNotPermitted", 400)
	if _, err := c.ModifyInstanceAttribute(ctx(t), &ec2.ModifyInstanceAttributeInput{InstanceId: aws.String(id),
		DisableApiTermination: &types.AttributeBooleanValue{Value: aws.Bool(false)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.TerminateInstances(ctx(t), &ec2.TerminateInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Fatal(err)
	}
	waitState(t, c, "terminated", id)
	if _, err := os.Stat(filepath.Join(srv.DataDir, "volumes", vol)); !os.IsNotExist(err) {
		t.Fatalf("root volume %s still on disk after termination: %v", vol, err)
	}
}

func TestInstancePowerOffInside(t *testing.T) {
	srv, c, image := startWithImages(t)
	out, err := c.RunInstances(ctx(t), &ec2.RunInstancesInput{ImageId: aws.String(image), InstanceType: types.InstanceTypeT3Nano,
		MinCount: aws.Int32(2), MaxCount: aws.Int32(2), InstanceInitiatedShutdownBehavior: types.ShutdownBehaviorStop})
	if err != nil {
		t.Fatal(err)
	}
	stopper, terminator := aws.ToString(out.Instances[0].InstanceId), aws.ToString(out.Instances[1].InstanceId)
	if _, err := c.ModifyInstanceAttribute(ctx(t), &ec2.ModifyInstanceAttributeInput{InstanceId: aws.String(terminator),
		InstanceInitiatedShutdownBehavior: &types.AttributeValue{Value: aws.String("terminate")}}); err != nil {
		t.Fatal(err)
	}
	waitState(t, c, "running", stopper, terminator)
	// The shell running the command is itself killed by the shutdown.
	for id, cmd := range map[string]string{stopper: "poweroff", terminator: "shutdown -h now"} {
		_ = exec.Command("nsenter", "-t", mustPID(t, srv, id), "-a", "/bin/sh", "-c", cmd).Run()
	}
	waitState(t, c, "stopped", stopper)
	waitState(t, c, "terminated", terminator)
	d, err := c.DescribeInstances(ctx(t), &ec2.DescribeInstancesInput{InstanceIds: []string{stopper}})
	if err != nil {
		t.Fatal(err)
	}
	if r := d.Reservations[0].Instances[0].StateReason; r == nil || aws.ToString(r.Code) != "Client.InstanceInitiatedShutdown" {
		t.Fatalf("state reason %+v", r)
	}
}

// TestInstancesSurviveDaemonKill: SIGKILL nubo, instances keep running; one
// whose processes die while nubo is down is reported stopped with a reason.
func TestInstancesSurviveDaemonKill(t *testing.T) {
	srv, c, image := startWithImages(t)
	out, err := c.RunInstances(ctx(t), &ec2.RunInstancesInput{ImageId: aws.String(image), InstanceType: types.InstanceTypeT3Nano,
		MinCount: aws.Int32(2), MaxCount: aws.Int32(2)})
	if err != nil {
		t.Fatal(err)
	}
	a, b := aws.ToString(out.Instances[0].InstanceId), aws.ToString(out.Instances[1].InstanceId)
	waitState(t, c, "running", a, b)
	pidA, _ := srv.InstancePID(a)
	srv.Kill()
	if err := exec.Command("kill", "-KILL", mustPID(t, srv, b)).Run(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Restart(ctx(t)); err != nil {
		t.Fatal(err)
	}
	waitState(t, c, "stopped", b)
	d, err := c.DescribeInstances(ctx(t), &ec2.DescribeInstancesInput{InstanceIds: []string{a, b}})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range d.Reservations {
		for _, in := range r.Instances {
			switch aws.ToString(in.InstanceId) {
			case a:
				if in.State.Name != types.InstanceStateNameRunning {
					t.Errorf("%s is %s after the daemon restart", a, in.State.Name)
				}
			case b:
				if in.StateReason == nil || aws.ToString(in.StateReason.Code) == "" {
					t.Errorf("%s stopped without a reason", b)
				}
			}
		}
	}
	if pid, _ := srv.InstancePID(a); pid != pidA {
		t.Errorf("instance %s was restarted (pid %s → %s)", a, pidA, pid)
	}

}

func mustPID(t *testing.T, srv *nubotest.Server, id string) string {
	t.Helper()
	pid, err := srv.InstancePID(id)
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

func TestRunInstancesIdempotentAndCapacity(t *testing.T) {
	_, c, image := startWithImages(t)
	in := &ec2.RunInstancesInput{ImageId: aws.String(image), InstanceType: types.InstanceTypeT3Nano,
		MinCount: aws.Int32(1), MaxCount: aws.Int32(1), ClientToken: aws.String("token-1")}
	first, err := c.RunInstances(ctx(t), in)
	if err != nil {
		t.Fatal(err)
	}
	again, err := c.RunInstances(ctx(t), in)
	if err != nil || aws.ToString(again.Instances[0].InstanceId) != aws.ToString(first.Instances[0].InstanceId) {
		t.Fatalf("same token launched again: %v", err)
	}
	in.InstanceType = types.InstanceTypeT3Micro
	_, err = c.RunInstances(ctx(t), in)
	wantAPIError(t, err, "IdempotentParameterMismatch", 400)

	// The test server offers 64 vCPUs: m5.24xlarge (96) never fits, and a
	// failed launch leaves nothing behind.
	_, err = c.RunInstances(ctx(t), &ec2.RunInstancesInput{ImageId: aws.String(image), InstanceType: types.InstanceTypeM524xlarge,
		MinCount: aws.Int32(1), MaxCount: aws.Int32(1)})
	wantAPIError(t, err, "InsufficientInstanceCapacity", 400)
	d, _ := c.DescribeInstances(ctx(t), &ec2.DescribeInstancesInput{})
	n := 0
	for _, r := range d.Reservations {
		n += len(r.Instances)
	}
	if n != 1 {
		t.Fatalf("%d instances after a refused launch, want 1", n)
	}
	_, err = c.RunInstances(ctx(t), &ec2.RunInstancesInput{ImageId: aws.String("ami-0123456789abcdef0"), InstanceType: types.InstanceTypeT3Nano,
		MinCount: aws.Int32(1), MaxCount: aws.Int32(1)})
	wantAPIError(t, err, "InvalidAMIID.NotFound", 400)
	_, err = c.RunInstances(ctx(t), &ec2.RunInstancesInput{ImageId: aws.String(image), InstanceType: types.InstanceTypeT3Nano,
		MinCount: aws.Int32(1), MaxCount: aws.Int32(1), KeyName: aws.String("nope")})
	wantAPIError(t, err, "InvalidKeyPair.NotFound", 400)
	_, err = c.RunInstances(ctx(t), &ec2.RunInstancesInput{ImageId: aws.String(image), InstanceType: types.InstanceTypeT3Nano,
		MinCount: aws.Int32(1), MaxCount: aws.Int32(1), DryRun: aws.Bool(true)})
	wantAPIError(t, err, "DryRunOperation", 412)
	_, _ = c.TerminateInstances(ctx(t), &ec2.TerminateInstancesInput{InstanceIds: []string{aws.ToString(first.Instances[0].InstanceId)}})
	waitState(t, c, "terminated", aws.ToString(first.Instances[0].InstanceId))
}

// TestDNSAfterRestart: the VPC's resolver runs in nubo; a restarted nubo
// brings it back for instances that kept running, though nothing changed.
func TestDNSAfterRestart(t *testing.T) {
	srv, c, image := startWithImages(t)
	out, err := c.RunInstances(ctx(t), &ec2.RunInstancesInput{ImageId: aws.String(image), InstanceType: types.InstanceTypeT3Nano,
		MinCount: aws.Int32(1), MaxCount: aws.Int32(1)})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(out.Instances[0].InstanceId)
	waitState(t, c, "running", id)
	in := describeOne(t, c, id)
	resolve := "getent hosts " + aws.ToString(in.PrivateDnsName) + " | awk '{print $1}'"
	if got := inside(t, srv, id, resolve); got != aws.ToString(in.PrivateIpAddress) {
		t.Fatalf("before the restart, %s resolves to %q", aws.ToString(in.PrivateDnsName), got)
	}
	srv.Kill()
	if err := srv.Restart(ctx(t)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		got := inside(t, srv, id, resolve)
		if got == aws.ToString(in.PrivateIpAddress) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the restart, %s resolves to %q", aws.ToString(in.PrivateDnsName), got)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
