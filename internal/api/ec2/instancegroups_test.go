package ec2

import (
	"bytes"
	"context"
	"encoding/xml"
	"maps"
	"net/netip"
	"net/url"
	"reflect"
	"testing"

	"nubo/internal/ami"
	"nubo/internal/api/ec2query"
	"nubo/internal/apierr"
	"nubo/internal/instance"
	"nubo/internal/keypair"
	"nubo/internal/resource"
	"nubo/internal/secgroup"
	"nubo/internal/store"
	"nubo/internal/store/storetest"
	"nubo/internal/topology"
	"nubo/internal/topology/topologytest"
	"nubo/internal/vpc"
)

// igEnv is the API over real services on a fresh embedded etcd, for the
// instance actions' security groups.
type igEnv struct {
	a       *API
	account string
	image   string
}

func newIGEnv(t *testing.T) *igEnv {
	t.Helper()
	st := storetest.New(t)
	ctx := context.Background()
	reg := &ami.Registry{Store: st, Region: "us-east-1"}
	im := ami.Image{Meta: resource.Meta{ID: "ami-0123456789abcdef0"}, Name: "test", Architecture: "x86_64",
		RootDevice: "/dev/xvda", SizeGiB: 8, State: "available", Location: "test", Init: []string{"/sbin/init"}, UIDBase: 100000}
	if err := reg.EnsurePublic(ctx, im); err != nil {
		t.Fatal(err)
	}
	topologytest.Serve(t, st, "us-east-1", "h1", topology.Layout{Zones: []string{"us-east-1a"}, VCPUs: 64})
	region := NewRegion("us-east-1", "http://localhost", []string{"a"})
	vpcs := &vpc.Service{Store: st, Region: region.Name, Zones: []vpc.Zone{{Name: "us-east-1a", ID: "use1-az1"}}}
	kps := &keypair.Service{Store: st}
	return &igEnv{account: "123456789012", image: im.ID, a: &API{Region: region, KeyPairs: kps, Images: reg, VPCs: vpcs,
		Instances: &instance.Service{Store: st, Region: region.Name, Zones: []string{"us-east-1a"}, Images: reg, KeyPairs: kps,
			VPCs: vpcs, Public: &vpc.PublicPool{Store: st, Prefix: netip.MustParsePrefix("198.18.0.0/24")}}}}
}

// call runs a handler and decodes its XML answer into out (when non-nil).
func (v *igEnv) call(t *testing.T, h ec2query.Handler, params map[string]string, out any) error {
	t.Helper()
	vals := url.Values{}
	for k, x := range params {
		vals.Set(k, x)
	}
	body, err := h(context.Background(), &ec2query.Request{Account: v.account, Params: ec2query.NewParams(vals)})
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := xml.NewEncoder(&buf).EncodeElement(body, xml.StartElement{Name: xml.Name{Local: "x"}}); err != nil {
		t.Fatal(err)
	}
	if out != nil {
		if err := xml.Unmarshal(buf.Bytes(), out); err != nil {
			t.Fatalf("decoding %s: %v", buf.Bytes(), err)
		}
	}
	return nil
}

// group records a security group (as CreateSecurityGroup does).
func (v *igEnv) group(t *testing.T, vpcID, name string) string {
	t.Helper()
	g := secgroup.Group{Meta: resource.Meta{ID: resource.NewID(resource.SecurityGroup)}, Name: name, VPCID: vpcID, Owner: v.account,
		Rules: []secgroup.Rule{secgroup.AllEgress()}}
	sc := resource.Scope{Account: v.account, Region: v.a.Region.Name}
	err := v.a.Instances.Store.Apply(context.Background(),
		store.Op{Key: resource.Key(sc, resource.SecurityGroup, g.ID), Value: g},
		store.Op{Key: secgroup.NameKey(sc, vpcID, name), Value: g.ID},
		store.Op{Key: secgroup.RuleKey(sc, g.Rules[0].ID), Value: g.ID})
	if err != nil {
		t.Fatal(err)
	}
	return g.ID
}

type igInstance struct {
	ID     string          `xml:"instanceId"`
	Groups []instanceGroup `xml:"groupSet>item"`
}

type igRunOut struct {
	Instances []igInstance `xml:"instancesSet>item"`
}

type igDescribeOut struct {
	Reservations []struct {
		Groups    []instanceGroup `xml:"groupSet>item"`
		Instances []igInstance    `xml:"instancesSet>item"`
	} `xml:"reservationSet>item"`
}

