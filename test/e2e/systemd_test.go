package e2e

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"nubo/internal/nubotest"
)

// TestSystemdImage boots debian-12, systemd as PID 1 the way a stock Debian
// cloud image boots, through the API; poweroff inside stops it.
func TestSystemdImage(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("instances need root")
	}
	if _, err := exec.LookPath("runc"); err != nil {
		t.Skip("instances need runc (make install)")
	}
	images, err := nubotest.ImageCache(context.Background(), "debian-12")
	if err != nil {
		t.Fatal(err)
	}
	srv, c := start(t, "--image-dir", images)
	d, err := c.DescribeImages(ctx(t), &ec2.DescribeImagesInput{Filters: []types.Filter{{Name: aws.String("name"), Values: []string{"debian-12"}}}})
	if err != nil || len(d.Images) != 1 {
		t.Fatalf("debian-12 not registered: %v %+v", err, d)
	}
	// With a second card made at launch (eth1, two addresses).
	out, err := c.RunInstances(ctx(t), &ec2.RunInstancesInput{ImageId: d.Images[0].ImageId, InstanceType: types.InstanceTypeT3Small,
		MinCount: aws.Int32(1), MaxCount: aws.Int32(1), NetworkInterfaces: []types.InstanceNetworkInterfaceSpecification{
			{DeviceIndex: aws.Int32(0)}, {DeviceIndex: aws.Int32(1), SecondaryPrivateIpAddressCount: aws.Int32(1)}}})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(out.Instances[0].InstanceId)
	waitState(t, c, "running", id)
	if comm := inside(t, srv, id, "cat /proc/1/comm"); comm != "systemd" {
		t.Fatalf("PID 1 is %q", comm)
	}
	// --wait: "running" (the readiness line) comes at multi-user.target;
	// cloud-init's config and final stages (user data) may still be at work.
	if st := inside(t, srv, id, "timeout 60 systemctl is-system-running --wait || true"); st != "running" && st != "degraded" {
		t.Errorf("systemctl is-system-running: %s", st)
	}
	if !strings.Contains(inside(t, srv, id, "systemctl is-active ssh || true"), "active") {
		t.Error("sshd is not running")
	}
	t.Logf("failed units: %s", inside(t, srv, id, "systemctl --failed --no-legend --plain || true"))
	eth1 := out.Instances[0].NetworkInterfaces[1]
	if got := inside(t, srv, id, "cat /sys/class/net/eth1/address; ip -o -4 addr show eth1 | wc -l"); got != aws.ToString(eth1.MacAddress)+"\n2" {
		t.Errorf("eth1 inside: %q, want its MAC and two addresses", got)
	}
	_ = exec.Command("nsenter", "-t", mustPID(t, srv, id), "-a", "systemctl", "poweroff").Run()
	waitState(t, c, "stopped", id)
	desc, err := c.DescribeInstances(ctx(t), &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		t.Fatal(err)
	}
	if r := desc.Reservations[0].Instances[0].StateReason; r == nil || aws.ToString(r.Code) != "Client.InstanceInitiatedShutdown" {
		t.Fatalf("state reason after poweroff: %+v", r)
	}
}
