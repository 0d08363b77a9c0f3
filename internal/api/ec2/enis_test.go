package ec2

import (
	"context"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"nubo/internal/eni"
	"nubo/internal/instance"
	"nubo/internal/resource"
	"nubo/internal/secgroup"
	"nubo/internal/store"
	"nubo/internal/vpc"
)

// eniEnv is the API with network interfaces over real services, driven
// by aws-sdk-go-v2; agent stands in for the host agent's writes. The
// default VPC has its default subnet in us-east-1a and, made here, a
// second subnet in us-east-1b (instances launch in us-east-1a only).
type eniEnv struct {
	c        *ec2.Client
	v        *igEnv
	vpcID    string
	subnet   string // the default subnet, us-east-1a, 172.31.0.0/20
	otherAZ  string // a subnet of the default VPC in us-east-1b, 172.31.16.0/20
	defGroup string
}

func newENIEnv(t *testing.T) *eniEnv {
	t.Helper()
	c, v := sdkInstances(t)
	st := v.a.Instances.Store
	v.a.ENIs = &eni.Service{Store: st, VPCs: v.a.VPCs}
	v.a.Instances.ENIs = v.a.ENIs
	v.a.SecurityGroups = &secgroup.Service{Store: st, DefaultVPC: func(ctx context.Context, account string) (string, error) {
		d, err := v.a.VPCs.DefaultVPC(ctx, account)
		return d.ID, err
	}}
	ctx := tctx(t)
	def, err := v.a.VPCs.DefaultVPC(ctx, v.account) // made with one zone's default subnet
	if err != nil {
		t.Fatal(err)
	}
	g, _, err := v.a.VPCs.DefaultSecurityGroup(ctx, v.account, def.ID)
	if err != nil {
		t.Fatal(err)
	}
	e := &eniEnv{c: c, v: v, vpcID: def.ID, defGroup: g.ID}
	sns, err := c.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{})
	if err != nil {
		t.Fatal(err)
	}
	for _, sn := range sns.Subnets {
		if aws.ToBool(sn.DefaultForAz) && aws.ToString(sn.AvailabilityZone) == "us-east-1a" {
			e.subnet = *sn.SubnetId
		}
	}
	if e.subnet == "" {
		t.Fatalf("no default subnet in %+v", sns.Subnets)
	}
	// A second zone for the VPC service only: subnets can be made there.
	v.a.VPCs.Zones = append(slices.Clone(v.a.VPCs.Zones), vpc.Zone{Name: "us-east-1b", ID: "use1-az2"})
	sn, err := c.CreateSubnet(ctx, &ec2.CreateSubnetInput{VpcId: &def.ID, CidrBlock: aws.String("172.31.16.0/20"), AvailabilityZone: aws.String("us-east-1b")})
	if err != nil {
		t.Fatal(err)
	}
	e.otherAZ = *sn.Subnet.SubnetId
	return e
}

func (e *eniEnv) scope() resource.Scope {
	return resource.Scope{Account: e.v.account, Region: "us-east-1"}
}

// agent writes what the host agent would.
func (e *eniEnv) agent(t *testing.T, id string, f func(*eni.Interface)) {
	t.Helper()
	_, err := store.Update(context.Background(), e.v.a.Instances.Store, eni.Key(e.scope(), id),
		func(n *eni.Interface) error { f(n); return nil })
	if err != nil {
		t.Fatal(err)
	}
}

func (e *eniEnv) create(t *testing.T, in *ec2.CreateNetworkInterfaceInput) types.NetworkInterface {
	t.Helper()
	if in == nil {
		in = &ec2.CreateNetworkInterfaceInput{}
	}
	if in.SubnetId == nil {
		in.SubnetId = aws.String(e.subnet)
	}
	out, err := e.c.CreateNetworkInterface(tctx(t), in)
	if err != nil {
		t.Fatal(err)
	}
	return *out.NetworkInterface
}