func (v *igEnv) run(t *testing.T, params map[string]string) igInstance {
	t.Helper()
	p := map[string]string{"ImageId": v.image, "InstanceType": "t3.micro", "MinCount": "1", "MaxCount": "1"}
	for k, x := range params {
		p[k] = x
	}
	var out igRunOut
	if err := v.call(t, v.a.runInstances, p, &out); err != nil {
		t.Fatal(err)
	}
	return out.Instances[0]
}

func wantAPICode(t *testing.T, err error, code string) {
	t.Helper()
	if e, ok := apierr.As(err); !ok || e.Code != code {
		t.Fatalf("want %s, got %v", code, err)
	}
}

func TestInstanceGroupSets(t *testing.T) {
	v := newIGEnv(t)
	ctx := context.Background()
	def, err := v.a.VPCs.DefaultVPC(ctx, v.account)
	if err != nil {
		t.Fatal(err)
	}
	defGroup, _, err := v.a.VPCs.DefaultSecurityGroup(ctx, v.account, def.ID)
	if err != nil {
		t.Fatal(err)
	}
	web, db := v.group(t, def.ID, "web"), v.group(t, def.ID, "db")

	plain := v.run(t, nil)
	if want := []instanceGroup{{defGroup.ID, "default"}}; !reflect.DeepEqual(plain.Groups, want) {
		t.Fatalf("RunInstances groupSet %v, want %v", plain.Groups, want)
	}
	both := v.run(t, map[string]string{"SecurityGroupId.1": web, "SecurityGroup.1": "db"})
	if want := []instanceGroup{{web, "web"}, {db, "db"}}; !reflect.DeepEqual(both.Groups, want) {
		t.Fatalf("RunInstances groupSet %v, want %v", both.Groups, want)
	}
	eni := v.run(t, map[string]string{"NetworkInterface.1.DeviceIndex": "0", "NetworkInterface.1.SecurityGroupId.1": db})
	if want := []instanceGroup{{db, "db"}}; !reflect.DeepEqual(eni.Groups, want) {
		t.Fatalf("network interface groups %v, want %v", eni.Groups, want)
	}

	var out igDescribeOut
	if err := v.call(t, v.a.describeInstances, map[string]string{"InstanceId.1": both.ID}, &out); err != nil {
		t.Fatal(err)
	}
	r := out.Reservations[0]
	if len(r.Groups) != 0 || !reflect.DeepEqual(r.Instances[0].Groups, both.Groups) {
		t.Fatalf("DescribeInstances: reservation groups %v, instance groups %v", r.Groups, r.Instances[0].Groups)
	}

	for _, tc := range []struct {
		filter, value string
		want          []string
	}{
		{"instance.group-id", db, []string{both.ID, eni.ID}},
		{"instance.group-name", "default", []string{plain.ID}},
		{"instance.group-name", "w*", []string{both.ID}},
		{"group-id", defGroup.ID, []string{plain.ID}},
		{"group-name", "db", []string{both.ID, eni.ID}},
		{"network-interface.group-name", "nothing", nil},
	} {
		var out igDescribeOut
		err := v.call(t, v.a.describeInstances, map[string]string{"Filter.1.Name": tc.filter, "Filter.1.Value.1": tc.value}, &out)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range out.Reservations {
			for _, in := range r.Instances {
				got = append(got, in.ID)
			}
		}
		want := append([]string(nil), tc.want...)
		if len(want) > 1 && want[0] > want[1] {
			want[0], want[1] = want[1], want[0]
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s=%s: %v, want %v", tc.filter, tc.value, got, want)
		}
	}
}

// merged is base with extra's parameters added (or replaced).
func merged(base, extra map[string]string) map[string]string {
	p := maps.Clone(base)
	maps.Copy(p, extra)
	return p
}

func TestRunInstancesGroupParameters(t *testing.T) {
	v := newIGEnv(t)
	base := map[string]string{"ImageId": v.image, "InstanceType": "t3.micro", "MinCount": "1", "MaxCount": "1"}
	for _, tc := range []struct {
		params map[string]string
		code   string
	}{
		{map[string]string{"SecurityGroupId.1": "sg-12"}, "InvalidGroupId.Malformed"},
		{map[string]string{"SecurityGroupId.1": ""}, apierr.InvalidParameterValue},
		{map[string]string{"SecurityGroup.1": ""}, apierr.InvalidParameterValue},
		{map[string]string{"NetworkInterface.1.DeviceIndex": "0", "NetworkInterface.1.SecurityGroupId.1": "bad"}, "InvalidGroupId.Malformed"},
		{map[string]string{"NetworkInterface.1.SecurityGroupId.1": "sg-0123456789abcdef0"}, apierr.MissingParameter},
		{map[string]string{"SecurityGroupId.1": "sg-0123456789abcdef0", "NetworkInterface.1.DeviceIndex": "0"}, apierr.InvalidParameterCombination},
		{map[string]string{"SecurityGroupId.1": "sg-0123456789abcdef0"}, "InvalidGroup.NotFound"},
	} {
		wantAPICode(t, v.call(t, v.a.runInstances, merged(base, tc.params), nil), tc.code)
	}
}

