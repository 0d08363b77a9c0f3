package e2e

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"nubo/internal/nubotest"
)

var lastProbeErr error

// hostKey is the ed25519 host key that addr:22 presents, "" if none within
// 40 ms (a slow handshake just tries again).
func hostKey(addr string) string {
	k, err := nubotest.SSHHostKey(addr, 40*time.Millisecond)
	lastProbeErr = err
	return k
}

// sshBanner dials addr:22 and returns the server's first line ("" on failure).
func sshBanner(addr string) string {
	c, err := net.DialTimeout("tcp", net.JoinHostPort(addr, "22"), time.Second)
	if err != nil {
		return ""
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	line, _ := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line)
}

func describeOne(t *testing.T, c *ec2.Client, id string) types.Instance {
	t.Helper()
	d, err := c.DescribeInstances(ctx(t), &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		t.Fatal(err)
	}
	return d.Reservations[0].Instances[0]
}

// TestNetworking: real traffic. The host reaches an instance by its public
// IP, instances reach each other by private IP and private DNS name, an
// Elastic IP moves from one instance to another, and the public IP changes
// at stop/start.
func TestNetworking(t *testing.T) {
	srv, c, image := startWithImages(t)
	if _, err := nubotest.OpenDefaultGroup(ctx(t), c, "", 22, 8080); err != nil {
		t.Fatal(err)
	}
	out, err := c.RunInstances(ctx(t), &ec2.RunInstancesInput{ImageId: aws.String(image), InstanceType: types.InstanceTypeT3Nano,
		MinCount: aws.Int32(2), MaxCount: aws.Int32(2)})
	if err != nil {
		t.Fatal(err)
	}
	a, b := aws.ToString(out.Instances[0].InstanceId), aws.ToString(out.Instances[1].InstanceId)
	waitState(t, c, "running", a, b)
	ia, ib := describeOne(t, c, a), describeOne(t, c, b)
	if ia.PublicIpAddress == nil || ia.PrivateIpAddress == nil || !strings.HasSuffix(aws.ToString(ia.PrivateDnsName), ".ec2.internal") {
		t.Fatalf("instance addresses: %+v", ia)
	}

	// Host → public IP.
	if got := sshBanner(aws.ToString(ia.PublicIpAddress)); !strings.HasPrefix(got, "SSH-2.0-OpenSSH") {
		t.Fatalf("ssh banner over the public IP %s: %q", aws.ToString(ia.PublicIpAddress), got)
	}
	// The instance's own view: eth0 with its private address, hostname from it.
	if got := inside(t, srv, a, "ip -4 -o addr show eth0 2>/dev/null | awk '{print $4}' || cat /proc/net/fib_trie | head -1"); !strings.HasPrefix(got, aws.ToString(ia.PrivateIpAddress)+"/") && got != "" {
		t.Errorf("eth0 inside %s: %q", a, got)
	}
	// Instance → instance, by private IP and by private DNS name.
	probe := "timeout 3 bash -c 'exec 3<>/dev/tcp/%s/22; head -c 7 <&3'"
	if got := inside(t, srv, a, strings.ReplaceAll(probe, "%s", aws.ToString(ib.PrivateIpAddress))); got != "SSH-2.0" {
		t.Errorf("A → B by private IP: %q", got)
	}
	if got := inside(t, srv, a, "getent hosts "+aws.ToString(ib.PrivateDnsName)+" | awk '{print $1}'"); got != aws.ToString(ib.PrivateIpAddress) {
		t.Errorf("A resolves %s to %q, want %s", aws.ToString(ib.PrivateDnsName), got, aws.ToString(ib.PrivateIpAddress))
	}

	// A → the host: the host sees the instance's public IP (SNAT). The
	// host's address on nubo's link is the pool's base + 1.
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer := make(chan string, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			peer <- c.RemoteAddr().(*net.TCPAddr).IP.String()
			c.Close()
		}
	}()
	pub := netip.MustParseAddr(aws.ToString(ia.PublicIpAddress)).As4()
	hostIP := netip.AddrFrom4([4]byte{pub[0], pub[1], pub[2], 1}).String()
	port := ln.Addr().(*net.TCPAddr).Port
	inside(t, srv, a, fmt.Sprintf("timeout 3 bash -c 'exec 3<>/dev/tcp/%s/%d'", hostIP, port))
	select {
	case src := <-peer:
		if src != aws.ToString(ia.PublicIpAddress) {
			t.Errorf("the host saw A's connection from %s, want its public IP %s", src, aws.ToString(ia.PublicIpAddress))
		}
	case <-time.After(5 * time.Second):
		t.Error("A's connection to the host never arrived")
	}

	// Stop/start: a new public IP, reachable; the old one answers no more.
	if _, err := c.StopInstances(ctx(t), &ec2.StopInstancesInput{InstanceIds: []string{a}}); err != nil {
		t.Fatal(err)
	}
	waitState(t, c, "stopped", a)
	if ip := describeOne(t, c, a).PublicIpAddress; ip != nil {
		t.Fatalf("a stopped instance keeps public IP %s", aws.ToString(ip))
	}
	if _, err := c.StartInstances(ctx(t), &ec2.StartInstancesInput{InstanceIds: []string{a}}); err != nil {
		t.Fatal(err)
	}
	waitState(t, c, "running", a)
	restarted := describeOne(t, c, a)
	newIP := aws.ToString(restarted.PublicIpAddress)
	if newIP == "" || newIP == aws.ToString(ia.PublicIpAddress) {
		t.Fatalf("public IP after stop/start: %q (was %s)", newIP, aws.ToString(ia.PublicIpAddress))
	}
	if got := sshBanner(newIP); !strings.HasPrefix(got, "SSH-2.0") {
		t.Fatalf("the new public IP %s does not answer: %q", newIP, got)
	}
	if got := sshBanner(aws.ToString(ia.PublicIpAddress)); got != "" {
		t.Fatalf("the old public IP still answers: %q", got)
	}

	// An Elastic IP moves from A to B.
	eip, err := c.AllocateAddress(ctx(t), &ec2.AllocateAddressInput{Domain: types.DomainTypeVpc})
	if err != nil {
		t.Fatal(err)
	}
	ip := aws.ToString(eip.PublicIp)
	if _, err := c.AssociateAddress(ctx(t), &ec2.AssociateAddressInput{AllocationId: eip.AllocationId, InstanceId: aws.String(a)}); err != nil {
		t.Fatal(err)
	}
	// Who answers is told by the SSH host key the address presents.
	keyOf := func(inst string) string {
		return strings.Fields(inside(t, srv, inst, "cat /etc/ssh/ssh_host_ed25519_key.pub"))[1]
	}
	keyA, keyB := keyOf(a), keyOf(b)
	deadline := time.Now().Add(5 * time.Second)
	for hostKey(ip) != keyA { // (a probe has 40 ms: a slow handshake just tries again)
		if time.Now().After(deadline) {
			t.Fatalf("Elastic IP %s does not reach A", ip)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if aws.ToString(describeOne(t, c, a).PublicIpAddress) != ip {
		t.Fatal("A does not show its Elastic IP")
	}
	// Move it to B under a client loop: count the attempts that fail.
	moved := time.Now()
	if _, err := c.AssociateAddress(ctx(t), &ec2.AssociateAddressInput{AllocationId: eip.AllocationId, InstanceId: aws.String(b), AllowReassociation: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	acked := time.Since(moved)
	failed, fromA := 0, 0
	var lastTry time.Time // when the attempt that found B began
	for {
		lastTry = time.Now()
		k := hostKey(ip)
		if k == keyA {
			fromA++
		}
		if k == keyB {
			break
		}
		if k == "" {
			failed++
			// Not faster: sshd throttles a flood of unauthenticated connections (MaxStartups).
			time.Sleep(10 * time.Millisecond)
		}
		if time.Since(moved) > 10*time.Second {
			co, _ := c.GetConsoleOutput(ctx(t), &ec2.GetConsoleOutputInput{InstanceId: aws.String(b)})
			out := decode(aws.ToString(co.Output))
			t.Fatalf("the Elastic IP did not move to B (%d attempts failed, %d reached A; last error %v)\nB's console:\n%s", failed, fromA, lastProbeErr, out[max(0, len(out)-1500):])
		}
	}
	t.Logf("Elastic IP moved from A to B: API answered in %s; the first attempt that reached B began %s after the call; %d attempts failed, %d still reached A",
		acked.Round(time.Millisecond), lastTry.Sub(moved).Round(time.Millisecond), failed, fromA)
	if aws.ToString(describeOne(t, c, a).PublicIpAddress) != "" {
		t.Error("A still shows a public IP after its Elastic IP moved")
	}

	if _, err := c.DisassociateAddress(ctx(t), &ec2.DisassociateAddressInput{AssociationId: nil, PublicIp: aws.String(ip)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ReleaseAddress(ctx(t), &ec2.ReleaseAddressInput{AllocationId: eip.AllocationId}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.TerminateInstances(ctx(t), &ec2.TerminateInstancesInput{InstanceIds: []string{a, b}}); err != nil {
		t.Fatal(err)
	}
	waitState(t, c, "terminated", a, b)
	if got := sshBanner(aws.ToString(ia.PublicIpAddress)); got != "" {
		t.Errorf("a terminated instance's old public IP still answers: %q", got)
	}
}