func (e *eniEnv) describe(t *testing.T, id string) types.NetworkInterface {
	t.Helper()
	out, err := e.c.DescribeNetworkInterfaces(tctx(t), &ec2.DescribeNetworkInterfacesInput{NetworkInterfaceIds: []string{id}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.NetworkInterfaces) != 1 {
		t.Fatalf("%d interfaces", len(out.NetworkInterfaces))
	}
	return out.NetworkInterfaces[0]
}

func (e *eniEnv) filter(t *testing.T, name string, values ...string) []string {
	t.Helper()
	out, err := e.c.DescribeNetworkInterfaces(tctx(t), &ec2.DescribeNetworkInterfacesInput{Filters: []types.Filter{{Name: aws.String(name), Values: values}}})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, n := range out.NetworkInterfaces {
		ids = append(ids, *n.NetworkInterfaceId)
	}
	return ids
}

func (e *eniEnv) group(t *testing.T, name string) string {
	t.Helper()
	out, err := e.c.CreateSecurityGroup(tctx(t), &ec2.CreateSecurityGroupInput{GroupName: aws.String(name), Description: aws.String("test " + name), VpcId: &e.vpcID})
	if err != nil {
		t.Fatal(err)
	}
	return *out.GroupId
}

// launch runs instances of typ (one unless f says), not yet running.
func (e *eniEnv) launch(t *testing.T, typ types.InstanceType, f func(*ec2.RunInstancesInput)) ([]types.Instance, error) {
	t.Helper()
	in := &ec2.RunInstancesInput{ImageId: aws.String(e.v.image), InstanceType: typ, MinCount: aws.Int32(1), MaxCount: aws.Int32(1)}
	if f != nil {
		f(in)
	}
	out, err := e.c.RunInstances(tctx(t), in)
	if err != nil {
		return nil, err
	}
	return out.Instances, nil
}

// running launches one instance of typ and marks it running, as its agent would.
func (e *eniEnv) running(t *testing.T, typ types.InstanceType) types.Instance {
	t.Helper()
	ins, err := e.launch(t, typ, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.markRunning(t, *ins[0].InstanceId)
	return ins[0]
}

func (e *eniEnv) markRunning(t *testing.T, id string) {
	t.Helper()
	_, err := store.Update(context.Background(), e.v.a.Instances.Store, instance.Key(e.v.account, "us-east-1", id),
		func(x *instance.Instance) error { x.State = instance.Running; return nil })
	if err != nil {
		t.Fatal(err)
	}
}

func (e *eniEnv) instanceRecord(t *testing.T, id string) instance.Instance {
	t.Helper()
	var rec instance.Instance
	if _, err := e.v.a.Instances.Store.Get(context.Background(), instance.Key(e.v.account, "us-east-1", id), &rec); err != nil {
		t.Fatal(err)
	}
	return rec
}

// holder is who holds the claim on a private address of the default VPC ("" none).
func (e *eniEnv) holder(t *testing.T, ip string) string {
	t.Helper()
	var claim vpc.Address
	rev, err := e.v.a.Instances.Store.GetRev(context.Background(), vpc.PrivateKey(e.v.account, "us-east-1", e.vpcID, netip.MustParseAddr(ip)), &claim)
	if err != nil {
		t.Fatal(err)
	}
	if rev == 0 {
		return ""
	}
	return claim.Holder
}

func addresses(n types.NetworkInterface) (primary string, secondary []string) {
	for _, p := range n.PrivateIpAddresses {
		if aws.ToBool(p.Primary) {
			if primary != "" {
				return "two primaries", nil
			}
			primary = aws.ToString(p.PrivateIpAddress)
		} else {
			secondary = append(secondary, aws.ToString(p.PrivateIpAddress))
		}
	}
	return primary, secondary
}

func groupIDs(gs []types.GroupIdentifier) []string {
	var out []string
	for _, g := range gs {
		out = append(out, aws.ToString(g.GroupId))
	}
	return out
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

var macRE = regexp.MustCompile(`^[0-9a-f]{2}(:[0-9a-f]{2}){5}$`)

func TestENICreateDescribeDeleteWithSDK(t *testing.T) {
	e := newENIEnv(t)
	ctx := tctx(t)
	def := netip.MustParsePrefix("172.31.0.0/20")

	plain := e.create(t, nil)
	id := aws.ToString(plain.NetworkInterfaceId)
	if !resource.ValidID(eni.Kind, id) || plain.Status != types.NetworkInterfaceStatusAvailable || !macRE.MatchString(aws.ToString(plain.MacAddress)) ||
		aws.ToString(plain.SubnetId) != e.subnet || aws.ToString(plain.VpcId) != e.vpcID || aws.ToString(plain.AvailabilityZone) != "us-east-1a" ||
		aws.ToString(plain.OwnerId) != e.v.account || !aws.ToBool(plain.SourceDestCheck) || plain.InterfaceType != types.NetworkInterfaceTypeInterface ||
		aws.ToString(plain.Description) != "" || plain.Attachment != nil || len(plain.TagSet) != 0 {
		t.Fatalf("CreateNetworkInterface answered %+v", plain)
	}
	if got := groupIDs(plain.Groups); !slices.Equal(got, []string{e.defGroup}) || aws.ToString(plain.Groups[0].GroupName) != "default" {
		t.Fatalf("groups %v, want the default group %s", got, e.defGroup)
	}
	p, sec := addresses(plain)
	if p != aws.ToString(plain.PrivateIpAddress) || len(sec) != 0 || !def.Contains(netip.MustParseAddr(p)) || aws.ToString(plain.PrivateDnsName) == "" {
		t.Fatalf("addresses %q %v of %+v", p, sec, plain)
	}
	if e.holder(t, p) != id {
		t.Fatalf("claim of %s held by %q", p, e.holder(t, p))
	}

	web := e.group(t, "web")
	rich := e.create(t, &ec2.CreateNetworkInterfaceInput{SecondaryPrivateIpAddressCount: aws.Int32(2), Description: aws.String("two more"),
		Groups: []string{web}, TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeNetworkInterface,
			Tags: []types.Tag{{Key: aws.String("Name"), Value: aws.String("rich")}}}}})
	richID := *rich.NetworkInterfaceId
	rp, rsec := addresses(rich)
	if len(rsec) != 2 || rp == "" || rp == p || slices.Contains(rsec, rp) || rsec[0] == rsec[1] || slices.Contains(rsec, p) {
		t.Fatalf("rich addresses %q %v", rp, rsec)
	}
	if aws.ToString(rich.Description) != "two more" || !slices.Equal(groupIDs(rich.Groups), []string{web}) || aws.ToString(rich.Groups[0].GroupName) != "web" ||
		len(rich.TagSet) != 1 || aws.ToString(rich.TagSet[0].Key) != "Name" || aws.ToString(rich.TagSet[0].Value) != "rich" {
		t.Fatalf("rich %+v", rich)
	}
	for _, a := range rsec {
		if e.holder(t, a) != richID {
			t.Fatalf("claim of %s held by %q", a, e.holder(t, a))
		}
	}

	explicit := e.create(t, &ec2.CreateNetworkInterfaceInput{PrivateIpAddress: aws.String("172.31.5.10"),
		PrivateIpAddresses: []types.PrivateIpAddressSpecification{{PrivateIpAddress: aws.String("172.31.5.11")}}})
	if ep, esec := addresses(explicit); ep != "172.31.5.10" || !slices.Equal(esec, []string{"172.31.5.11"}) {
		t.Fatalf("explicit addresses %q %v", ep, esec)
	}
	marked := e.create(t, &ec2.CreateNetworkInterfaceInput{PrivateIpAddresses: []types.PrivateIpAddressSpecification{
		{PrivateIpAddress: aws.String("172.31.5.21")}, {PrivateIpAddress: aws.String("172.31.5.20"), Primary: aws.Bool(true)}}})
	if mp, msec := addresses(marked); mp != "172.31.5.20" || !slices.Equal(msec, []string{"172.31.5.21"}) || aws.ToString(marked.PrivateIpAddress) != mp {
		t.Fatalf("Primary-marked addresses %q %v", mp, msec)
	}
	other := e.create(t, &ec2.CreateNetworkInterfaceInput{SubnetId: &e.otherAZ})
	if aws.ToString(other.AvailabilityZone) != "us-east-1b" || !netip.MustParsePrefix("172.31.16.0/20").Contains(netip.MustParseAddr(*other.PrivateIpAddress)) {
		t.Fatalf("interface of the other zone's subnet %+v", other)
	}

	// Refusals.
	for _, c := range []struct {
		in   *ec2.CreateNetworkInterfaceInput
		code string
	}{
		{&ec2.CreateNetworkInterfaceInput{PrivateIpAddress: aws.String("172.31.5.10")}, "InvalidIPAddress.InUse"},
		{&ec2.CreateNetworkInterfaceInput{PrivateIpAddresses: []types.PrivateIpAddressSpecification{{PrivateIpAddress: aws.String("172.31.5.11")}}}, "InvalidIPAddress.InUse"},
		{&ec2.CreateNetworkInterfaceInput{PrivateIpAddress: aws.String("172.31.6.1"), PrivateIpAddresses: []types.PrivateIpAddressSpecification{{PrivateIpAddress: aws.String("172.31.6.1")}}}, "InvalidIPAddress.InUse"},
		{&ec2.CreateNetworkInterfaceInput{SecondaryPrivateIpAddressCount: aws.Int32(eni.MaxIPsPerInterface)}, "PrivateIpAddressLimitExceeded"},
		{&ec2.CreateNetworkInterfaceInput{SecondaryPrivateIpAddressCount: aws.Int32(0)}, "InvalidParameterValue"},
		{&ec2.CreateNetworkInterfaceInput{PrivateIpAddress: aws.String("10.0.0.5")}, "InvalidParameterValue"},
		{&ec2.CreateNetworkInterfaceInput{PrivateIpAddress: aws.String("172.31.16.5")}, "InvalidParameterValue"}, // the other subnet's range
		{&ec2.CreateNetworkInterfaceInput{PrivateIpAddress: aws.String("not-an-ip")}, "InvalidParameterValue"},
		{&ec2.CreateNetworkInterfaceInput{PrivateIpAddresses: []types.PrivateIpAddressSpecification{
			{PrivateIpAddress: aws.String("172.31.6.2"), Primary: aws.Bool(true)}, {PrivateIpAddress: aws.String("172.31.6.3"), Primary: aws.Bool(true)}}}, "InvalidParameterCombination"},
		{&ec2.CreateNetworkInterfaceInput{SubnetId: aws.String("subnet-0123456789abcdef0")}, "InvalidSubnetID.NotFound"},
		{&ec2.CreateNetworkInterfaceInput{SubnetId: aws.String("subnet-nope")}, "InvalidSubnetID.Malformed"},
		{&ec2.CreateNetworkInterfaceInput{Groups: []string{"sg-0123456789abcdef0"}}, "InvalidGroup.NotFound"},
	} {
		if c.in.SubnetId == nil {
			c.in.SubnetId = aws.String(e.subnet)
		}
		_, err := e.c.CreateNetworkInterface(ctx, c.in)
		wantAPIError(t, err, c.code)
	}
	// A group of another VPC.
	nv, err := e.c.CreateVpc(ctx, &ec2.CreateVpcInput{CidrBlock: aws.String("10.1.0.0/16")})
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := e.c.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{GroupName: aws.String("far"), Description: aws.String("far"), VpcId: nv.Vpc.VpcId})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.c.CreateNetworkInterface(ctx, &ec2.CreateNetworkInterfaceInput{SubnetId: &e.subnet, Groups: []string{*foreign.GroupId}})
	wantAPIError(t, err, "InvalidParameter") // EC2's code for a group and subnet of different networks
	_, err = e.c.CreateNetworkInterface(ctx, &ec2.CreateNetworkInterfaceInput{SubnetId: &e.subnet, DryRun: aws.Bool(true)})
	wantAPIError(t, err, "DryRunOperation")
	before := e.filter(t, "vpc-id", e.vpcID)
	if len(before) != 5 {
		t.Fatalf("%d interfaces after refusals and a dry run, want 5: %v", len(before), before)
	}

	// Describe: by ID, all, filters.
	if d := e.describe(t, richID); aws.ToString(d.MacAddress) != aws.ToString(rich.MacAddress) || len(d.PrivateIpAddresses) != 3 || aws.ToString(d.Description) != "two more" {
		t.Fatalf("described %+v", d)
	}
	all, err := e.c.DescribeNetworkInterfaces(ctx, &ec2.DescribeNetworkInterfacesInput{})
	if err != nil || len(all.NetworkInterfaces) != 5 {
		t.Fatalf("all: %+v %v", all, err)
	}
	for _, c := range []struct {
		name   string
		values []string
		want   []string
	}{
		{"private-ip-address", []string{p}, []string{id}},
		{"private-ip-address", []string{rsec[0]}, nil}, // the primary only
		{"addresses.private-ip-address", []string{rsec[0]}, []string{richID}},
		{"private-ip-addresses.private-ip-address", []string{"172.31.5.11", rp}, []string{richID, *explicit.NetworkInterfaceId}},
		{"group-id", []string{web}, []string{richID}},
		{"subnet-id", []string{e.otherAZ}, []string{*other.NetworkInterfaceId}},
		{"availability-zone", []string{"us-east-1b"}, []string{*other.NetworkInterfaceId}},
		{"status", []string{"available"}, before},
		{"status", []string{"in-use"}, nil},
		{"mac-address", []string{*plain.MacAddress}, []string{id}},
		{"network-interface-id", []string{id, richID}, []string{id, richID}},
		{"tag:Name", []string{"rich"}, []string{richID}},
		{"tag-key", []string{"Name"}, []string{richID}},
		{"description", []string{"two*"}, []string{richID}},
		{"source-dest-check", []string{"true"}, before},
		{"owner-id", []string{e.v.account}, before},
		{"attachment.instance-id", []string{"i-0123456789abcdef0"}, nil},
	} {
		if got := e.filter(t, c.name, c.values...); !sameSet(got, c.want) {
			t.Errorf("%s=%v: %v, want %v", c.name, c.values, got, c.want)
		}
	}
	_, err = e.c.DescribeNetworkInterfaces(ctx, &ec2.DescribeNetworkInterfacesInput{NetworkInterfaceIds: []string{"eni-nope"}})
	wantAPIError(t, err, "InvalidNetworkInterfaceID.Malformed")
	_, err = e.c.DescribeNetworkInterfaces(ctx, &ec2.DescribeNetworkInterfacesInput{NetworkInterfaceIds: []string{"eni-0123456789abcdef0"}})
	wantAPIError(t, err, "InvalidNetworkInterfaceID.NotFound")
	_, err = e.c.DescribeNetworkInterfaces(ctx, &ec2.DescribeNetworkInterfacesInput{NetworkInterfaceIds: []string{id}, MaxResults: aws.Int32(5)})
	wantAPIError(t, err, "InvalidParameterCombination")
	_, err = e.c.DescribeNetworkInterfaces(ctx, &ec2.DescribeNetworkInterfacesInput{Filters: []types.Filter{{Name: aws.String("no-such-filter"), Values: []string{"x"}}}})
	if err == nil {
		t.Error("an unknown filter was accepted")
	}

	// Delete: dry run, malformed, unknown, then for real, which frees the addresses.
	_, err = e.c.DeleteNetworkInterface(ctx, &ec2.DeleteNetworkInterfaceInput{NetworkInterfaceId: &richID, DryRun: aws.Bool(true)})
	wantAPIError(t, err, "DryRunOperation")
	_ = e.describe(t, richID)
	_, err = e.c.DeleteNetworkInterface(ctx, &ec2.DeleteNetworkInterfaceInput{NetworkInterfaceId: aws.String("eni-nope")})
	wantAPIError(t, err, "InvalidNetworkInterfaceID.Malformed")
	_, err = e.c.DeleteNetworkInterface(ctx, &ec2.DeleteNetworkInterfaceInput{NetworkInterfaceId: aws.String("eni-0123456789abcdef0")})
	wantAPIError(t, err, "InvalidNetworkInterfaceID.NotFound")
	if _, err := e.c.DeleteNetworkInterface(ctx, &ec2.DeleteNetworkInterfaceInput{NetworkInterfaceId: &richID}); err != nil {
		t.Fatal(err)
	}
	_, err = e.c.DescribeNetworkInterfaces(ctx, &ec2.DescribeNetworkInterfacesInput{NetworkInterfaceIds: []string{richID}})
	wantAPIError(t, err, "InvalidNetworkInterfaceID.NotFound")
	_, err = e.c.DeleteNetworkInterface(ctx, &ec2.DeleteNetworkInterfaceInput{NetworkInterfaceId: &richID})
	wantAPIError(t, err, "InvalidNetworkInterfaceID.NotFound")
	for _, a := range append([]string{rp}, rsec...) {
		if h := e.holder(t, a); h != "" {
			t.Fatalf("%s still held by %s", a, h)
		}
	}
	again := e.create(t, &ec2.CreateNetworkInterfaceInput{PrivateIpAddress: &rp, PrivateIpAddresses: []types.PrivateIpAddressSpecification{{PrivateIpAddress: &rsec[0]}}})
	if ap, _ := addresses(again); ap != rp {
		t.Fatalf("freed address not reused: %s", ap)
	}
}

