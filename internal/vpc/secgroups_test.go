package vpc

import (
	"context"
	"errors"
	"testing"

	"nubo/internal/apierr"
	"nubo/internal/resource"
	"nubo/internal/secgroup"
	"nubo/internal/store"
	"nubo/internal/store/storetest"
)

const account = "123456789012"

// newService is a VPC service on a fresh embedded etcd.
func newService(t *testing.T) *Service {
	t.Helper()
	st := storetest.New(t)
	return &Service{Store: st, Region: "us-east-1", Zones: []Zone{{Name: "us-east-1a", ID: "use1-az1"}}}
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if e, ok := apierr.As(err); !ok || e.Code != code {
		t.Fatalf("want %s, got %v", code, err)
	}
}

// groupsOf returns the groups of a VPC and checks their index entries.
func groupsOf(t *testing.T, s *Service, vpcID string) []secgroup.Group {
	t.Helper()
	ctx := context.Background()
	all, err := s.SecurityGroups(ctx, account)
	if err != nil {
		t.Fatal(err)
	}
	var out []secgroup.Group
	for _, g := range all {
		if g.VPCID != vpcID {
			continue
		}
		out = append(out, g)
		sc := s.scope(account)
		var id string
		if _, err := s.Store.Get(ctx, secgroup.NameKey(sc, vpcID, g.Name), &id); err != nil || id != g.ID {
			t.Errorf("name index of %s: %q, %v", g.ID, id, err)
		}
		for _, r := range g.Rules {
			if _, err := s.Store.Get(ctx, secgroup.RuleKey(sc, r.ID), &id); err != nil || id != g.ID {
				t.Errorf("rule index of %s: %q, %v", r.ID, id, err)
			}
		}
	}
	return out
}

func checkDefault(t *testing.T, gs []secgroup.Group, vpcID string) {
	t.Helper()
	if len(gs) != 1 {
		t.Fatalf("VPC %s has %d groups, want its default one", vpcID, len(gs))
	}
	g := gs[0]
	if g.Name != "default" || g.Owner != account || !resource.ValidID(resource.SecurityGroup, g.ID) || len(g.Rules) != 2 {
		t.Fatalf("default group: %+v", g)
	}
	in, out := g.Rules[0], g.Rules[1]
	if in.Egress || in.GroupID != g.ID || in.Protocol != "-1" || !out.Egress || out.CIDRv4 != "0.0.0.0/0" {
		t.Errorf("default rules: %+v", g.Rules)
	}
}

func TestCreateVPCMakesItsDefaultSecurityGroup(t *testing.T) {
	s := newService(t)
	ctx := context.Background()
	v, err := s.CreateVPC(ctx, account, "10.0.0.0/16", nil, false)
	if err != nil {
		t.Fatal(err)
	}
	checkDefault(t, groupsOf(t, s, v.ID), v.ID)
	g, _, err := s.DefaultSecurityGroup(ctx, account, v.ID)
	if err != nil || g.VPCID != v.ID {
		t.Fatalf("DefaultSecurityGroup: %+v, %v", g, err)
	}
}

func TestDefaultVPCHasADefaultSecurityGroup(t *testing.T) {
	s := newService(t)
	v, err := s.DefaultVPC(context.Background(), account)
	if err != nil {
		t.Fatal(err)
	}
	checkDefault(t, groupsOf(t, s, v.ID), v.ID)
}

func TestDeleteVPCTakesItsDefaultSecurityGroup(t *testing.T) {
	s := newService(t)
	ctx := context.Background()
	v, err := s.CreateVPC(ctx, account, "10.0.0.0/16", nil, false)
	if err != nil {
		t.Fatal(err)
	}
	g := groupsOf(t, s, v.ID)[0]
	if err := s.DeleteVPC(ctx, account, v.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.SecurityGroup(ctx, account, g.ID); err == nil {
		t.Fatal("the default group outlived its VPC")
	}
	sc := s.scope(account)
	keys := []string{secgroup.NameKey(sc, v.ID, "default")}
	for _, r := range g.Rules {
		keys = append(keys, secgroup.RuleKey(sc, r.ID))
	}
	for _, k := range keys {
		var id string
		if _, err := s.Store.Get(ctx, k, &id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s left behind: %q, %v", k, id, err)
		}
	}
}

func TestDeleteVPCWithAnotherSecurityGroupIsADependencyViolation(t *testing.T) {
	s := newService(t)
	ctx := context.Background()
	v, err := s.CreateVPC(ctx, account, "10.0.0.0/16", nil, false)
	if err != nil {
		t.Fatal(err)
	}
	web := secgroup.Group{Meta: resource.Meta{ID: resource.NewID(resource.SecurityGroup)}, Name: "web", VPCID: v.ID, Owner: account,
		Rules: []secgroup.Rule{secgroup.AllEgress()}}
	sc := s.scope(account)
	key := resource.Key(sc, resource.SecurityGroup, web.ID)
	if err := s.Store.Apply(ctx, store.Op{Key: key, Value: web}, store.Op{Key: secgroup.NameKey(sc, v.ID, web.Name), Value: web.ID},
		store.Op{Key: secgroup.RuleKey(sc, web.Rules[0].ID), Value: web.ID}); err != nil {
		t.Fatal(err)
	}
	err = s.DeleteVPC(ctx, account, v.ID)
	wantCode(t, err, "DependencyViolation")
	if _, err := s.GetVPC(ctx, account, v.ID); err != nil {
		t.Fatalf("the VPC went: %v", err)
	}
	if len(groupsOf(t, s, v.ID)) != 2 {
		t.Fatal("a refused DeleteVpc changed the groups")
	}
	if err := s.Store.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteVPC(ctx, account, v.ID); err != nil {
		t.Fatal(err)
	}
}

func TestDefaultSecurityGroupOfAnOlderVPCIsMadeOnFirstUse(t *testing.T) {
	s := newService(t)
	ctx := context.Background()
	v, err := s.CreateVPC(ctx, account, "10.0.0.0/16", nil, false)
	if err != nil {
		t.Fatal(err)
	}
	// As a VPC recorded before nubo had security groups.
	g, grev, err := s.DefaultSecurityGroup(ctx, account, v.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Store.Apply(ctx, s.groupDeleteOps(account, g, grev)...); err != nil {
		t.Fatal(err)
	}
	again, _, err := s.DefaultSecurityGroup(ctx, account, v.ID)
	if err != nil {
		t.Fatal(err)
	}
	if again.ID == g.ID {
		t.Fatal("the deleted group came back")
	}
	checkDefault(t, groupsOf(t, s, v.ID), v.ID)
	_, _, err = s.DefaultSecurityGroup(ctx, account, "vpc-0123456789abcdef0")
	wantCode(t, err, "InvalidVpcID.NotFound")
}

func TestSecurityGroupErrors(t *testing.T) {
	s := newService(t)
	ctx := context.Background()
	_, _, err := s.SecurityGroup(ctx, account, "sg-nothex")
	wantCode(t, err, "InvalidGroupId.Malformed")
	_, _, err = s.SecurityGroup(ctx, account, "sg-0123456789abcdef0")
	wantCode(t, err, "InvalidGroup.NotFound")
	if _, _, err := s.SecurityGroupByName(ctx, account, "vpc-0123456789abcdef0", "web"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown name: %v", err)
	}
}