func TestInstanceAttributeGroupSet(t *testing.T) {
	v := newIGEnv(t)
	ctx := context.Background()
	def, err := v.a.VPCs.DefaultVPC(ctx, v.account)
	if err != nil {
		t.Fatal(err)
	}
	web, db := v.group(t, def.ID, "web"), v.group(t, def.ID, "db")
	in := v.run(t, nil)

	modify := func(p map[string]string) error {
		p["InstanceId"] = in.ID
		return v.call(t, v.a.modifyInstanceAttribute, p, nil)
	}
	if err := modify(map[string]string{"GroupId.1": db, "GroupId.2": web}); err != nil {
		t.Fatal(err)
	}
	var out struct {
		Groups []instanceGroup `xml:"groupSet>item"`
	}
	if err := v.call(t, v.a.describeInstanceAttribute, map[string]string{"InstanceId": in.ID, "Attribute": "groupSet"}, &out); err != nil {
		t.Fatal(err)
	}
	if want := []instanceGroup{{GroupID: db}, {GroupID: web}}; !reflect.DeepEqual(out.Groups, want) {
		t.Fatalf("groupSet attribute %v, want %v", out.Groups, want)
	}
	wantAPICode(t, modify(map[string]string{"Attribute": "groupSet"}), apierr.MissingParameter)
	wantAPICode(t, modify(map[string]string{"GroupId.1": "sg-bad"}), "InvalidGroupId.Malformed")
	wantAPICode(t, modify(map[string]string{"GroupId.1": web, "DisableApiTermination.Value": "true"}), apierr.InvalidParameterCombination)
	var six = map[string]string{}
	for i := 1; i <= 6; i++ {
		six["GroupId."+string(rune('0'+i))] = v.group(t, def.ID, "g"+string(rune('0'+i)))
	}
	wantAPICode(t, modify(six), "SecurityGroupsPerInstanceLimitExceeded")
}

// TestRunInstancesPlacementRefused: what Placement asks that nubo has not
// (unknown groups, Dedicated Hosts) is refused, never ignored.
func TestRunInstancesPlacementRefused(t *testing.T) {
	v := newIGEnv(t)
	base := map[string]string{"ImageId": v.image, "MinCount": "1", "MaxCount": "1", "InstanceType": "t3.micro"}
	for _, tc := range []struct {
		params map[string]string
		code   string
	}{
		{map[string]string{"Placement.GroupName": "db"}, "InvalidPlacementGroup.Unknown"},
		{map[string]string{"Placement.GroupId": "pg-0123456789abcdef0"}, "InvalidPlacementGroup.Unknown"},
		{map[string]string{"Placement.PartitionNumber": "1"}, apierr.InvalidParameterCombination},
		{map[string]string{"Placement.Tenancy": "host"}, apierr.UnsupportedOperation},
		{map[string]string{"Placement.HostId": "h-0123456789abcdef0"}, apierr.UnsupportedOperation},
		{map[string]string{"Placement.Tenancy": "shared"}, apierr.InvalidParameterValue},
	} {
		wantAPICode(t, v.call(t, v.a.runInstances, merged(base, tc.params), nil), tc.code)
	}
	p := merged(base, map[string]string{"Placement.Tenancy": "default", "Placement.AvailabilityZone": "us-east-1a"})
	if err := v.call(t, v.a.runInstances, p, nil); err != nil {
		t.Fatalf("default tenancy: %v", err)
	}
}

// TestRunInstancesAddressesByValueNeedOne: addresses given by value are
// for one instance only.
func TestRunInstancesAddressesByValueNeedOne(t *testing.T) {
	v := newIGEnv(t)
	for _, extra := range []map[string]string{
		{"NetworkInterface.1.DeviceIndex": "0", "NetworkInterface.1.PrivateIpAddresses.1.PrivateIpAddress": "172.31.0.50"},
		{"NetworkInterface.1.DeviceIndex": "0", "NetworkInterface.2.DeviceIndex": "1", "NetworkInterface.2.PrivateIpAddress": "172.31.0.51"},
	} {
		p := merged(map[string]string{"ImageId": v.image, "MinCount": "2", "MaxCount": "2", "InstanceType": "t3.micro"}, extra)
		wantAPICode(t, v.call(t, v.a.runInstances, p, nil), apierr.InvalidParameterCombination)
	}
}