func TestENIPrimaryOfInstanceWithSDK(t *testing.T) {
	e := newENIEnv(t)
	ctx := tctx(t)
	in := e.running(t, types.InstanceTypeT3Micro)
	id := *in.InstanceId
	rec := e.instanceRecord(t, id)
	if !resource.ValidID(eni.Kind, rec.NetworkInterfaceID) {
		t.Fatalf("instance record's interface %q", rec.NetworkInterfaceID)
	}
	// RunInstances already shows it.
	if len(in.NetworkInterfaces) != 1 || aws.ToString(in.NetworkInterfaces[0].NetworkInterfaceId) != rec.NetworkInterfaceID {
		t.Fatalf("RunInstances networkInterfaceSet %+v", in.NetworkInterfaces)
	}

	ids := e.filter(t, "attachment.instance-id", id)
	if !slices.Equal(ids, []string{rec.NetworkInterfaceID}) {
		t.Fatalf("interfaces of %s: %v, want %s", id, ids, rec.NetworkInterfaceID)
	}
	n := e.describe(t, rec.NetworkInterfaceID)
	att := n.Attachment
	if n.Status != types.NetworkInterfaceStatusInUse || att == nil || aws.ToInt32(att.DeviceIndex) != 0 || att.Status != types.AttachmentStatusAttached ||
		aws.ToString(att.InstanceId) != id || !aws.ToBool(att.DeleteOnTermination) || !strings.HasPrefix(aws.ToString(att.AttachmentId), "eni-attach-") ||
		aws.ToString(att.InstanceOwnerId) != e.v.account || att.AttachTime == nil {
		t.Fatalf("primary interface %+v attachment %+v", n, att)
	}
	if aws.ToString(n.PrivateIpAddress) != aws.ToString(in.PrivateIpAddress) || aws.ToString(n.MacAddress) != rec.MAC || rec.MAC == "" ||
		aws.ToString(n.SubnetId) != aws.ToString(in.SubnetId) || !slices.Equal(groupIDs(n.Groups), []string{e.defGroup}) ||
		e.holder(t, *n.PrivateIpAddress) != rec.NetworkInterfaceID {
		t.Fatalf("primary interface %+v of instance %+v (holder %s)", n, in, e.holder(t, aws.ToString(n.PrivateIpAddress)))
	}
	// The default subnet maps a public address: the primary interface shows it.
	if in.PublicIpAddress == nil || n.Association == nil || aws.ToString(n.Association.PublicIp) != *in.PublicIpAddress {
		t.Fatalf("association %+v, instance public address %v", n.Association, aws.ToString(in.PublicIpAddress))
	}
	d := describeOne(t, e.c, id)
	if len(d.NetworkInterfaces) != 1 {
		t.Fatalf("DescribeInstances networkInterfaceSet %+v", d.NetworkInterfaces)
	}
	dn := d.NetworkInterfaces[0]
	if aws.ToString(dn.NetworkInterfaceId) != rec.NetworkInterfaceID || aws.ToString(dn.MacAddress) != rec.MAC ||
		aws.ToString(dn.PrivateIpAddress) != aws.ToString(d.PrivateIpAddress) || dn.Attachment == nil || aws.ToInt32(dn.Attachment.DeviceIndex) != 0 ||
		dn.Attachment.Status != types.AttachmentStatusAttached || len(dn.PrivateIpAddresses) != 1 || !aws.ToBool(dn.PrivateIpAddresses[0].Primary) ||
		dn.Association == nil || aws.ToString(dn.Association.PublicIp) != aws.ToString(d.PublicIpAddress) {
		t.Fatalf("DescribeInstances interface %+v", dn)
	}
	for name, value := range map[string]string{"attachment.device-index": "0", "attachment.status": "attached",
		"attachment.attachment-id": *att.AttachmentId, "attachment.delete-on-termination": "true", "status": "in-use"} {
		if got := e.filter(t, name, value); !slices.Equal(got, []string{rec.NetworkInterfaceID}) {
			t.Errorf("%s=%s: %v", name, value, got)
		}
	}

	_, err := e.c.DetachNetworkInterface(ctx, &ec2.DetachNetworkInterfaceInput{AttachmentId: att.AttachmentId})
	wantAPIError(t, err, "OperationNotPermitted")
	_, err = e.c.DetachNetworkInterface(ctx, &ec2.DetachNetworkInterfaceInput{AttachmentId: att.AttachmentId, Force: aws.Bool(true)})
	wantAPIError(t, err, "OperationNotPermitted")
	_, err = e.c.DeleteNetworkInterface(ctx, &ec2.DeleteNetworkInterfaceInput{NetworkInterfaceId: n.NetworkInterfaceId})
	wantAPIError(t, err, "InvalidNetworkInterface.InUse")
	if n2 := e.describe(t, rec.NetworkInterfaceID); n2.Attachment == nil || n2.Attachment.Status != types.AttachmentStatusAttached {
		t.Fatalf("after refusals %+v", n2.Attachment)
	}
	// Its address cannot be taken.
	_, err = e.c.CreateNetworkInterface(ctx, &ec2.CreateNetworkInterfaceInput{SubnetId: &e.subnet, PrivateIpAddress: in.PrivateIpAddress})
	wantAPIError(t, err, "InvalidIPAddress.InUse")
}

