package e2e

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"nubo/internal/network/networktest"
	"nubo/internal/nubotest"
)

// webServer runs python's HTTP server inside an instance (its namespaces,
// as root inside), answering name at /who, bound to bind:port.
func webServer(t *testing.T, srv *nubotest.Server, id, name, bind, port string) {
	t.Helper()
	pid, err := srv.InstancePID(id)
	if err != nil {
		t.Fatal(err)
	}
	script := "mkdir -p /tmp/www && echo " + name + " > /tmp/www/who && cd /tmp/www && exec python3 -m http.server --bind " + bind + " " + port
	cmd := exec.Command("nsenter", "-t", pid, "-a", "/bin/sh", "-c", script)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
}

func eniOf(t *testing.T, c *ec2.Client, id string) types.NetworkInterface {
	t.Helper()
	out, err := c.DescribeNetworkInterfaces(ctx(t), &ec2.DescribeNetworkInterfacesInput{NetworkInterfaceIds: []string{id}})
	if err != nil {
		t.Fatal(err)
	}
	return out.NetworkInterfaces[0]
}

// waitENI waits for an interface's status (available, or in-use with its
// attachment attached).
func waitENI(t *testing.T, c *ec2.Client, id string, status types.NetworkInterfaceStatus) types.NetworkInterface {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		n := eniOf(t, c, id)
		done := n.Status == status
		if status == types.NetworkInterfaceStatusInUse {
			done = done && n.Attachment != nil && n.Attachment.Status == types.AttachmentStatusAttached
		}
		if done {
			return n
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: status %s, want %s (attachment %+v)", id, n.Status, status, n.Attachment)
		}
	}
}

func attachENI(t *testing.T, c *ec2.Client, eni, inst string, index int32) string {
	t.Helper()
	out, err := c.AttachNetworkInterface(ctx(t), &ec2.AttachNetworkInterfaceInput{NetworkInterfaceId: aws.String(eni),
		InstanceId: aws.String(inst), DeviceIndex: aws.Int32(index)})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.AttachmentId)
}

func detachENI(t *testing.T, c *ec2.Client, attachment string) {
	t.Helper()
	if _, err := c.DetachNetworkInterface(ctx(t), &ec2.DetachNetworkInterfaceInput{AttachmentId: aws.String(attachment)}); err != nil {
		t.Fatal(err)
	}
}

