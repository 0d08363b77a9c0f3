package instance

import (
	"context"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"nubo/internal/ami"
	"nubo/internal/apierr"
	"nubo/internal/keypair"
	"nubo/internal/resource"
	"nubo/internal/secgroup"
	"nubo/internal/store"
	"nubo/internal/store/storetest"
	"nubo/internal/topology"
	"nubo/internal/topology/topologytest"
	"nubo/internal/vpc"
)

const account = "123456789012"

// newService is an instance service on a fresh embedded etcd, with one
// image and a host with room for many instances.
func newService(t *testing.T) (*Service, string) {
	t.Helper()
	return newServiceOn(t, topology.Layout{Zones: []string{"us-east-1a"}, VCPUs: 64})
}

// newServiceOn is newService on machine h1 serving layout l.
func newServiceOn(t *testing.T, l topology.Layout) (*Service, string) {
	t.Helper()
	st := storetest.New(t)
	ctx := context.Background()
	reg := &ami.Registry{Store: st, Region: "us-east-1"}
	im := ami.Image{Meta: resource.Meta{ID: "ami-0123456789abcdef0"}, Name: "test", Architecture: "x86_64",
		RootDevice: "/dev/xvda", SizeGiB: 8, State: "available", Location: "test", Init: []string{"/sbin/init"}, UIDBase: 100000}
	if err := reg.EnsurePublic(ctx, im); err != nil {
		t.Fatal(err)
	}
	topologytest.Serve(t, st, "us-east-1", "h1", l)
	var zones []vpc.Zone
	for i, z := range l.Zones {
		zones = append(zones, vpc.Zone{Name: z, ID: fmt.Sprintf("use1-az%d", i+1)})
	}
	return &Service{Store: st, Region: "us-east-1", Zones: l.Zones, Images: reg, KeyPairs: &keypair.Service{Store: st},
		VPCs:   &vpc.Service{Store: st, Region: "us-east-1", Zones: zones},
		Public: &vpc.PublicPool{Store: st, Prefix: netip.MustParsePrefix("198.18.0.0/24")}}, im.ID
}

func spec(image string, f func(*RunSpec)) RunSpec {
	s := RunSpec{ImageID: image, InstanceType: "t3.micro", MinCount: 1, MaxCount: 1, ShutdownBehavior: "stop"}
	if f != nil {
		f(&s)
	}
	return s
}

// putGroup records a security group (as CreateSecurityGroup does) and
// returns its ID.
func putGroup(t *testing.T, s *Service, vpcID, name string) string {
	t.Helper()
	g := secgroup.Group{Meta: resource.Meta{ID: resource.NewID(resource.SecurityGroup)}, Name: name, VPCID: vpcID, Owner: account,
		Rules: []secgroup.Rule{secgroup.AllEgress()}}
	sc := s.scope(account)
	err := s.Store.Apply(context.Background(),
		store.Op{Key: resource.Key(sc, resource.SecurityGroup, g.ID), Value: g},
		store.Op{Key: secgroup.NameKey(sc, vpcID, name), Value: g.ID},
		store.Op{Key: secgroup.RuleKey(sc, g.Rules[0].ID), Value: g.ID})
	if err != nil {
		t.Fatal(err)
	}
	return g.ID
}

func wantError(t *testing.T, err error, code, inMessage string) {
	t.Helper()
	e, ok := apierr.As(err)
	if !ok || e.Code != code || !strings.Contains(e.Message, inMessage) {
		t.Fatalf("want %s (…%s…), got %v", code, inMessage, err)
	}
}