func TestENIAttachDetachWithSDK(t *testing.T) {
	e := newENIEnv(t)
	ctx := tctx(t)
	in := e.running(t, types.InstanceTypeT3Micro) // 2 interfaces, 2 addresses each
	id := *in.InstanceId
	n := e.create(t, nil)
	nid := *n.NetworkInterfaceId

	_, err := e.c.AttachNetworkInterface(ctx, &ec2.AttachNetworkInterfaceInput{NetworkInterfaceId: &nid, InstanceId: &id, DeviceIndex: aws.Int32(1), DryRun: aws.Bool(true)})
	wantAPIError(t, err, "DryRunOperation")
	if d := e.describe(t, nid); d.Attachment != nil || d.Status != types.NetworkInterfaceStatusAvailable {
		t.Fatalf("dry run attached %+v", d)
	}
	_, err = e.c.AttachNetworkInterface(ctx, &ec2.AttachNetworkInterfaceInput{NetworkInterfaceId: &nid, InstanceId: &id, DeviceIndex: aws.Int32(0)})
	wantAPIError(t, err, "InvalidParameterValue")
	_, err = e.c.AttachNetworkInterface(ctx, &ec2.AttachNetworkInterfaceInput{NetworkInterfaceId: &nid, InstanceId: &id, DeviceIndex: aws.Int32(eni.MaxDeviceIndex + 1)})
	wantAPIError(t, err, "InvalidParameterValue")
	_, err = e.c.AttachNetworkInterface(ctx, &ec2.AttachNetworkInterfaceInput{NetworkInterfaceId: &nid, InstanceId: &id, DeviceIndex: aws.Int32(1), NetworkCardIndex: aws.Int32(1)})
	wantAPIError(t, err, "InvalidParameterValue")
	_, err = e.c.AttachNetworkInterface(ctx, &ec2.AttachNetworkInterfaceInput{NetworkInterfaceId: &nid, InstanceId: aws.String("i-0123456789abcdef0"), DeviceIndex: aws.Int32(1)})
	wantAPIError(t, err, "InvalidInstanceID.NotFound")
	_, err = e.c.AttachNetworkInterface(ctx, &ec2.AttachNetworkInterfaceInput{NetworkInterfaceId: aws.String("eni-0123456789abcdef0"), InstanceId: &id, DeviceIndex: aws.Int32(1)})
	wantAPIError(t, err, "InvalidNetworkInterfaceID.NotFound")
	_, err = e.c.AttachNetworkInterface(ctx, &ec2.AttachNetworkInterfaceInput{NetworkInterfaceId: aws.String("eni-x"), InstanceId: &id, DeviceIndex: aws.Int32(1)})
	wantAPIError(t, err, "InvalidNetworkInterfaceID.Malformed")

	att, err := e.c.AttachNetworkInterface(ctx, &ec2.AttachNetworkInterfaceInput{NetworkInterfaceId: &nid, InstanceId: &id, DeviceIndex: aws.Int32(1)})
	if err != nil {
		t.Fatal(err)
	}
	attID := aws.ToString(att.AttachmentId)
	if !resource.ValidID(eni.AttachmentKind, attID) || aws.ToInt32(att.NetworkCardIndex) != 0 {
		t.Fatalf("AttachNetworkInterface answered %+v", att)
	}
	d := e.describe(t, nid)
	if d.Status != types.NetworkInterfaceStatusInUse || d.Attachment == nil || aws.ToString(d.Attachment.AttachmentId) != attID ||
		d.Attachment.Status != types.AttachmentStatusAttaching || aws.ToString(d.Attachment.InstanceId) != id ||
		aws.ToInt32(d.Attachment.DeviceIndex) != 1 || aws.ToBool(d.Attachment.DeleteOnTermination) || d.Association != nil {
		t.Fatalf("attached interface %+v %+v", d, d.Attachment)
	}
	if got := e.filter(t, "attachment.instance-id", id); len(got) != 2 || !slices.Contains(got, nid) {
		t.Fatalf("interfaces of %s: %v", id, got)
	}
	if got := describeOne(t, e.c, id).NetworkInterfaces; len(got) != 2 || aws.ToInt32(got[0].Attachment.DeviceIndex) != 0 ||
		aws.ToString(got[1].NetworkInterfaceId) != nid || aws.ToInt32(got[1].Attachment.DeviceIndex) != 1 || got[1].Attachment.Status != types.AttachmentStatusAttaching {
		t.Fatalf("DescribeInstances interfaces %+v", got)
	}
	// The agent finishes.
	e.agent(t, nid, func(n *eni.Interface) { n.Attachment.Status = eni.Attached })
	if got := e.filter(t, "attachment.status", "attached"); len(got) != 2 {
		t.Fatalf("attached: %v", got)
	}

	// Attached already; the instance's interfaces are at t3.micro's limit.
	in2 := e.running(t, types.InstanceTypeT3Medium) // 3 interfaces, 6 addresses each
	_, err = e.c.AttachNetworkInterface(ctx, &ec2.AttachNetworkInterfaceInput{NetworkInterfaceId: &nid, InstanceId: in2.InstanceId, DeviceIndex: aws.Int32(1)})
	wantAPIError(t, err, "InvalidNetworkInterface.InUse")
	_, err = e.c.AttachNetworkInterface(ctx, &ec2.AttachNetworkInterfaceInput{NetworkInterfaceId: &nid, InstanceId: &id, DeviceIndex: aws.Int32(2)})
	wantAPIError(t, err, "InvalidNetworkInterface.InUse")
	n2 := *e.create(t, nil).NetworkInterfaceId
	_, err = e.c.AttachNetworkInterface(ctx, &ec2.AttachNetworkInterfaceInput{NetworkInterfaceId: &n2, InstanceId: &id, DeviceIndex: aws.Int32(2)})
	wantAPIError(t, err, "AttachmentLimitExceeded")
	// A device index taken (on a type with room for a third).
	if _, err := e.c.AttachNetworkInterface(ctx, &ec2.AttachNetworkInterfaceInput{NetworkInterfaceId: &n2, InstanceId: in2.InstanceId, DeviceIndex: aws.Int32(2)}); err != nil {
		t.Fatal(err)
	}
	n3 := *e.create(t, nil).NetworkInterfaceId
	_, err = e.c.AttachNetworkInterface(ctx, &ec2.AttachNetworkInterfaceInput{NetworkInterfaceId: &n3, InstanceId: in2.InstanceId, DeviceIndex: aws.Int32(2)})
	wantAPIError(t, err, "InvalidParameterValue")
	// Another zone's interface.
	far := *e.create(t, &ec2.CreateNetworkInterfaceInput{SubnetId: &e.otherAZ}).NetworkInterfaceId
	_, err = e.c.AttachNetworkInterface(ctx, &ec2.AttachNetworkInterfaceInput{NetworkInterfaceId: &far, InstanceId: in2.InstanceId, DeviceIndex: aws.Int32(1)})
	wantAPIError(t, err, "InvalidParameterCombination")
	// More addresses than t3.micro takes per interface.
	in3 := e.running(t, types.InstanceTypeT3Micro)
	big := *e.create(t, &ec2.CreateNetworkInterfaceInput{SecondaryPrivateIpAddressCount: aws.Int32(2)}).NetworkInterfaceId
	_, err = e.c.AttachNetworkInterface(ctx, &ec2.AttachNetworkInterfaceInput{NetworkInterfaceId: &big, InstanceId: in3.InstanceId, DeviceIndex: aws.Int32(1)})
	wantAPIError(t, err, "PrivateIpAddressLimitExceeded")
	// An instance that is not running or stopped.
	pending, err := e.launch(t, types.InstanceTypeT3Medium, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.c.AttachNetworkInterface(ctx, &ec2.AttachNetworkInterfaceInput{NetworkInterfaceId: &n3, InstanceId: pending[0].InstanceId, DeviceIndex: aws.Int32(1)})
	wantAPIError(t, err, "IncorrectInstanceState")

	// Two attachments at one index of one instance at once: one wins.
	in4 := e.running(t, types.InstanceTypeT3Medium)
	racers := []string{*e.create(t, nil).NetworkInterfaceId, *e.create(t, nil).NetworkInterfaceId}
	errs := make(chan error, len(racers))
	for _, r := range racers {
		go func() {
			_, err := e.c.AttachNetworkInterface(ctx, &ec2.AttachNetworkInterfaceInput{NetworkInterfaceId: &r, InstanceId: in4.InstanceId, DeviceIndex: aws.Int32(1)})
			errs <- err
		}()
	}
	var lost []error
	for range racers {
		if err := <-errs; err != nil {
			lost = append(lost, err)
		}
	}
	if len(lost) != 1 {
		t.Fatalf("racing attachments: %d refused (%v), want 1", len(lost), lost)
	}
	wantAPIError(t, lost[0], "InvalidParameterValue")
	if got := e.filter(t, "attachment.instance-id", *in4.InstanceId); len(got) != 2 {
		t.Fatalf("interfaces of the raced instance: %v", got)
	}

	// Detach: dry run, refusals, detaching, the agent, then delete.
	_, err = e.c.DetachNetworkInterface(ctx, &ec2.DetachNetworkInterfaceInput{AttachmentId: &attID, DryRun: aws.Bool(true)})
	wantAPIError(t, err, "DryRunOperation")
	_, err = e.c.DetachNetworkInterface(ctx, &ec2.DetachNetworkInterfaceInput{AttachmentId: aws.String("eni-attach-0123456789abcdef0")})
	wantAPIError(t, err, "InvalidAttachmentID.NotFound")
	_, err = e.c.DetachNetworkInterface(ctx, &ec2.DetachNetworkInterfaceInput{AttachmentId: aws.String("attach-1")})
	wantAPIError(t, err, "InvalidAttachmentID.Malformed")
	if d := e.describe(t, nid); d.Attachment.Status != types.AttachmentStatusAttached {
		t.Fatalf("dry run detached %+v", d.Attachment)
	}
	if _, err := e.c.DetachNetworkInterface(ctx, &ec2.DetachNetworkInterfaceInput{AttachmentId: &attID}); err != nil {
		t.Fatal(err)
	}
	d = e.describe(t, nid)
	if d.Status != types.NetworkInterfaceStatusInUse || d.Attachment == nil || d.Attachment.Status != types.AttachmentStatusDetaching {
		t.Fatalf("detaching %+v %+v", d, d.Attachment)
	}
	if _, err := e.c.DetachNetworkInterface(ctx, &ec2.DetachNetworkInterfaceInput{AttachmentId: &attID}); err != nil {
		t.Fatalf("detaching again: %v", err)
	}
	_, err = e.c.DeleteNetworkInterface(ctx, &ec2.DeleteNetworkInterfaceInput{NetworkInterfaceId: &nid})
	wantAPIError(t, err, "InvalidNetworkInterface.InUse")
	e.agent(t, nid, func(n *eni.Interface) { n.Attachment, n.Status = nil, eni.Available })
	d = e.describe(t, nid)
	if d.Status != types.NetworkInterfaceStatusAvailable || d.Attachment != nil {
		t.Fatalf("detached %+v", d)
	}
	if got := e.filter(t, "attachment.instance-id", id); len(got) != 1 {
		t.Fatalf("interfaces of %s after detach: %v", id, got)
	}
	_, err = e.c.DetachNetworkInterface(ctx, &ec2.DetachNetworkInterfaceInput{AttachmentId: &attID})
	wantAPIError(t, err, "InvalidAttachmentID.NotFound")
	// Now there is room on the instance again.
	if _, err := e.c.AttachNetworkInterface(ctx, &ec2.AttachNetworkInterfaceInput{NetworkInterfaceId: &n3, InstanceId: &id, DeviceIndex: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	addr := *d.PrivateIpAddress
	if _, err := e.c.DeleteNetworkInterface(ctx, &ec2.DeleteNetworkInterfaceInput{NetworkInterfaceId: &nid}); err != nil {
		t.Fatal(err)
	}
	if h := e.holder(t, addr); h != "" {
		t.Fatalf("%s still held by %s", addr, h)
	}
	reuse := e.create(t, &ec2.CreateNetworkInterfaceInput{PrivateIpAddress: &addr})
	if *reuse.PrivateIpAddress != addr {
		t.Fatalf("reused %s", *reuse.PrivateIpAddress)
	}
}

func TestENIAssignUnassignWithSDK(t *testing.T) {
	e := newENIEnv(t)
	ctx := tctx(t)
	a := e.create(t, nil)
	aid := *a.NetworkInterfaceId

	// (AssignPrivateIpAddresses and UnassignPrivateIpAddresses take no DryRun.)
	out, err := e.c.AssignPrivateIpAddresses(ctx, &ec2.AssignPrivateIpAddressesInput{NetworkInterfaceId: &aid, SecondaryPrivateIpAddressCount: aws.Int32(2)})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(out.NetworkInterfaceId) != aid || len(out.AssignedPrivateIpAddresses) != 2 {
		t.Fatalf("AssignPrivateIpAddresses answered %+v", out)
	}
	got := []string{*out.AssignedPrivateIpAddresses[0].PrivateIpAddress, *out.AssignedPrivateIpAddresses[1].PrivateIpAddress}
	out, err = e.c.AssignPrivateIpAddresses(ctx, &ec2.AssignPrivateIpAddressesInput{NetworkInterfaceId: &aid, PrivateIpAddresses: []string{"172.31.8.2"}})
	if err != nil || len(out.AssignedPrivateIpAddresses) != 1 || *out.AssignedPrivateIpAddresses[0].PrivateIpAddress != "172.31.8.2" {
		t.Fatalf("assigning 172.31.8.2: %+v %v", out, err)
	}
	got = append(got, "172.31.8.2")
	ap, asec := addresses(e.describe(t, aid))
	if ap != *a.PrivateIpAddress || !sameSet(asec, got) {
		t.Fatalf("addresses %s %v, want %s %v", ap, asec, *a.PrivateIpAddress, got)
	}
	for _, ip := range got {
		if e.holder(t, ip) != aid {
			t.Fatalf("%s held by %q", ip, e.holder(t, ip))
		}
	}
	// Refusals: nothing asked, both ways, not an address, outside the subnet, the limit of an unattached interface.
	for _, c := range []struct {
		in   *ec2.AssignPrivateIpAddressesInput
		code string
	}{
		{&ec2.AssignPrivateIpAddressesInput{}, "MissingParameter"},
		{&ec2.AssignPrivateIpAddressesInput{PrivateIpAddresses: []string{"172.31.8.9"}, SecondaryPrivateIpAddressCount: aws.Int32(1)}, "InvalidParameterCombination"},
		{&ec2.AssignPrivateIpAddressesInput{PrivateIpAddresses: []string{"nope"}}, "InvalidParameterValue"},
		{&ec2.AssignPrivateIpAddressesInput{PrivateIpAddresses: []string{"10.9.9.9"}}, "InvalidParameterValue"},
		{&ec2.AssignPrivateIpAddressesInput{SecondaryPrivateIpAddressCount: aws.Int32(int32(eni.MaxIPsPerInterface - 3))}, "PrivateIpAddressLimitExceeded"},
	} {
		c.in.NetworkInterfaceId = &aid
		_, err := e.c.AssignPrivateIpAddresses(ctx, c.in)
		wantAPIError(t, err, c.code)
	}
	_, err = e.c.AssignPrivateIpAddresses(ctx, &ec2.AssignPrivateIpAddressesInput{NetworkInterfaceId: aws.String("eni-0123456789abcdef0"), SecondaryPrivateIpAddressCount: aws.Int32(1)})
	wantAPIError(t, err, "InvalidNetworkInterfaceID.NotFound")
	if _, asec := addresses(e.describe(t, aid)); len(asec) != 3 {
		t.Fatalf("refusals changed the addresses: %v", asec)
	}

	// Reassignment: a secondary moves only with AllowReassignment; a primary never.
	b := e.create(t, nil)
	bid := *b.NetworkInterfaceId
	_, err = e.c.AssignPrivateIpAddresses(ctx, &ec2.AssignPrivateIpAddressesInput{NetworkInterfaceId: &bid, PrivateIpAddresses: []string{"172.31.8.2"}})
	wantAPIError(t, err, "InvalidIPAddress.InUse")
	_, err = e.c.AssignPrivateIpAddresses(ctx, &ec2.AssignPrivateIpAddressesInput{NetworkInterfaceId: &bid, PrivateIpAddresses: []string{"172.31.8.2"}, AllowReassignment: aws.Bool(false)})
	wantAPIError(t, err, "InvalidIPAddress.InUse")
	_, err = e.c.AssignPrivateIpAddresses(ctx, &ec2.AssignPrivateIpAddressesInput{NetworkInterfaceId: &bid, PrivateIpAddresses: []string{*a.PrivateIpAddress}, AllowReassignment: aws.Bool(true)})
	wantAPIError(t, err, "InvalidParameterValue")
	out, err = e.c.AssignPrivateIpAddresses(ctx, &ec2.AssignPrivateIpAddressesInput{NetworkInterfaceId: &bid, PrivateIpAddresses: []string{"172.31.8.2"}, AllowReassignment: aws.Bool(true)})
	if err != nil || len(out.AssignedPrivateIpAddresses) != 1 {
		t.Fatalf("reassigning: %+v %v", out, err)
	}
	if _, asec := addresses(e.describe(t, aid)); len(asec) != 2 || slices.Contains(asec, "172.31.8.2") {
		t.Fatalf("a after the move: %v", asec)
	}
	if bp, bsec := addresses(e.describe(t, bid)); bp != *b.PrivateIpAddress || !slices.Equal(bsec, []string{"172.31.8.2"}) {
		t.Fatalf("b after the move: %s %v", bp, bsec)
	}
	if h := e.holder(t, "172.31.8.2"); h != bid {
		t.Fatalf("172.31.8.2 held by %s, want %s", h, bid)
	}
	if got := e.filter(t, "addresses.private-ip-address", "172.31.8.2"); !slices.Equal(got, []string{bid}) {
		t.Fatalf("who has 172.31.8.2: %v", got)
	}
	// An instance's primary address is an interface's primary too.
	in := e.running(t, types.InstanceTypeT3Micro)
	_, err = e.c.AssignPrivateIpAddresses(ctx, &ec2.AssignPrivateIpAddressesInput{NetworkInterfaceId: &bid, PrivateIpAddresses: []string{*in.PrivateIpAddress}, AllowReassignment: aws.Bool(true)})
	wantAPIError(t, err, "InvalidParameterValue")
	// An address of another subnet cannot move here, even allowed.
	far := e.create(t, &ec2.CreateNetworkInterfaceInput{SubnetId: &e.otherAZ, SecondaryPrivateIpAddressCount: aws.Int32(1)})
	_, farSec := addresses(far)
	_, err = e.c.AssignPrivateIpAddresses(ctx, &ec2.AssignPrivateIpAddressesInput{NetworkInterfaceId: &bid, PrivateIpAddresses: farSec, AllowReassignment: aws.Bool(true)})
	wantAPIError(t, err, "InvalidParameterValue")
	if h := e.holder(t, farSec[0]); h != *far.NetworkInterfaceId {
		t.Fatalf("%s held by %s after a refused move", farSec[0], h)
	}

	// The limit of the instance type once attached: t3.micro takes 2 per interface.
	c := *e.create(t, nil).NetworkInterfaceId
	if _, err := e.c.AttachNetworkInterface(ctx, &ec2.AttachNetworkInterfaceInput{NetworkInterfaceId: &c, InstanceId: in.InstanceId, DeviceIndex: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.AssignPrivateIpAddresses(ctx, &ec2.AssignPrivateIpAddressesInput{NetworkInterfaceId: &c, SecondaryPrivateIpAddressCount: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	_, err = e.c.AssignPrivateIpAddresses(ctx, &ec2.AssignPrivateIpAddressesInput{NetworkInterfaceId: &c, SecondaryPrivateIpAddressCount: aws.Int32(1)})
	wantAPIError(t, err, "PrivateIpAddressLimitExceeded")
	prim := e.filter(t, "attachment.device-index", "0")
	if len(prim) != 1 {
		t.Fatalf("primaries %v", prim)
	}
	_, err = e.c.AssignPrivateIpAddresses(ctx, &ec2.AssignPrivateIpAddressesInput{NetworkInterfaceId: &prim[0], PrivateIpAddresses: []string{"172.31.9.1", "172.31.9.2"}})
	wantAPIError(t, err, "PrivateIpAddressLimitExceeded")
	if _, err := e.c.AssignPrivateIpAddresses(ctx, &ec2.AssignPrivateIpAddressesInput{NetworkInterfaceId: &prim[0], PrivateIpAddresses: []string{"172.31.9.1"}}); err != nil {
		t.Fatal(err)
	}

	// Unassign.
	_, err = e.c.UnassignPrivateIpAddresses(ctx, &ec2.UnassignPrivateIpAddressesInput{NetworkInterfaceId: &aid, PrivateIpAddresses: []string{*a.PrivateIpAddress}})
	wantAPIError(t, err, "InvalidParameterValue")
	_, err = e.c.UnassignPrivateIpAddresses(ctx, &ec2.UnassignPrivateIpAddressesInput{NetworkInterfaceId: &aid, PrivateIpAddresses: []string{"172.31.8.2"}}) // b's now
	wantAPIError(t, err, "InvalidParameterValue")
	_, err = e.c.UnassignPrivateIpAddresses(ctx, &ec2.UnassignPrivateIpAddressesInput{NetworkInterfaceId: &aid, PrivateIpAddresses: []string{"bad"}})
	wantAPIError(t, err, "InvalidParameterValue")
	if _, err := e.c.UnassignPrivateIpAddresses(ctx, &ec2.UnassignPrivateIpAddressesInput{NetworkInterfaceId: &bid, PrivateIpAddresses: []string{"172.31.8.2"}}); err != nil {
		t.Fatal(err)
	}
	if _, bsec := addresses(e.describe(t, bid)); len(bsec) != 0 {
		t.Fatalf("b after unassign: %v", bsec)
	}
	if h := e.holder(t, "172.31.8.2"); h != "" {
		t.Fatalf("172.31.8.2 still held by %s", h)
	}
	// Free for anyone now, without AllowReassignment.
	if _, err := e.c.AssignPrivateIpAddresses(ctx, &ec2.AssignPrivateIpAddressesInput{NetworkInterfaceId: &aid, PrivateIpAddresses: []string{"172.31.8.2"}}); err != nil {
		t.Fatal(err)
	}
	// Several at once, one of which is not there: nothing changes.
	_, asec = addresses(e.describe(t, aid))
	_, err = e.c.UnassignPrivateIpAddresses(ctx, &ec2.UnassignPrivateIpAddressesInput{NetworkInterfaceId: &aid, PrivateIpAddresses: []string{asec[0], "172.31.10.10"}})
	wantAPIError(t, err, "InvalidParameterValue")
	if _, now := addresses(e.describe(t, aid)); !sameSet(now, asec) {
		t.Fatalf("a failed unassign changed %v to %v", asec, now)
	}
}

func TestENIModifyAttributeWithSDK(t *testing.T) {
	e := newENIEnv(t)
	ctx := tctx(t)
	web, db := e.group(t, "web"), e.group(t, "db")
	n := *e.create(t, nil).NetworkInterfaceId
	attr := func(a types.NetworkInterfaceAttribute, id string) *ec2.DescribeNetworkInterfaceAttributeOutput {
		t.Helper()
		out, err := e.c.DescribeNetworkInterfaceAttribute(ctx, &ec2.DescribeNetworkInterfaceAttributeInput{NetworkInterfaceId: &id, Attribute: a})
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToString(out.NetworkInterfaceId) != id {
			t.Fatalf("attribute of %v", out.NetworkInterfaceId)
		}
		return out
	}
	if out := attr(types.NetworkInterfaceAttributeDescription, n); out.Description == nil || aws.ToString(out.Description.Value) != "" || out.SourceDestCheck != nil || out.Groups != nil || out.Attachment != nil {
		t.Fatalf("description %+v", out)
	}
	if out := attr(types.NetworkInterfaceAttributeSourceDestCheck, n); out.SourceDestCheck == nil || !aws.ToBool(out.SourceDestCheck.Value) {
		t.Fatalf("sourceDestCheck %+v", out)
	}
	if out := attr(types.NetworkInterfaceAttributeAttachment, n); out.Attachment != nil {
		t.Fatalf("attachment of an available interface %+v", out.Attachment)
	}

	modify := func(in *ec2.ModifyNetworkInterfaceAttributeInput) error {
		_, err := e.c.ModifyNetworkInterfaceAttribute(ctx, in)
		return err
	}
	if err := modify(&ec2.ModifyNetworkInterfaceAttributeInput{NetworkInterfaceId: &n, Description: &types.AttributeValue{Value: aws.String("hello")}}); err != nil {
		t.Fatal(err)
	}
	if out := attr(types.NetworkInterfaceAttributeDescription, n); aws.ToString(out.Description.Value) != "hello" {
		t.Fatalf("description %+v", out.Description)
	}
	if err := modify(&ec2.ModifyNetworkInterfaceAttributeInput{NetworkInterfaceId: &n, SourceDestCheck: &types.AttributeBooleanValue{Value: aws.Bool(false)}}); err != nil {
		t.Fatal(err)
	}
	if out := attr(types.NetworkInterfaceAttributeSourceDestCheck, n); aws.ToBool(out.SourceDestCheck.Value) {
		t.Fatal("sourceDestCheck still true")
	}
	if got := e.filter(t, "source-dest-check", "false"); !slices.Equal(got, []string{n}) {
		t.Fatalf("source-dest-check=false: %v", got)
	}
	if err := modify(&ec2.ModifyNetworkInterfaceAttributeInput{NetworkInterfaceId: &n, Groups: []string{web, db}}); err != nil {
		t.Fatal(err)
	}
	if out := attr(types.NetworkInterfaceAttributeGroupSet, n); !slices.Equal(groupIDs(out.Groups), []string{web, db}) || aws.ToString(out.Groups[1].GroupName) != "db" {
		t.Fatalf("groupSet %+v", out.Groups)
	}
	if d := e.describe(t, n); aws.ToString(d.Description) != "hello" || aws.ToBool(d.SourceDestCheck) || !slices.Equal(groupIDs(d.Groups), []string{web, db}) {
		t.Fatalf("described %+v", d)
	}

	// Refusals and a dry run.
	wantAPIError(t, modify(&ec2.ModifyNetworkInterfaceAttributeInput{NetworkInterfaceId: &n, Description: &types.AttributeValue{Value: aws.String("x")},
		SourceDestCheck: &types.AttributeBooleanValue{Value: aws.Bool(true)}}), "InvalidParameterCombination")
	wantAPIError(t, modify(&ec2.ModifyNetworkInterfaceAttributeInput{NetworkInterfaceId: &n}), "MissingParameter")
	wantAPIError(t, modify(&ec2.ModifyNetworkInterfaceAttributeInput{NetworkInterfaceId: &n, Groups: []string{"sg-0123456789abcdef0"}}), "InvalidGroup.NotFound")
	wantAPIError(t, modify(&ec2.ModifyNetworkInterfaceAttributeInput{NetworkInterfaceId: aws.String("eni-0123456789abcdef0"), Description: &types.AttributeValue{Value: aws.String("x")}}), "InvalidNetworkInterfaceID.NotFound")
	wantAPIError(t, modify(&ec2.ModifyNetworkInterfaceAttributeInput{NetworkInterfaceId: &n, Attachment: &types.NetworkInterfaceAttachmentChanges{
		AttachmentId: aws.String("eni-attach-0123456789abcdef0"), DeleteOnTermination: aws.Bool(true)}}), "InvalidAttachmentID.NotFound")
	wantAPIError(t, modify(&ec2.ModifyNetworkInterfaceAttributeInput{NetworkInterfaceId: &n, Description: &types.AttributeValue{Value: aws.String("dry")}, DryRun: aws.Bool(true)}), "DryRunOperation")
	if out := attr(types.NetworkInterfaceAttributeDescription, n); aws.ToString(out.Description.Value) != "hello" {
		t.Fatalf("refusals changed the description to %q", aws.ToString(out.Description.Value))
	}
	_, err := e.c.DescribeNetworkInterfaceAttribute(ctx, &ec2.DescribeNetworkInterfaceAttributeInput{NetworkInterfaceId: &n, Attribute: "macAddress"})
	wantAPIError(t, err, "InvalidParameterValue")
	_, err = e.c.DescribeNetworkInterfaceAttribute(ctx, &ec2.DescribeNetworkInterfaceAttributeInput{NetworkInterfaceId: aws.String("eni-0123456789abcdef0"), Attribute: types.NetworkInterfaceAttributeDescription})
	wantAPIError(t, err, "InvalidNetworkInterfaceID.NotFound")

	// Attached: the attachment's DeleteOnTermination.
	in := e.running(t, types.InstanceTypeT3Micro)
	attOut, err := e.c.AttachNetworkInterface(ctx, &ec2.AttachNetworkInterfaceInput{NetworkInterfaceId: &n, InstanceId: in.InstanceId, DeviceIndex: aws.Int32(1)})
	if err != nil {
		t.Fatal(err)
	}
	if out := attr(types.NetworkInterfaceAttributeAttachment, n); out.Attachment == nil || aws.ToString(out.Attachment.AttachmentId) != *attOut.AttachmentId ||
		aws.ToBool(out.Attachment.DeleteOnTermination) || aws.ToInt32(out.Attachment.DeviceIndex) != 1 || aws.ToString(out.Attachment.InstanceId) != *in.InstanceId {
		t.Fatalf("attachment %+v", out.Attachment)
	}
	if err := modify(&ec2.ModifyNetworkInterfaceAttributeInput{NetworkInterfaceId: &n, Attachment: &types.NetworkInterfaceAttachmentChanges{
		AttachmentId: attOut.AttachmentId, DeleteOnTermination: aws.Bool(true)}}); err != nil {
		t.Fatal(err)
	}
	if out := attr(types.NetworkInterfaceAttributeAttachment, n); !aws.ToBool(out.Attachment.DeleteOnTermination) {
		t.Fatalf("attachment %+v", out.Attachment)
	}
	if got := e.filter(t, "attachment.delete-on-termination", "true"); len(got) != 2 || !slices.Contains(got, n) {
		t.Fatalf("delete-on-termination: %v", got)
	}
	// The primary's too.
	rec := e.instanceRecord(t, *in.InstanceId)
	primAtt := e.describe(t, rec.NetworkInterfaceID).Attachment
	if err := modify(&ec2.ModifyNetworkInterfaceAttributeInput{NetworkInterfaceId: &rec.NetworkInterfaceID, Attachment: &types.NetworkInterfaceAttachmentChanges{
		AttachmentId: primAtt.AttachmentId, DeleteOnTermination: aws.Bool(false)}}); err != nil {
		t.Fatal(err)
	}
	if out := attr(types.NetworkInterfaceAttributeAttachment, rec.NetworkInterfaceID); aws.ToBool(out.Attachment.DeleteOnTermination) {
		t.Fatalf("primary attachment %+v", out.Attachment)
	}
	// Another interface's attachment ID.
	wantAPIError(t, modify(&ec2.ModifyNetworkInterfaceAttributeInput{NetworkInterfaceId: &n, Attachment: &types.NetworkInterfaceAttachmentChanges{
		AttachmentId: primAtt.AttachmentId, DeleteOnTermination: aws.Bool(true)}}), "InvalidAttachmentID.NotFound")

	// The primary's groups are the instance's.
	if err := modify(&ec2.ModifyNetworkInterfaceAttributeInput{NetworkInterfaceId: &rec.NetworkInterfaceID, Groups: []string{web}}); err != nil {
		t.Fatal(err)
	}
	d := describeOne(t, e.c, *in.InstanceId)
	if len(d.SecurityGroups) != 1 || aws.ToString(d.SecurityGroups[0].GroupId) != web || aws.ToString(d.SecurityGroups[0].GroupName) != "web" {
		t.Fatalf("instance groups %+v", d.SecurityGroups)
	}
	if got := e.instanceRecord(t, *in.InstanceId); !slices.Equal(got.SecurityGroups, []string{web}) || got.State != instance.Running || got.NetworkInterfaceID != rec.NetworkInterfaceID {
		t.Fatalf("instance record groups %v state %s", got.SecurityGroups, got.State)
	}
	for _, ni := range d.NetworkInterfaces {
		if aws.ToString(ni.NetworkInterfaceId) == rec.NetworkInterfaceID && !slices.Equal(groupIDs(ni.Groups), []string{web}) {
			t.Fatalf("primary interface groups %+v", ni.Groups)
		}
	}
	// A secondary interface's groups are its own.
	if err := modify(&ec2.ModifyNetworkInterfaceAttributeInput{NetworkInterfaceId: &n, Groups: []string{db}}); err != nil {
		t.Fatal(err)
	}
	if d := describeOne(t, e.c, *in.InstanceId); len(d.SecurityGroups) != 1 || aws.ToString(d.SecurityGroups[0].GroupId) != web {
		t.Fatalf("instance groups after a secondary's change %+v", d.SecurityGroups)
	}
	// ModifyInstanceAttribute's groups reach the primary interface.
	if _, err := e.c.ModifyInstanceAttribute(ctx, &ec2.ModifyInstanceAttributeInput{InstanceId: in.InstanceId, Groups: []string{db, web}}); err != nil {
		t.Fatal(err)
	}
	if out := attr(types.NetworkInterfaceAttributeGroupSet, rec.NetworkInterfaceID); !sameSet(groupIDs(out.Groups), []string{web, db}) {
		t.Fatalf("primary groups after ModifyInstanceAttribute %+v", out.Groups)
	}
}

func TestENILaunchInterfacesWithSDK(t *testing.T) {
	e := newENIEnv(t)
	byIndex := func(ins types.Instance) map[int32]types.NetworkInterface {
		t.Helper()
		m := map[int32]types.NetworkInterface{}
		for _, id := range e.filter(t, "attachment.instance-id", *ins.InstanceId) {
			n := e.describe(t, id)
			m[aws.ToInt32(n.Attachment.DeviceIndex)] = n
		}
		return m
	}

	// An existing interface at DeviceIndex 1.
	x := e.create(t, &ec2.CreateNetworkInterfaceInput{Description: aws.String("extra")})
	xid := *x.NetworkInterfaceId
	ins, err := e.launch(t, types.InstanceTypeT3Micro, func(in *ec2.RunInstancesInput) {
		in.NetworkInterfaces = []types.InstanceNetworkInterfaceSpecification{{DeviceIndex: aws.Int32(0)}, {DeviceIndex: aws.Int32(1), NetworkInterfaceId: &xid}}
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(ins[0].NetworkInterfaces) != 2 {
		t.Fatalf("RunInstances networkInterfaceSet %+v", ins[0].NetworkInterfaces)
	}
	m := byIndex(ins[0])
	if len(m) != 2 || aws.ToString(m[1].NetworkInterfaceId) != xid || m[1].Status != types.NetworkInterfaceStatusInUse ||
		m[1].Attachment.Status != types.AttachmentStatusAttached || aws.ToString(m[1].Attachment.InstanceId) != *ins[0].InstanceId ||
		aws.ToString(m[1].PrivateIpAddress) != *x.PrivateIpAddress || aws.ToString(m[1].Description) != "extra" {
		t.Fatalf("interfaces %+v", m)
	}
	// EC2: DeleteOnTermination can be true only for an interface the launch makes.
	if aws.ToBool(m[1].Attachment.DeleteOnTermination) || !aws.ToBool(m[0].Attachment.DeleteOnTermination) {
		t.Fatalf("DeleteOnTermination: existing %v, primary %v", aws.ToBool(m[1].Attachment.DeleteOnTermination), aws.ToBool(m[0].Attachment.DeleteOnTermination))
	}
	if aws.ToString(m[0].PrivateIpAddress) != aws.ToString(ins[0].PrivateIpAddress) {
		t.Fatalf("primary %s, instance %s", aws.ToString(m[0].PrivateIpAddress), aws.ToString(ins[0].PrivateIpAddress))
	}
	// Taken now: another launch cannot have it.
	_, err = e.launch(t, types.InstanceTypeT3Micro, func(in *ec2.RunInstancesInput) {
		in.NetworkInterfaces = []types.InstanceNetworkInterfaceSpecification{{DeviceIndex: aws.Int32(0)}, {DeviceIndex: aws.Int32(1), NetworkInterfaceId: &xid}}
	})
	wantAPIError(t, err, "InvalidNetworkInterface.InUse")

	// A new interface at DeviceIndex 1 with a secondary address, and the primary with one too.
	ins, err = e.launch(t, types.InstanceTypeT3Micro, func(in *ec2.RunInstancesInput) {
		in.NetworkInterfaces = []types.InstanceNetworkInterfaceSpecification{
			{DeviceIndex: aws.Int32(0), SecondaryPrivateIpAddressCount: aws.Int32(1), Description: aws.String("eth0")},
			{DeviceIndex: aws.Int32(1), SecondaryPrivateIpAddressCount: aws.Int32(1), Description: aws.String("eth1")}}
	})
	if err != nil {
		t.Fatal(err)
	}
	m = byIndex(ins[0])
	p0, s0 := addresses(m[0])
	p1, s1 := addresses(m[1])
	if len(m) != 2 || p0 != aws.ToString(ins[0].PrivateIpAddress) || len(s0) != 1 || len(s1) != 1 || p1 == "" ||
		len(slices.Compact(slices.Sorted(slices.Values([]string{p0, s0[0], p1, s1[0]})))) != 4 {
		t.Fatalf("addresses %s %v, %s %v", p0, s0, p1, s1)
	}
	if aws.ToString(m[0].Description) != "eth0" || aws.ToString(m[1].Description) != "eth1" || aws.ToString(m[1].SubnetId) != e.subnet ||
		!aws.ToBool(m[1].Attachment.DeleteOnTermination) || m[1].Attachment.Status != types.AttachmentStatusAttached ||
		!slices.Equal(groupIDs(m[1].Groups), []string{e.defGroup}) || m[1].Association != nil || m[0].Association == nil {
		t.Fatalf("interfaces %+v", m)
	}
	for _, ip := range []string{p0, s0[0]} {
		if e.holder(t, ip) != *m[0].NetworkInterfaceId {
			t.Fatalf("%s held by %s", ip, e.holder(t, ip))
		}
	}
	for _, ip := range []string{p1, s1[0]} {
		if e.holder(t, ip) != *m[1].NetworkInterfaceId {
			t.Fatalf("%s held by %s", ip, e.holder(t, ip))
		}
	}
	if d := describeOne(t, e.c, *ins[0].InstanceId); len(d.NetworkInterfaces) != 2 || len(d.NetworkInterfaces[0].PrivateIpAddresses) != 2 {
		t.Fatalf("DescribeInstances interfaces %+v", d.NetworkInterfaces)
	}

	// Two instances, each with a new interface at DeviceIndex 1 of its own.
	web := e.group(t, "web")
	ins, err = e.launch(t, types.InstanceTypeT3Micro, func(in *ec2.RunInstancesInput) {
		in.MinCount, in.MaxCount = aws.Int32(2), aws.Int32(2)
		in.NetworkInterfaces = []types.InstanceNetworkInterfaceSpecification{{DeviceIndex: aws.Int32(0)}, {DeviceIndex: aws.Int32(1), Groups: []string{web}}}
	})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, in := range ins {
		m := byIndex(in)
		if len(m) != 2 || !slices.Equal(groupIDs(m[1].Groups), []string{web}) {
			t.Fatalf("interfaces of %s: %+v", *in.InstanceId, m)
		}
		for _, n := range m {
			for _, a := range n.PrivateIpAddresses {
				if seen[*a.PrivateIpAddress] {
					t.Fatalf("%s twice", *a.PrivateIpAddress)
				}
				seen[*a.PrivateIpAddress] = true
			}
		}
	}

	// An existing interface as the primary.
	y := e.create(t, &ec2.CreateNetworkInterfaceInput{Groups: []string{web}, PrivateIpAddress: aws.String("172.31.12.12")})
	ins, err = e.launch(t, types.InstanceTypeT3Micro, func(in *ec2.RunInstancesInput) {
		in.NetworkInterfaces = []types.InstanceNetworkInterfaceSpecification{{DeviceIndex: aws.Int32(0), NetworkInterfaceId: y.NetworkInterfaceId}}
	})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(ins[0].PrivateIpAddress) != "172.31.12.12" || len(ins[0].SecurityGroups) != 1 || aws.ToString(ins[0].SecurityGroups[0].GroupId) != web ||
		ins[0].PublicIpAddress != nil {
		t.Fatalf("instance on an existing primary %+v", ins[0])
	}
	if rec := e.instanceRecord(t, *ins[0].InstanceId); rec.NetworkInterfaceID != *y.NetworkInterfaceId || rec.MAC != *y.MacAddress {
		t.Fatalf("instance record %s %s", rec.NetworkInterfaceID, rec.MAC)
	}
	if d := e.describe(t, *y.NetworkInterfaceId); d.Attachment == nil || aws.ToInt32(d.Attachment.DeviceIndex) != 0 || aws.ToBool(d.Attachment.DeleteOnTermination) {
		t.Fatalf("existing primary %+v", d.Attachment)
	}

	// Refusals.
	z := *e.create(t, nil).NetworkInterfaceId
	far := *e.create(t, &ec2.CreateNetworkInterfaceInput{SubnetId: &e.otherAZ}).NetworkInterfaceId
	big := *e.create(t, &ec2.CreateNetworkInterfaceInput{SecondaryPrivateIpAddressCount: aws.Int32(2)}).NetworkInterfaceId
	for _, c := range []struct {
		name string
		f    func(*ec2.RunInstancesInput)
		code string
	}{
		{"existing with MaxCount 2", func(in *ec2.RunInstancesInput) {
			in.MaxCount = aws.Int32(2)
			in.NetworkInterfaces = []types.InstanceNetworkInterfaceSpecification{{DeviceIndex: aws.Int32(0)}, {DeviceIndex: aws.Int32(1), NetworkInterfaceId: &z}}
		}, "InvalidParameterCombination"},
		{"public address at 1", func(in *ec2.RunInstancesInput) {
			in.NetworkInterfaces = []types.InstanceNetworkInterfaceSpecification{{DeviceIndex: aws.Int32(0)}, {DeviceIndex: aws.Int32(1), AssociatePublicIpAddress: aws.Bool(true)}}
		}, "InvalidParameterCombination"},
		{"no primary", func(in *ec2.RunInstancesInput) {
			in.NetworkInterfaces = []types.InstanceNetworkInterfaceSpecification{{DeviceIndex: aws.Int32(1)}}
		}, "InvalidParameterValue"},
		{"an index twice", func(in *ec2.RunInstancesInput) {
			in.NetworkInterfaces = []types.InstanceNetworkInterfaceSpecification{{DeviceIndex: aws.Int32(0)}, {DeviceIndex: aws.Int32(1)}, {DeviceIndex: aws.Int32(1)}}
		}, "InvalidParameterValue"},
		{"too many interfaces", func(in *ec2.RunInstancesInput) {
			in.NetworkInterfaces = []types.InstanceNetworkInterfaceSpecification{{DeviceIndex: aws.Int32(0)}, {DeviceIndex: aws.Int32(1)}, {DeviceIndex: aws.Int32(2)}}
		}, "InterfaceLimitExceeded"},
		{"too many addresses on the primary", func(in *ec2.RunInstancesInput) {
			in.NetworkInterfaces = []types.InstanceNetworkInterfaceSpecification{{DeviceIndex: aws.Int32(0), SecondaryPrivateIpAddressCount: aws.Int32(2)}}
		}, "PrivateIpAddressLimitExceeded"},
		{"too many addresses at 1", func(in *ec2.RunInstancesInput) {
			in.NetworkInterfaces = []types.InstanceNetworkInterfaceSpecification{{DeviceIndex: aws.Int32(0)}, {DeviceIndex: aws.Int32(1), SecondaryPrivateIpAddressCount: aws.Int32(2)}}
		}, "PrivateIpAddressLimitExceeded"},
		{"another zone's interface", func(in *ec2.RunInstancesInput) {
			in.NetworkInterfaces = []types.InstanceNetworkInterfaceSpecification{{DeviceIndex: aws.Int32(0)}, {DeviceIndex: aws.Int32(1), NetworkInterfaceId: &far}}
		}, "InvalidParameterCombination"},
		{"another zone's subnet at 1", func(in *ec2.RunInstancesInput) {
			in.NetworkInterfaces = []types.InstanceNetworkInterfaceSpecification{{DeviceIndex: aws.Int32(0)}, {DeviceIndex: aws.Int32(1), SubnetId: &e.otherAZ}}
		}, "InvalidParameterCombination"},
		{"an interface ID with a subnet", func(in *ec2.RunInstancesInput) {
			in.NetworkInterfaces = []types.InstanceNetworkInterfaceSpecification{{DeviceIndex: aws.Int32(0)}, {DeviceIndex: aws.Int32(1), NetworkInterfaceId: &z, SubnetId: &e.subnet}}
		}, "InvalidParameterCombination"},
		{"unknown interface", func(in *ec2.RunInstancesInput) {
			in.NetworkInterfaces = []types.InstanceNetworkInterfaceSpecification{{DeviceIndex: aws.Int32(0)}, {DeviceIndex: aws.Int32(1), NetworkInterfaceId: aws.String("eni-0123456789abcdef0")}}
		}, "InvalidNetworkInterfaceID.NotFound"},
		{"malformed interface", func(in *ec2.RunInstancesInput) {
			in.NetworkInterfaces = []types.InstanceNetworkInterfaceSpecification{{DeviceIndex: aws.Int32(0)}, {DeviceIndex: aws.Int32(1), NetworkInterfaceId: aws.String("eni-zz")}}
		}, "InvalidNetworkInterfaceID.Malformed"},
		{"one interface twice", func(in *ec2.RunInstancesInput) {
			in.NetworkInterfaces = []types.InstanceNetworkInterfaceSpecification{{DeviceIndex: aws.Int32(0), NetworkInterfaceId: &z}, {DeviceIndex: aws.Int32(1), NetworkInterfaceId: &z}}
		}, "InvalidParameterValue"},
		{"an existing primary with too many addresses", func(in *ec2.RunInstancesInput) {
			in.NetworkInterfaces = []types.InstanceNetworkInterfaceSpecification{{DeviceIndex: aws.Int32(0), NetworkInterfaceId: &big}}
		}, "PrivateIpAddressLimitExceeded"},
		{"address in use at 1", func(in *ec2.RunInstancesInput) {
			in.NetworkInterfaces = []types.InstanceNetworkInterfaceSpecification{{DeviceIndex: aws.Int32(0)}, {DeviceIndex: aws.Int32(1), PrivateIpAddress: aws.String("172.31.12.12")}}
		}, "InvalidIPAddress.InUse"},
	} {
		before := e.filter(t, "vpc-id", e.vpcID)
		_, err := e.launch(t, types.InstanceTypeT3Micro, c.f)
		if err == nil {
			t.Fatalf("%s: launched", c.name)
		}
		t.Run(c.name, func(t *testing.T) { wantAPIError(t, err, c.code) })
		if after := e.filter(t, "vpc-id", e.vpcID); !sameSet(before, after) {
			t.Fatalf("%s: interfaces %v became %v", c.name, before, after)
		}
	}
	for _, id := range []string{z, big, far} {
		if d := e.describe(t, id); d.Attachment != nil {
			t.Fatalf("refused launches attached %s: %+v", id, d.Attachment)
		}
	}
}

// TestInstanceFiltersByInterface: DescribeInstances' network-interface.*
// filters look at every interface of an instance, not only eth0.
func TestInstanceFiltersByInterface(t *testing.T) {
	e := newENIEnv(t)
	in := e.running(t, types.InstanceTypeT3Medium)
	other := e.running(t, types.InstanceTypeT3Medium)
	n := e.create(t, &ec2.CreateNetworkInterfaceInput{SecondaryPrivateIpAddressCount: aws.Int32(1)})
	if _, err := e.c.AttachNetworkInterface(tctx(t), &ec2.AttachNetworkInterfaceInput{NetworkInterfaceId: n.NetworkInterfaceId,
		InstanceId: in.InstanceId, DeviceIndex: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	_, secondary := addresses(n)
	for name, value := range map[string]string{
		"network-interface.addresses.private-ip-address": secondary[0],
		"network-interface.network-interface-id":         aws.ToString(n.NetworkInterfaceId),
		"network-interface.mac-address":                  aws.ToString(n.MacAddress),
		"network-interface.attachment.device-index":      "1",
	} {
		out, err := e.c.DescribeInstances(tctx(t), &ec2.DescribeInstancesInput{Filters: []types.Filter{{Name: aws.String(name), Values: []string{value}}}})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, r := range out.Reservations {
			for _, i := range r.Instances {
				ids = append(ids, aws.ToString(i.InstanceId))
			}
		}
		if len(ids) != 1 || ids[0] != aws.ToString(in.InstanceId) {
			t.Errorf("%s=%s: %v, want only %s (not %s)", name, value, ids, aws.ToString(in.InstanceId), aws.ToString(other.InstanceId))
		}
	}
}

// TestInstanceSourceDestCheck: the instance's SourceDestCheck is its
// primary interface's, set through either API.
func TestInstanceSourceDestCheck(t *testing.T) {
	e := newENIEnv(t)
	in := e.running(t, types.InstanceTypeT3Micro)
	if _, err := e.c.ModifyInstanceAttribute(tctx(t), &ec2.ModifyInstanceAttributeInput{InstanceId: in.InstanceId,
		SourceDestCheck: &types.AttributeBooleanValue{Value: aws.Bool(false)}}); err != nil {
		t.Fatal(err)
	}
	d, err := e.c.DescribeInstances(tctx(t), &ec2.DescribeInstancesInput{InstanceIds: []string{aws.ToString(in.InstanceId)}})
	if err != nil {
		t.Fatal(err)
	}
	got := d.Reservations[0].Instances[0]
	if aws.ToBool(got.SourceDestCheck) || aws.ToBool(got.NetworkInterfaces[0].SourceDestCheck) {
		t.Fatalf("SourceDestCheck %v, interface %v; want false", aws.ToBool(got.SourceDestCheck), aws.ToBool(got.NetworkInterfaces[0].SourceDestCheck))
	}
	attr, err := e.c.DescribeInstanceAttribute(tctx(t), &ec2.DescribeInstanceAttributeInput{InstanceId: in.InstanceId, Attribute: types.InstanceAttributeNameSourceDestCheck})
	if err != nil || attr.SourceDestCheck == nil || aws.ToBool(attr.SourceDestCheck.Value) {
		t.Fatalf("DescribeInstanceAttribute sourceDestCheck: %+v %v", attr, err)
	}
	// A type that takes fewer addresses per interface than the instance's
	// interfaces have is refused.
	big := e.running(t, types.InstanceTypeT3Medium)
	n := e.create(t, &ec2.CreateNetworkInterfaceInput{SecondaryPrivateIpAddressCount: aws.Int32(3)})
	if _, err := e.c.AttachNetworkInterface(tctx(t), &ec2.AttachNetworkInterfaceInput{NetworkInterfaceId: n.NetworkInterfaceId,
		InstanceId: big.InstanceId, DeviceIndex: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	_, err = e.c.ModifyInstanceAttribute(tctx(t), &ec2.ModifyInstanceAttributeInput{InstanceId: big.InstanceId,
		InstanceType: &types.AttributeValue{Value: aws.String("t3.micro")}})
	wantAPIError(t, err, "InvalidParameterValue")
}

// TestENILaunchTagsAndReset: TagSpecification network-interface tags the
// interfaces a launch makes; ResetNetworkInterfaceAttribute turns the
// source/dest check back on.
func TestENILaunchTagsAndReset(t *testing.T) {
	e := newENIEnv(t)
	ins, err := e.launch(t, types.InstanceTypeT3Micro, func(in *ec2.RunInstancesInput) {
		in.TagSpecifications = []types.TagSpecification{{ResourceType: types.ResourceTypeNetworkInterface,
			Tags: []types.Tag{{Key: aws.String("role"), Value: aws.String("web")}}}}
	})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(ins[0].NetworkInterfaces[0].NetworkInterfaceId)
	if got := e.filter(t, "tag:role", "web"); len(got) != 1 || got[0] != id {
		t.Fatalf("interfaces tagged role=web: %v, want %s", got, id)
	}
	if _, err := e.c.ModifyNetworkInterfaceAttribute(tctx(t), &ec2.ModifyNetworkInterfaceAttributeInput{NetworkInterfaceId: aws.String(id),
		SourceDestCheck: &types.AttributeBooleanValue{Value: aws.Bool(false)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.ResetNetworkInterfaceAttribute(tctx(t), &ec2.ResetNetworkInterfaceAttributeInput{NetworkInterfaceId: aws.String(id),
		SourceDestCheck: aws.String("sourceDestCheck")}); err != nil {
		t.Fatal(err)
	}
	if n := e.describe(t, id); !aws.ToBool(n.SourceDestCheck) {
		t.Fatal("SourceDestCheck still off after the reset")
	}
}
