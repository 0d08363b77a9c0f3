package e2e

import (
	"encoding/base64"
	"errors"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"

	"nubo/internal/nubotest"
)

// TestHibernateResumes is the story on debian-12-minimal: an
// instance with hibernation configured and an encrypted root counts in
// memory; hibernated and started again, it counts on from where it was, its
// 256 MiB of data and its PIDs intact, without a new boot.
func TestHibernateResumes(t *testing.T) {
	srv, c, image := startWithImages(t)
	out, err := c.RunInstances(ctx(t), &ec2.RunInstancesInput{ImageId: aws.String(image), InstanceType: types.InstanceTypeT3Micro,
		MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		HibernationOptions: &types.HibernationOptionsRequest{Configured: aws.Bool(true)},
		BlockDeviceMappings: []types.BlockDeviceMapping{{DeviceName: aws.String("/dev/xvda"),
			Ebs: &types.EbsBlockDevice{Encrypted: aws.Bool(true), VolumeSize: aws.Int32(10)}}},
		UserData: aws.String(base64.StdEncoding.EncodeToString([]byte(nubotest.RAMWorkload)))})
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorCode() == "UnsupportedHibernationConfiguration" && strings.Contains(ae.ErrorMessage(), "not available on this nubo") {
		t.Skipf("this host cannot hibernate: %s", ae.ErrorMessage())
	}
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(out.Instances[0].InstanceId)
	waitState(t, c, "running", id)
	if in := describeOne(t, c, id); in.HibernationOptions == nil || !aws.ToBool(in.HibernationOptions.Configured) {
		t.Fatalf("hibernationOptions %+v", in.HibernationOptions)
	}
	sum := waitFile(t, srv, id, "/run/data.sha256")
	pid := waitFile(t, srv, id, "/run/counter.pid")
	boots := strings.Count(console(t, c, id), "nubo-init: ready")

	for counter(t, srv, id) < 20 { // well past a restart's first values
		time.Sleep(100 * time.Millisecond)
	}
	t0 := time.Now()
	before := counter(t, srv, id)
	if _, err := c.StopInstances(ctx(t), &ec2.StopInstancesInput{InstanceIds: []string{id}, Hibernate: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	waitState(t, c, "stopped", id)
	in := describeOne(t, c, id)
	if in.StateReason == nil || aws.ToString(in.StateReason.Code) != "Client.UserInitiatedHibernate" {
		t.Fatalf("state reason %+v, want Client.UserInitiatedHibernate", in.StateReason)
	}
	const asleep = 2 * time.Second
	time.Sleep(asleep)
	if _, err := c.StartInstances(ctx(t), &ec2.StartInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Fatal(err)
	}
	waitState(t, c, "running", id)
	after := counter(t, srv, id)
	// It counts at most 10 a second while it runs; it did not run while
	// stopped, so it went on from where it was, not from 1, and not on.
	most := before + int(10*(time.Since(t0)-asleep).Seconds()) + 5
	if after < before || after > most {
		t.Fatalf("counter %d before the hibernation, %d after it (at most %d had it paused): want it to go on from where it was", before, after, most)
	}
	t.Logf("counter %d before, %d after, %v from the stop to the reading", before, after, time.Since(t0).Round(time.Millisecond))
	if got := inside(t, srv, id, "cat /run/counter.pid"); got != pid {
		t.Fatalf("the counter's PID was %s, is %s", pid, got)
	}
	inside(t, srv, id, "kill -USR1 $(cat /run/data.pid)")
	if got := waitFile(t, srv, id, "/run/data.sha256.now"); got != sum {
		t.Fatalf("256 MiB in a process's memory: hash %s before, %s after", sum, got)
	}
	if n := strings.Count(console(t, c, id), "nubo-init: ready"); n != boots {
		t.Fatalf("%d boots before the hibernation, %d after: it booted again", boots, n)
	}
	// The image is consumed: the next stop and start is a boot.
	restart(t, c, id)
	deadline := time.Now().Add(20 * time.Second)
	for strings.Count(console(t, c, id), "nubo-init: ready") == boots {
		if time.Now().After(deadline) {
			t.Fatal("a normal start after the resume did not boot")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// counter reads the instance's in-memory counter.
func counter(t *testing.T, srv *nubotest.Server, id string) int {
	t.Helper()
	n, err := strconv.Atoi(waitFile(t, srv, id, "/run/counter"))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// waitFile returns the content of a file inside the instance once it has
// one (up to 30 s).
func waitFile(t *testing.T, srv *nubotest.Server, id, path string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		pid, err := srv.InstancePID(id)
		if err == nil {
			out, err := exec.Command("nsenter", "-t", pid, "-a", "cat", path).Output()
			if s := strings.TrimSpace(string(out)); err == nil && s != "" {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no %s inside after 30 s (%v)", id, path, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// console is the instance's console output so far.
func console(t *testing.T, c *ec2.Client, id string) string {
	t.Helper()
	co, err := c.GetConsoleOutput(ctx(t), &ec2.GetConsoleOutputInput{InstanceId: aws.String(id), Latest: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	return decode(aws.ToString(co.Output))
}