// TestENIFailover is the story, with real traffic: an ENI with a
// secondary address is eth1 of A, serving HTTP on that address; a client
// in C loops on it; the ENI moves to B (serving the same): the loop
// switches to B and no request hangs. On the way: eth1 inside A has the
// ENI's MAC and addresses, the metadata service lists both cards, the
// ENI's own security groups filter its traffic (and not eth0's), a
// secondary address reassigned between instances answers from its new
// holder, and a detached card is gone from the instance.
func TestENIFailover(t *testing.T) {
	srv, c, image := startWithImages(t)
	run, err := c.RunInstances(ctx(t), &ec2.RunInstancesInput{ImageId: aws.String(image), InstanceType: types.InstanceTypeT3Nano,
		MinCount: aws.Int32(3), MaxCount: aws.Int32(3)})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, in := range run.Instances {
		ids = append(ids, aws.ToString(in.InstanceId))
	}
	waitState(t, c, "running", ids...)
	a, b, client := describeOne(t, c, ids[0]), describeOne(t, c, ids[1]), describeOne(t, c, ids[2])
	if len(a.NetworkInterfaces) != 1 || aws.ToInt32(a.NetworkInterfaces[0].Attachment.DeviceIndex) != 0 {
		t.Fatalf("A's interfaces: %+v", a.NetworkInterfaces)
	}

	created, err := c.CreateNetworkInterface(ctx(t), &ec2.CreateNetworkInterfaceInput{SubnetId: a.SubnetId,
		SecondaryPrivateIpAddressCount: aws.Int32(1), Description: aws.String("service")})
	if err != nil {
		t.Fatal(err)
	}
	n := created.NetworkInterface
	eni, mac := aws.ToString(n.NetworkInterfaceId), aws.ToString(n.MacAddress)
	if len(n.PrivateIpAddresses) != 2 {
		t.Fatalf("addresses: %+v", n.PrivateIpAddresses)
	}
	primary, service := aws.ToString(n.PrivateIpAddress), ""
	for _, p := range n.PrivateIpAddresses {
		if !aws.ToBool(p.Primary) {
			service = aws.ToString(p.PrivateIpAddress)
		}
	}
	att := attachENI(t, c, eni, *a.InstanceId, 1)
	waitENI(t, c, eni, types.NetworkInterfaceStatusInUse)

	// The card inside A, as the OS sees it, and in the metadata service.
	link := inside(t, srv, *a.InstanceId, "ip -o link show eth1; ip -o -4 addr show eth1")
	if got := inside(t, srv, *a.InstanceId, "ls /sys/class/net | tr '\\n' ' '; cat /sys/class/net/eth1/address"); got != "eth0 eth1 lo "+mac {
		t.Fatalf("/sys/class/net inside A: %q, want its own interfaces and eth1's MAC", got)
	}
	for _, want := range []string{mac, primary + "/", service + "/"} {
		if !strings.Contains(link, want) {
			t.Fatalf("eth1 in A lacks %s:\n%s", want, link)
		}
	}
	macs := inside(t, srv, *a.InstanceId, "curl -s http://169.254.169.254/latest/meta-data/network/interfaces/macs/")
	if !strings.Contains(macs, mac+"/") || !strings.Contains(macs, aws.ToString(a.NetworkInterfaces[0].MacAddress)+"/") {
		t.Fatalf("metadata macs: %q", macs)
	}
	base := "http://169.254.169.254/latest/meta-data/network/interfaces/macs/" + mac + "/"
	if got := inside(t, srv, *a.InstanceId, "curl -s "+base+"device-number; echo; curl -s "+base+"interface-id"); got != "1\n"+eni {
		t.Fatalf("metadata of eth1: %q", got)
	}

	// A serves on the service address; C loops on it.
	webServer(t, srv, *a.InstanceId, "a", service, "8080")
	webServer(t, srv, *b.InstanceId, "b", "0.0.0.0", "8080")
	cns := netnsOf(t, srv, *client.InstanceId)
	url := "http://" + service + ":8080/who"
	loop := nubotest.StartLoop(cns, url, 20*time.Millisecond, time.Second)
	defer loop.Stop()
	if _, ok := loop.WaitFor("a", time.Time{}, 10*time.Second); !ok {
		t.Fatalf("C never reached A at %s: %+v", url, tail(loop.Answers()))
	}

	// An Elastic IP on the service address: the host reaches A there.
	if _, err := nubotest.OpenDefaultGroup(ctx(t), c, "", 8080); err != nil {
		t.Fatal(err)
	}
	eip, err := c.AllocateAddress(ctx(t), &ec2.AllocateAddressInput{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.AssociateAddress(ctx(t), &ec2.AssociateAddressInput{AllocationId: eip.AllocationId, NetworkInterfaceId: aws.String(eni),
		PrivateIpAddress: aws.String(service)}); err != nil {
		t.Fatal(err)
	}
	public := "http://" + aws.ToString(eip.PublicIp) + ":8080/who"
	eventually(t, "A at the Elastic IP", func() networktest.Outcome {
		if strings.TrimSpace(httpGet(public)) == "a" {
			return networktest.Open
		}
		return networktest.Timeout
	}, networktest.Open)

	// Move the ENI to B.
	detachENI(t, c, att)
	waitENI(t, c, eni, types.NetworkInterfaceStatusAvailable)
	if out, err := exec.Command("nsenter", "-t", mustPID(t, srv, *a.InstanceId), "-n", "ip", "link", "show", "eth1").CombinedOutput(); err == nil {
		t.Fatalf("eth1 still in A after detach: %s", out)
	}
	if got := inside(t, srv, *a.InstanceId, "ls /sys/class/net | tr '\\n' ' '"); got != "eth0 lo" {
		t.Fatalf("/sys/class/net inside A after the detach: %q", got)
	}
	attachENI(t, c, eni, *b.InstanceId, 1)
	t0 := time.Now()
	at, ok := loop.WaitFor("b", t0, 10*time.Second)
	if !ok {
		t.Fatalf("C never reached B: %+v", tail(loop.Answers()))
	}
	t.Logf("failover: first answer from B %v after AttachNetworkInterface returned", at.Sub(t0).Round(time.Millisecond))
	answered, failed := loop.Stop()
	t.Logf("loop: %d answered, %d failed (timed out or refused) during the move", answered, failed)
	if at.Sub(t0) > 5*time.Second { // the bound the benchmark measures is 1 s; this one is for a loaded CI machine
		t.Fatalf("failover took %v", at.Sub(t0))
	}
	if got := waitENI(t, c, eni, types.NetworkInterfaceStatusInUse); aws.ToString(got.MacAddress) != mac {
		t.Fatalf("MAC changed: %s", aws.ToString(got.MacAddress))
	}
	// The Elastic IP followed the address, and B's metadata says so.
	if got := strings.TrimSpace(httpGet(public)); got != "b" {
		t.Fatalf("the Elastic IP after the move: %q, want b", got)
	}
	for _, p := range eniOf(t, c, eni).PrivateIpAddresses {
		if aws.ToString(p.PrivateIpAddress) == service && (p.Association == nil || aws.ToString(p.Association.PublicIp) != aws.ToString(eip.PublicIp)) {
			t.Fatalf("DescribeNetworkInterfaces: %s's association %+v, want %s", service, p.Association, aws.ToString(eip.PublicIp))
		}
	}
	if got := inside(t, srv, *b.InstanceId, "curl -s "+base+"ipv4-associations/"+aws.ToString(eip.PublicIp)); got != service {
		t.Fatalf("B's metadata, ipv4-associations of eth1: %q, want %s", got, service)
	}
	addrs, err := c.DescribeAddresses(ctx(t), &ec2.DescribeAddressesInput{Filters: []types.Filter{{Name: aws.String("instance-id"), Values: []string{*b.InstanceId}}}})
	if err != nil || aws.ToString(addrs.Addresses[0].InstanceId) != *b.InstanceId || aws.ToString(addrs.Addresses[0].NetworkInterfaceId) != eni {
		t.Fatalf("DescribeAddresses after the move: %+v %v", addrs, err)
	}

	// The ENI's own groups filter its own traffic: a group with no
	// ingress closes the service address, not B's eth0.
	g, err := c.CreateSecurityGroup(ctx(t), &ec2.CreateSecurityGroupInput{GroupName: aws.String("closed"), Description: aws.String("no ingress")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ModifyNetworkInterfaceAttribute(ctx(t), &ec2.ModifyNetworkInterfaceAttributeInput{NetworkInterfaceId: aws.String(eni),
		Groups: []string{aws.ToString(g.GroupId)}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the service address behind a closed group", tcpProbe(t, cns, service+":8080"), networktest.Timeout)
	if o := tcpProbe(t, cns, aws.ToString(b.PrivateIpAddress)+":8080")(); o != networktest.Open {
		t.Fatalf("B's eth0 from C: %s", o)
	}

	// A secondary address of A's primary interface, reassigned to B's.
	aENI, bENI := aws.ToString(a.NetworkInterfaces[0].NetworkInterfaceId), aws.ToString(b.NetworkInterfaces[0].NetworkInterfaceId)
	assigned, err := c.AssignPrivateIpAddresses(ctx(t), &ec2.AssignPrivateIpAddressesInput{NetworkInterfaceId: aws.String(aENI), SecondaryPrivateIpAddressCount: aws.Int32(1)})
	if err != nil {
		t.Fatal(err)
	}
	moving := aws.ToString(assigned.AssignedPrivateIpAddresses[0].PrivateIpAddress)
	webServer(t, srv, *a.InstanceId, "a", "0.0.0.0", "8081")
	webServer(t, srv, *b.InstanceId, "b", "0.0.0.0", "8081")
	eventually(t, "A's secondary address", func() networktest.Outcome {
		if httpIn(cns, "http://"+moving+":8081/who") == "a" {
			return networktest.Open
		}
		return networktest.Timeout
	}, networktest.Open)
	if _, err := c.AssignPrivateIpAddresses(ctx(t), &ec2.AssignPrivateIpAddressesInput{NetworkInterfaceId: aws.String(bENI),
		PrivateIpAddresses: []string{moving}}); err == nil {
		t.Fatal("reassigned without AllowReassignment")
	}
	if _, err := c.AssignPrivateIpAddresses(ctx(t), &ec2.AssignPrivateIpAddressesInput{NetworkInterfaceId: aws.String(bENI),
		PrivateIpAddresses: []string{moving}, AllowReassignment: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the reassigned address at B", func() networktest.Outcome {
		if httpIn(cns, "http://"+moving+":8081/who") == "b" {
			return networktest.Open
		}
		return networktest.Timeout
	}, networktest.Open)
	if got := inside(t, srv, *a.InstanceId, "ip -o -4 addr show eth0"); strings.Contains(got, moving+"/") {
		t.Fatalf("A still has %s: %s", moving, got)
	}

	// Terminating B releases its primary interface and leaves the
	// attached ENI (DeleteOnTermination false, as for one attached by
	// AttachNetworkInterface) available.
	if _, err := c.TerminateInstances(ctx(t), &ec2.TerminateInstancesInput{InstanceIds: []string{*b.InstanceId}}); err != nil {
		t.Fatal(err)
	}
	waitENI(t, c, eni, types.NetworkInterfaceStatusAvailable)
	waitState(t, c, "terminated", *b.InstanceId)
	if _, err := c.DescribeNetworkInterfaces(ctx(t), &ec2.DescribeNetworkInterfacesInput{NetworkInterfaceIds: []string{bENI}}); err == nil {
		t.Fatalf("B's primary interface %s outlived B", bENI)
	}
	if _, err := c.DeleteNetworkInterface(ctx(t), &ec2.DeleteNetworkInterfaceInput{NetworkInterfaceId: aws.String(eni)}); err != nil {
		t.Fatal(err)
	}
}

// httpIn GETs url from inside a namespace, "" on failure.
func httpIn(nsPath, url string) string {
	l := nubotest.StartLoop(nsPath, url, time.Hour, 300*time.Millisecond)
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if as := l.Answers(); len(as) > 0 {
			l.Stop()
			return as[0].Body
		}
	}
	l.Stop()
	return ""
}

func tail(as []nubotest.Answer) []nubotest.Answer {
	if len(as) > 5 {
		return as[len(as)-5:]
	}
	return as
}