func TestRunGivesTheVPCsDefaultGroup(t *testing.T) {
	s, image := newService(t)
	ctx := context.Background()
	res, err := s.Run(ctx, account, spec(image, nil))
	if err != nil {
		t.Fatal(err)
	}
	def, err := s.VPCs.DefaultVPC(ctx, account)
	if err != nil {
		t.Fatal(err)
	}
	g, _, err := s.VPCs.DefaultSecurityGroup(ctx, account, def.ID)
	if err != nil {
		t.Fatal(err)
	}
	in, err := s.Get(ctx, account, res.Instances[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{g.ID}; !reflect.DeepEqual(in.SecurityGroups, want) || !reflect.DeepEqual(res.Instances[0].SecurityGroups, want) {
		t.Fatalf("groups %v (answered %v), want %v", in.SecurityGroups, res.Instances[0].SecurityGroups, want)
	}
}

func TestRunSecurityGroups(t *testing.T) {
	s, image := newService(t)
	ctx := context.Background()
	def, err := s.VPCs.DefaultVPC(ctx, account)
	if err != nil {
		t.Fatal(err)
	}
	v, err := s.VPCs.CreateVPC(ctx, account, "10.0.0.0/16", nil, false)
	if err != nil {
		t.Fatal(err)
	}
	sn, err := s.VPCs.CreateSubnet(ctx, account, v.ID, "10.0.1.0/24", "", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	web, db := putGroup(t, s, v.ID, "web"), putGroup(t, s, v.ID, "db")
	defWeb := putGroup(t, s, def.ID, "web")
	defDefault, _, err := s.VPCs.DefaultSecurityGroup(ctx, account, def.ID)
	if err != nil {
		t.Fatal(err)
	}
	vDefault, _, err := s.VPCs.DefaultSecurityGroup(ctx, account, v.ID)
	if err != nil {
		t.Fatal(err)
	}
	var five []string
	for i := 0; i < 5; i++ {
		five = append(five, putGroup(t, s, v.ID, "g"+string(rune('a'+i))))
	}

	for _, tc := range []struct {
		name   string
		spec   func(*RunSpec)
		want   []string
		code   string
		inText string
	}{
		{"none: the VPC's default", func(r *RunSpec) { r.SubnetID = sn.ID }, []string{vDefault.ID}, "", ""},
		{"IDs in order, duplicates collapsed", func(r *RunSpec) { r.SubnetID, r.SecurityGroupIDs = sn.ID, []string{db, web, db} }, []string{db, web}, "", ""},
		{"five", func(r *RunSpec) { r.SubnetID, r.SecurityGroupIDs = sn.ID, five }, five, "", ""},
		{"names in the default VPC", func(r *RunSpec) { r.SecurityGroupNames = []string{"web", "default"} }, []string{defWeb, defDefault.ID}, "", ""},
		{"an ID and its name are one group", func(r *RunSpec) { r.SecurityGroupIDs, r.SecurityGroupNames = []string{defWeb}, []string{"web"} }, []string{defWeb}, "", ""},
		{"six", func(r *RunSpec) { r.SubnetID, r.SecurityGroupIDs = sn.ID, append([]string{web}, five...) }, nil,
			"SecurityGroupsPerInstanceLimitExceeded", "6"},
		{"unknown ID", func(r *RunSpec) { r.SubnetID, r.SecurityGroupIDs = sn.ID, []string{"sg-0123456789abcdef0"} }, nil,
			"InvalidGroup.NotFound", "The security group 'sg-0123456789abcdef0' does not exist in VPC '" + v.ID + "'"},
		{"malformed ID", func(r *RunSpec) { r.SubnetID, r.SecurityGroupIDs = sn.ID, []string{"sg-xyz"} }, nil, "InvalidGroupId.Malformed", "sg-xyz"},
		{"another VPC's group", func(r *RunSpec) { r.SubnetID, r.SecurityGroupIDs = sn.ID, []string{defWeb} }, nil,
			"InvalidParameter", "Security group " + defWeb + " and subnet " + sn.ID + " belong to different networks."},
		{"names outside the default VPC", func(r *RunSpec) { r.SubnetID, r.SecurityGroupNames = sn.ID, []string{"web"} }, nil,
			"InvalidParameterCombination", "The parameter groupName cannot be used with the parameter subnet"},
		{"unknown name", func(r *RunSpec) { r.SecurityGroupNames = []string{"db"} }, nil,
			"InvalidGroup.NotFound", "The security group 'db' does not exist in default VPC '" + def.ID + "'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := s.Run(ctx, account, spec(image, tc.spec))
			if tc.code != "" {
				wantError(t, err, tc.code, tc.inText)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			in, err := s.Get(ctx, account, res.Instances[0].ID)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(in.SecurityGroups, tc.want) {
				t.Fatalf("groups %v, want %v", in.SecurityGroups, tc.want)
			}
		})
	}
}

func TestSetSecurityGroups(t *testing.T) {
	s, image := newService(t)
	ctx := context.Background()
	def, err := s.VPCs.DefaultVPC(ctx, account)
	if err != nil {
		t.Fatal(err)
	}
	web, db := putGroup(t, s, def.ID, "web"), putGroup(t, s, def.ID, "db")
	other, err := s.VPCs.CreateVPC(ctx, account, "10.0.0.0/16", nil, false)
	if err != nil {
		t.Fatal(err)
	}
	foreign := putGroup(t, s, other.ID, "web")
	res, err := s.Run(ctx, account, spec(image, nil))
	if err != nil {
		t.Fatal(err)
	}
	id := res.Instances[0].ID

	if err := s.SetSecurityGroups(ctx, account, id, []string{web, db, web}); err != nil {
		t.Fatal(err)
	}
	in, err := s.Get(ctx, account, id)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{web, db}; !reflect.DeepEqual(in.SecurityGroups, want) {
		t.Fatalf("groups %v, want %v", in.SecurityGroups, want)
	}
	wantError(t, s.SetSecurityGroups(ctx, account, id, nil), "MissingParameter", "GroupId")
	wantError(t, s.SetSecurityGroups(ctx, account, id, []string{foreign}), "InvalidParameter", "belong to different networks")
	wantError(t, s.SetSecurityGroups(ctx, account, id, []string{"sg-0123456789abcdef0"}), "InvalidGroup.NotFound", def.ID)
	wantError(t, s.SetSecurityGroups(ctx, account, "i-0123456789abcdef0", []string{web}), "InvalidInstanceID.NotFound", "")

	// Stopped instances change groups too; terminated ones do not.
	if _, err := s.Stop(ctx, account, []string{id}, false); err != nil {
		t.Fatal(err)
	}
	if err := s.SetSecurityGroups(ctx, account, id, []string{db}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Terminate(ctx, account, []string{id}); err != nil {
		t.Fatal(err)
	}
	wantError(t, s.SetSecurityGroups(ctx, account, id, []string{web}), "IncorrectInstanceState", id)
	if in, _ = s.Get(ctx, account, id); !reflect.DeepEqual(in.SecurityGroups, []string{db}) {
		t.Fatalf("groups after refusals: %v", in.SecurityGroups)
	}
}

// The checks a launch writes with fail once a group changes (the launch
// then decides again); a launch with a group gone fails.
func TestRunChecksTheGroupsItWrites(t *testing.T) {
	s, image := newService(t)
	ctx := context.Background()
	def, err := s.VPCs.DefaultVPC(ctx, account)
	if err != nil {
		t.Fatal(err)
	}
	web := putGroup(t, s, def.ID, "web")
	sn, err := s.VPCs.Subnets(ctx, account)
	if err != nil {
		t.Fatal(err)
	}
	ids, checks, err := s.groups(ctx, account, sn[0], []string{web}, nil)
	if err != nil || !reflect.DeepEqual(ids, []string{web}) || len(checks) != 1 {
		t.Fatalf("groups: %v %v %v", ids, checks, err)
	}
	key := resource.Key(s.scope(account), resource.SecurityGroup, web)
	if _, err := store.Update(ctx, s.Store, key, func(g *secgroup.Group) error { g.Description = "changed"; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := s.Store.Apply(ctx, checks...); err != store.ErrConflict {
		t.Fatalf("a check on a changed group passed: %v", err)
	}
	if err := s.Store.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	_, err = s.Run(ctx, account, spec(image, func(r *RunSpec) { r.SecurityGroupIDs = []string{web} }))
	wantError(t, err, "InvalidGroup.NotFound", web)
}
