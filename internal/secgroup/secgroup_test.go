package secgroup_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"nubo/internal/apierr"
	"nubo/internal/resource"
	"nubo/internal/secgroup"
	"nubo/internal/store"
	"nubo/internal/store/storetest"
)

var sc = resource.Scope{Account: "123456789012", Region: "us-east-1"}

// env is a real embedded etcd with two VPCs written as bare records: the
// default VPC (with its default group) and another one.
type env struct {
	st                 *store.Store
	svc                *secgroup.Service
	defVPC, otherVPC   string
	defGroup, defOther secgroup.Group
}

func newEnv(t *testing.T) *env {
	t.Helper()
	st := storetest.New(t)
	v := &env{st: st, defVPC: resource.NewID(resource.VPC), otherVPC: resource.NewID(resource.VPC)}
	v.svc = &secgroup.Service{Store: st, DefaultVPC: func(context.Context, string) (string, error) { return v.defVPC, nil }}
	for id, isDefault := range map[string]bool{v.defVPC: true, v.otherVPC: false} {
		rec := map[string]any{"id": id, "isDefault": isDefault, "cidr": "10.0.0.0/16"}
		g := secgroup.NewDefault(id, sc.Account, time.Now())
		ops := append(secgroup.CreateOps(sc, g), store.Op{Key: resource.Key(sc, resource.VPC, id), Value: rec})
		if err := st.Apply(context.Background(), ops...); err != nil {
			t.Fatal(err)
		}
		if isDefault {
			v.defGroup = g
		} else {
			v.defOther = g
		}
	}
	return v
}

func ctx() context.Context { return context.Background() }

func wantCode(t *testing.T, err error, code string) *apierr.Error {
	t.Helper()
	e, ok := apierr.As(err)
	if !ok || e.Code != code {
		t.Fatalf("want %s, got %v", code, err)
	}
	return e
}

func ports(from, to int) (*int, *int) { return &from, &to }

func tcp(from, to int, cidrs ...string) secgroup.Permission {
	f, t := ports(from, to)
	p := secgroup.Permission{Protocol: "tcp", FromPort: f, ToPort: t}
	for _, c := range cidrs {
		p.IPv4 = append(p.IPv4, secgroup.Peer{Value: c})
	}
	return p
}

func (v *env) group(t *testing.T, id string) secgroup.Group {
	t.Helper()
	g, err := v.svc.Get(ctx(), sc, id)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func (v *env) exists(t *testing.T, key string) bool {
	t.Helper()
	var s string
	_, err := v.st.Get(ctx(), key, &s)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

func TestCreate(t *testing.T) {
	v := newEnv(t)
	g, err := v.svc.Create(ctx(), sc, "web", "web servers", "", []resource.Tag{{Key: "env", Value: "dev"}})
	if err != nil {
		t.Fatal(err)
	}
	if g.VPCID != v.defVPC || g.Owner != sc.Account || g.Tags["env"] != "dev" {
		t.Fatalf("group %+v", g)
	}
	if len(g.Rules) != 1 || !g.Rules[0].Egress || g.Rules[0].Protocol != "-1" || g.Rules[0].CIDRv4 != "0.0.0.0/0" {
		t.Fatalf("a new group allows all out and nothing in: %+v", g.Rules)
	}
	if !v.exists(t, secgroup.RuleKey(sc, g.Rules[0].ID)) || !v.exists(t, secgroup.NameKey(sc, v.defVPC, "web")) {
		t.Fatal("index entries missing")
	}
	// The same name in another VPC is fine; twice in one is not.
	if _, err := v.svc.Create(ctx(), sc, "web", "web servers", v.otherVPC, nil); err != nil {
		t.Fatal(err)
	}
	_, err = v.svc.Create(ctx(), sc, "web", "again", v.defVPC, nil)
	e := wantCode(t, err, "InvalidGroup.Duplicate")
	if e.Message != "The security group 'web' already exists for VPC '"+v.defVPC+"'" {
		t.Fatalf("message %q", e.Message)
	}

	for _, tc := range []struct{ name, desc, vpc, code string }{
		{"", "d", "", apierr.MissingParameter},
		{"n", "", "", apierr.MissingParameter},
		{"sg-web", "d", "", apierr.InvalidParameterValue},
		{"default", "d", "", apierr.InvalidParameterValue},
		{"héllo", "d", "", apierr.InvalidParameterValue},
		{"n", "tab\there", "", apierr.InvalidParameterValue},
		{strings.Repeat("a", 256), "d", "", apierr.InvalidParameterValue},
		{"n", "d", "vpc-0123456789abcdef0", "InvalidVpcID.NotFound"},
	} {
		_, err := v.svc.Create(ctx(), sc, tc.name, tc.desc, tc.vpc, nil)
		e := wantCode(t, err, tc.code)
		if tc.name == "default" && e.Message != "Cannot use reserved security group name: default" {
			t.Errorf("reserved name message %q", e.Message)
		}
	}
	if _, err := v.svc.Create(ctx(), sc, "a-Z 0.9_:/()#,@[]+=&;{}!$*", "ok", "", nil); err != nil {
		t.Fatalf("EC2's whole character set: %v", err)
	}
}

func TestGroupQuota(t *testing.T) {
	v := newEnv(t)
	v.svc.MaxGroups = 3 // the two default groups and one more
	if _, err := v.svc.Create(ctx(), sc, "one", "d", "", nil); err != nil {
		t.Fatal(err)
	}
	_, err := v.svc.Create(ctx(), sc, "two", "d", "", nil)
	wantCode(t, err, "SecurityGroupLimitExceeded")
}

func TestAuthorizeNormalises(t *testing.T) {
	v := newEnv(t)
	g, _ := v.svc.Create(ctx(), sc, "web", "d", "", nil)
	ref := secgroup.GroupRef{ID: g.ID}
	f, to := ports(80, 80)
	icmpType, icmpCode := ports(8, -1)
	rules, err := v.svc.Authorize(ctx(), sc, ref, false, []secgroup.Permission{
		{Protocol: "6", FromPort: f, ToPort: to, IPv4: []secgroup.Peer{{Value: "10.1.2.3/16", Description: "office"}}},
		{Protocol: "ALL", FromPort: f, ToPort: to, IPv6: []secgroup.Peer{{Value: "2001:db8::1/32"}}},
		{Protocol: "icmp", FromPort: icmpType, ToPort: icmpCode, IPv4: []secgroup.Peer{{Value: "0.0.0.0/0"}}},
		{Protocol: "47", FromPort: f, ToPort: to, Groups: []secgroup.GroupPeer{{GroupID: g.ID}}},
		{Protocol: "icmpv6", IPv6: []secgroup.Peer{{Value: "::/0"}}},
	}, []resource.Tag{{Key: "k", Value: "v"}})
	if err != nil {
		t.Fatal(err)
	}
	want := []secgroup.Rule{
		{Protocol: "tcp", FromPort: 80, ToPort: 80, CIDRv4: "10.1.0.0/16", Description: "office"},
		{Protocol: "-1", FromPort: -1, ToPort: -1, CIDRv6: "2001:db8::/32"},
		{Protocol: "icmp", FromPort: 8, ToPort: -1, CIDRv4: "0.0.0.0/0"},
		{Protocol: "47", FromPort: -1, ToPort: -1, GroupID: g.ID, GroupOwner: sc.Account},
		{Protocol: "icmpv6", FromPort: -1, ToPort: -1, CIDRv6: "::/0"},
	}
	if len(rules) != len(want) {
		t.Fatalf("%d rules: %+v", len(rules), rules)
	}
	for i, r := range rules {
		w := want[i]
		w.ID, w.Tags = r.ID, r.Tags
		if r.GroupID != w.GroupID || r.GroupOwner != w.GroupOwner || !r.Same(w) || r.Description != w.Description || r.Tags["k"] != "v" {
			t.Errorf("rule %d: got %+v want %+v", i, r, w)
		}
		if !resource.ValidID(resource.SecurityGroupRule, r.ID) || !v.exists(t, secgroup.RuleKey(sc, r.ID)) {
			t.Errorf("rule %d: ID %q not indexed", i, r.ID)
		}
	}
	if n := len(v.group(t, g.ID).Rules); n != 6 {
		t.Fatalf("stored %d rules", n)
	}
}

func TestAuthorizeRejects(t *testing.T) {
	v := newEnv(t)
	g, _ := v.svc.Create(ctx(), sc, "web", "d", "", nil)
	other, _ := v.svc.Create(ctx(), sc, "elsewhere", "d", v.otherVPC, nil)
	ref := secgroup.GroupRef{ID: g.ID}
	one := func(p secgroup.Permission) error {
		_, err := v.svc.Authorize(ctx(), sc, ref, false, []secgroup.Permission{p}, nil)
		return err
	}
	f, to := ports(22, 22)
	bad, big := ports(100, 50)
	_, huge := ports(0, 70000)
	m1, five := ports(-1, 5)
	for name, tc := range map[string]struct {
		p    secgroup.Permission
		code string
	}{
		"unknown protocol":  {secgroup.Permission{Protocol: "foo", FromPort: f, ToPort: to, IPv4: []secgroup.Peer{{Value: "0.0.0.0/0"}}}, apierr.InvalidParameterValue},
		"protocol 256":      {secgroup.Permission{Protocol: "256", IPv4: []secgroup.Peer{{Value: "0.0.0.0/0"}}}, apierr.InvalidParameterValue},
		"tcp without ports": {secgroup.Permission{Protocol: "tcp", IPv4: []secgroup.Peer{{Value: "0.0.0.0/0"}}}, apierr.InvalidParameterValue},
		"from above to":     {secgroup.Permission{Protocol: "udp", FromPort: bad, ToPort: big, IPv4: []secgroup.Peer{{Value: "0.0.0.0/0"}}}, apierr.InvalidParameterValue},
		"port out of range": {secgroup.Permission{Protocol: "tcp", FromPort: f, ToPort: huge, IPv4: []secgroup.Peer{{Value: "0.0.0.0/0"}}}, apierr.InvalidParameterValue},
		"icmp code, any type": {secgroup.Permission{Protocol: "icmp", FromPort: m1, ToPort: five, IPv4: []secgroup.Peer{{Value: "0.0.0.0/0"}}},
			apierr.InvalidParameterValue},
		"bad cidr":        {tcp(22, 22, "10.0.0.0/33"), apierr.InvalidParameterValue},
		"v6 as v4":        {tcp(22, 22, "::/0"), apierr.InvalidParameterValue},
		"no peer":         {tcp(22, 22), apierr.MissingParameter},
		"prefix list":     {secgroup.Permission{Protocol: "-1", PrefixLists: []secgroup.Peer{{Value: "pl-12345678"}}}, "InvalidPrefixListID.NotFound"},
		"bad description": {secgroup.Permission{Protocol: "-1", IPv4: []secgroup.Peer{{Value: "0.0.0.0/0", Description: "ünïcode"}}}, apierr.InvalidParameterValue},
		"group elsewhere": {secgroup.Permission{Protocol: "-1", Groups: []secgroup.GroupPeer{{GroupID: other.ID}}}, "InvalidGroup.NotFound"},
		"no such group":   {secgroup.Permission{Protocol: "-1", Groups: []secgroup.GroupPeer{{GroupID: "sg-0123456789abcdef0"}}}, "InvalidGroup.NotFound"},
		"another account": {secgroup.Permission{Protocol: "-1", Groups: []secgroup.GroupPeer{{GroupID: g.ID, UserID: "999999999999"}}}, "InvalidGroup.NotFound"},
	} {
		t.Run(name, func(t *testing.T) { wantCode(t, one(tc.p), tc.code) })
	}
	if n := len(v.group(t, g.ID).Rules); n != 1 {
		t.Fatalf("a rejected request wrote rules: %d", n)
	}

	// Duplicates: of a stored rule, and within one request.
	if err := one(tcp(22, 22, "0.0.0.0/0")); err != nil {
		t.Fatal(err)
	}
	e := wantCode(t, one(tcp(22, 22, "0.0.0.0/0")), "InvalidPermission.Duplicate")
	if e.Message != `the specified rule "peer: 0.0.0.0/0, TCP, from port: 22, to port: 22, ALLOW" already exists` {
		t.Fatalf("message %q", e.Message)
	}
	wantCode(t, one(tcp(443, 443, "10.0.0.0/8", "10.0.0.0/8")), "InvalidPermission.Duplicate")
	if _, err := v.svc.Authorize(ctx(), sc, ref, true, nil, nil); err == nil {
		t.Fatal("no permissions accepted")
	}
	// Egress duplicates the group's first rule.
	_, err := v.svc.Authorize(ctx(), sc, ref, true, []secgroup.Permission{{Protocol: "-1", IPv4: []secgroup.Peer{{Value: "0.0.0.0/0"}}}}, nil)
	if e := wantCode(t, err, "InvalidPermission.Duplicate"); !strings.Contains(e.Message, "peer: 0.0.0.0/0, ALL, ALLOW") {
		t.Fatalf("message %q", e.Message)
	}
}

func TestGroupPeerByName(t *testing.T) {
	v := newEnv(t)
	g, _ := v.svc.Create(ctx(), sc, "web", "d", "", nil)
	// Legacy form: a source group by name, in the default VPC.
	rules, err := v.svc.Authorize(ctx(), sc, secgroup.GroupRef{Name: "web"}, false,
		[]secgroup.Permission{{Protocol: "-1", Groups: []secgroup.GroupPeer{{GroupName: "default", Description: "peers"}}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rules) != 1 || rules[0].GroupID != v.defGroup.ID || rules[0].Description != "peers" {
		t.Fatalf("rules %+v", rules)
	}
	_, err = v.svc.Authorize(ctx(), sc, secgroup.GroupRef{Name: "nope"}, false, []secgroup.Permission{tcp(1, 1, "1.1.1.1/32")}, nil)
	if e := wantCode(t, err, "InvalidGroup.NotFound"); e.Message != "The security group 'nope' does not exist in default VPC '"+v.defVPC+"'" {
		t.Fatalf("message %q", e.Message)
	}
	_ = g
}

func TestRuleQuota(t *testing.T) {
	v := newEnv(t)
	g, _ := v.svc.Create(ctx(), sc, "web", "d", "", nil)
	ref := secgroup.GroupRef{ID: g.ID}
	many := func(n int, v6 bool) secgroup.Permission {
		p := secgroup.Permission{Protocol: "-1"}
		for i := 0; i < n; i++ {
			if v6 {
				p.IPv6 = append(p.IPv6, secgroup.Peer{Value: "2001:db8:" + strconv.Itoa(i) + "::/48"})
			} else {
				p.IPv4 = append(p.IPv4, secgroup.Peer{Value: "10." + strconv.Itoa(i) + ".0.0/16"})
			}
		}
		return p
	}
	// 60 IPv4 and 60 IPv6 ingress rules fit; one more of either does not.
	if _, err := v.svc.Authorize(ctx(), sc, ref, false, []secgroup.Permission{many(60, false), many(60, true)}, nil); err != nil {
		t.Fatal(err)
	}
	_, err := v.svc.Authorize(ctx(), sc, ref, false, []secgroup.Permission{tcp(1, 1, "1.1.1.1/32")}, nil)
	if e := wantCode(t, err, "RulesPerSecurityGroupLimitExceeded"); e.Message != "The maximum number of rules per security group has been reached." {
		t.Fatalf("message %q", e.Message)
	}
	_, err = v.svc.Authorize(ctx(), sc, ref, false, []secgroup.Permission{{Protocol: "-1", Groups: []secgroup.GroupPeer{{GroupID: g.ID}}}}, nil)
	wantCode(t, err, "RulesPerSecurityGroupLimitExceeded") // a group reference counts as IPv4
	// Egress has its own quota: 59 more beside the default rule.
	if _, err := v.svc.Authorize(ctx(), sc, ref, true, []secgroup.Permission{many(59, false)}, nil); err != nil {
		t.Fatal(err)
	}
}

func TestRevoke(t *testing.T) {
	v := newEnv(t)
	inDefault, _ := v.svc.Create(ctx(), sc, "web", "d", "", nil)
	elsewhere, _ := v.svc.Create(ctx(), sc, "web", "d", v.otherVPC, nil)
	for _, g := range []secgroup.Group{inDefault, elsewhere} {
		if _, err := v.svc.Authorize(ctx(), sc, secgroup.GroupRef{ID: g.ID}, false,
			[]secgroup.Permission{tcp(22, 22, "0.0.0.0/0", "10.0.0.0/8"), tcp(80, 80, "0.0.0.0/0")}, nil); err != nil {
			t.Fatal(err)
		}
	}
	// Not in the default VPC: one unknown rule fails the whole request.
	ref := secgroup.GroupRef{ID: elsewhere.ID}
	_, _, err := v.svc.Revoke(ctx(), sc, ref, false, []secgroup.Permission{tcp(22, 22, "0.0.0.0/0"), tcp(23, 23, "0.0.0.0/0")}, nil)
	wantCode(t, err, "InvalidPermission.NotFound")
	if n := len(v.group(t, elsewhere.ID).Rules); n != 4 {
		t.Fatalf("a failed revoke removed rules: %d left", n)
	}
	// The description does not matter; the stored CIDR form does.
	revoked, unknown, err := v.svc.Revoke(ctx(), sc, ref, false, []secgroup.Permission{tcp(22, 22, "10.1.2.3/8")}, nil)
	if err != nil || len(revoked) != 1 || revoked[0].CIDRv4 != "10.0.0.0/8" || len(unknown) != 0 {
		t.Fatalf("revoked %+v unknown %+v: %v", revoked, unknown, err)
	}
	if v.exists(t, secgroup.RuleKey(sc, revoked[0].ID)) {
		t.Fatal("index entry of a revoked rule left")
	}

	// In the default VPC: the unknown rules come back, the others go.
	ref = secgroup.GroupRef{Name: "web"}
	revoked, unknown, err = v.svc.Revoke(ctx(), sc, ref, false, []secgroup.Permission{tcp(22, 22, "0.0.0.0/0"), tcp(23, 23, "0.0.0.0/0")}, nil)
	if err != nil || len(revoked) != 1 || len(unknown) != 1 || unknown[0].FromPort != 23 {
		t.Fatalf("revoked %+v unknown %+v: %v", revoked, unknown, err)
	}

	// By ID: the direction must match, unknown IDs fail.
	g := v.group(t, inDefault.ID)
	var egress, ingress string
	for _, r := range g.Rules {
		if r.Egress {
			egress = r.ID
		} else {
			ingress = r.ID
		}
	}
	_, _, err = v.svc.Revoke(ctx(), sc, ref, false, nil, []string{egress})
	wantCode(t, err, "InvalidSecurityGroupRuleId.NotFound")
	_, _, err = v.svc.Revoke(ctx(), sc, ref, false, nil, []string{"sgr-bad"})
	wantCode(t, err, "InvalidSecurityGroupRuleId.Malformed")
	revoked, _, err = v.svc.Revoke(ctx(), sc, ref, false, nil, []string{ingress})
	if err != nil || len(revoked) != 1 || revoked[0].ID != ingress {
		t.Fatalf("revoked %+v: %v", revoked, err)
	}
	if rules := v.group(t, inDefault.ID).Rules; len(rules) != 2 {
		t.Fatalf("left %+v", rules)
	}
}

func TestModifyAndDescriptions(t *testing.T) {
	v := newEnv(t)
	g, _ := v.svc.Create(ctx(), sc, "web", "d", "", nil)
	ref := secgroup.GroupRef{ID: g.ID}
	rules, err := v.svc.Authorize(ctx(), sc, ref, false, []secgroup.Permission{tcp(22, 22, "0.0.0.0/0"), tcp(80, 80, "0.0.0.0/0")},
		[]resource.Tag{{Key: "k", Value: "v"}})
	if err != nil {
		t.Fatal(err)
	}
	f, to := ports(2222, 2222)
	err = v.svc.Modify(ctx(), sc, g.ID, []secgroup.RuleUpdate{{RuleID: rules[0].ID,
		Rule: secgroup.RuleSpec{Protocol: "tcp", FromPort: f, ToPort: to, CIDRv6: "::/0", Description: "ssh"}}})
	if err != nil {
		t.Fatal(err)
	}
	got := v.group(t, g.ID).Rules[1]
	if got.ID != rules[0].ID || got.FromPort != 2222 || got.CIDRv6 != "::/0" || got.CIDRv4 != "" || got.Description != "ssh" || got.Tags["k"] != "v" || got.Egress {
		t.Fatalf("modified %+v", got)
	}
	f80, t80 := ports(80, 80)
	for name, tc := range map[string]struct {
		u    secgroup.RuleUpdate
		code string
	}{
		"duplicate": {secgroup.RuleUpdate{RuleID: rules[0].ID, Rule: secgroup.RuleSpec{Protocol: "tcp", FromPort: f80, ToPort: t80, CIDRv4: "0.0.0.0/0"}},
			"InvalidPermission.Duplicate"},
		"two peers": {secgroup.RuleUpdate{RuleID: rules[0].ID, Rule: secgroup.RuleSpec{Protocol: "-1", CIDRv4: "0.0.0.0/0", CIDRv6: "::/0"}},
			apierr.InvalidParameterCombination},
		"unknown rule": {secgroup.RuleUpdate{RuleID: "sgr-0123456789abcdef0", Rule: secgroup.RuleSpec{Protocol: "-1", CIDRv4: "0.0.0.0/0"}},
			"InvalidSecurityGroupRuleId.NotFound"},
	} {
		t.Run(name, func(t *testing.T) {
			wantCode(t, v.svc.Modify(ctx(), sc, g.ID, []secgroup.RuleUpdate{tc.u}), tc.code)
		})
	}

	// Descriptions: by the rule's values, and by ID.
	p := tcp(80, 80)
	p.IPv4 = []secgroup.Peer{{Value: "0.0.0.0/0", Description: "http"}}
	if err := v.svc.UpdateDescriptions(ctx(), sc, ref, false, []secgroup.Permission{p}, nil); err != nil {
		t.Fatal(err)
	}
	if d := v.group(t, g.ID).Rules[2].Description; d != "http" {
		t.Fatalf("description %q", d)
	}
	if err := v.svc.UpdateDescriptions(ctx(), sc, ref, false, nil, []secgroup.RuleDescription{{RuleID: rules[1].ID, Description: ""}}); err != nil {
		t.Fatal(err)
	}
	if d := v.group(t, g.ID).Rules[2].Description; d != "" {
		t.Fatalf("description %q", d)
	}
	err = v.svc.UpdateDescriptions(ctx(), sc, ref, false, []secgroup.Permission{tcp(81, 81, "0.0.0.0/0")}, nil)
	wantCode(t, err, "InvalidPermission.NotFound")
	err = v.svc.UpdateDescriptions(ctx(), sc, ref, true, nil, []secgroup.RuleDescription{{RuleID: rules[1].ID, Description: "x"}})
	wantCode(t, err, "InvalidSecurityGroupRuleId.NotFound") // an ingress rule, asked as egress
}

func TestDelete(t *testing.T) {
	v := newEnv(t)
	_, err := v.svc.Delete(ctx(), sc, secgroup.GroupRef{ID: v.defGroup.ID})
	if e := wantCode(t, err, "CannotDelete"); e.Message != `the specified group: "`+v.defGroup.ID+`" name: "default" cannot be deleted by a user` {
		t.Fatalf("message %q", e.Message)
	}
	web, _ := v.svc.Create(ctx(), sc, "web", "d", "", nil)
	db, _ := v.svc.Create(ctx(), sc, "db", "d", "", nil)
	pg, pg2 := ports(5432, 5432)
	rules, err := v.svc.Authorize(ctx(), sc, secgroup.GroupRef{ID: db.ID}, false,
		[]secgroup.Permission{{Protocol: "tcp", FromPort: pg, ToPort: pg2, Groups: []secgroup.GroupPeer{{GroupID: web.ID}}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Referenced by db's rule.
	_, err = v.svc.Delete(ctx(), sc, secgroup.GroupRef{ID: web.ID})
	if e := wantCode(t, err, "DependencyViolation"); e.Message != "resource "+web.ID+" has a dependent object" {
		t.Fatalf("message %q", e.Message)
	}
	if _, _, err := v.svc.Revoke(ctx(), sc, secgroup.GroupRef{ID: db.ID}, false, nil, []string{rules[0].ID}); err != nil {
		t.Fatal(err)
	}
	// Used by an instance until it is terminated.
	inst := resource.Key(sc, resource.Instance, "i-0123456789abcdef0")
	put := func(state string) {
		rec := map[string]any{"id": "i-0123456789abcdef0", "state": state, "securityGroups": []string{db.ID, web.ID}}
		if err := v.st.Apply(ctx(), store.Op{Key: inst, Value: rec, ModRev: -1}); err != nil {
			t.Fatal(err)
		}
	}
	put("stopped")
	_, err = v.svc.Delete(ctx(), sc, secgroup.GroupRef{ID: web.ID})
	wantCode(t, err, "DependencyViolation")
	put("terminated")
	id, err := v.svc.Delete(ctx(), sc, secgroup.GroupRef{Name: "web"})
	if err != nil || id != web.ID {
		t.Fatalf("deleted %s: %v", id, err)
	}
	if v.exists(t, secgroup.NameKey(sc, v.defVPC, "web")) || v.exists(t, secgroup.RuleKey(sc, web.Rules[0].ID)) {
		t.Fatal("index entries left")
	}
	_, err = v.svc.Delete(ctx(), sc, secgroup.GroupRef{ID: web.ID})
	wantCode(t, err, "InvalidGroup.NotFound")
	_, err = v.svc.Delete(ctx(), sc, secgroup.GroupRef{ID: "sg-nope"})
	wantCode(t, err, "InvalidGroupId.Malformed")
	// The name can be used again.
	if _, err := v.svc.Create(ctx(), sc, "web", "d", "", nil); err != nil {
		t.Fatal(err)
	}
	groups, err := secgroup.VPCGroups(ctx(), v.st, sc, v.defVPC)
	if err != nil || len(groups) != 3 {
		t.Fatalf("default VPC groups %d: %v", len(groups), err)
	}
}

func TestRuleTags(t *testing.T) {
	v := newEnv(t)
	tg := resource.Tagger{Store: v.st}
	g, _ := v.svc.Create(ctx(), sc, "web", "d", "", []resource.Tag{{Key: "group", Value: "yes"}})
	rules, err := v.svc.Authorize(ctx(), sc, secgroup.GroupRef{ID: g.ID}, false, []secgroup.Permission{tcp(22, 22, "0.0.0.0/0", "10.0.0.0/8")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := tg.Create(ctx(), sc, []string{rules[1].ID, g.ID}, []resource.Tag{{Key: "Name", Value: "ssh"}}); err != nil {
		t.Fatal(err)
	}
	got := v.group(t, g.ID)
	if got.Tags["Name"] != "ssh" || got.Tags["group"] != "yes" || got.Rules[2].Tags["Name"] != "ssh" || got.Rules[1].Tags != nil {
		t.Fatalf("tags: group %v rules %+v", got.Tags, got.Rules)
	}
	list, err := tg.List(ctx(), sc)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, d := range list {
		if d.ResourceID == rules[1].ID {
			found = d.ResourceType == "security-group-rule" && d.Key == "Name" && d.Value == "ssh"
		}
	}
	if !found {
		t.Fatalf("DescribeTags misses the rule's tag: %+v", list)
	}
	if err := tg.Delete(ctx(), sc, []string{rules[1].ID}, nil); err != nil {
		t.Fatal(err)
	}
	if got := v.group(t, g.ID); got.Rules[2].Tags != nil || got.Tags["Name"] != "ssh" {
		t.Fatalf("untagging a rule: %+v", got)
	}
	err = tg.Create(ctx(), sc, []string{"sgr-0123456789abcdef0"}, []resource.Tag{{Key: "a", Value: "b"}})
	wantCode(t, err, "InvalidSecurityGroupRuleId.NotFound")
	// A revoked rule's ID is gone for tags too.
	if _, _, err := v.svc.Revoke(ctx(), sc, secgroup.GroupRef{ID: g.ID}, false, nil, []string{rules[1].ID}); err != nil {
		t.Fatal(err)
	}
	err = tg.Create(ctx(), sc, []string{rules[1].ID}, []resource.Tag{{Key: "a", Value: "b"}})
	wantCode(t, err, "InvalidSecurityGroupRuleId.NotFound")
}

func TestConcurrentAuthorize(t *testing.T) {
	v := newEnv(t)
	g, _ := v.svc.Create(ctx(), sc, "web", "d", "", nil)
	ref := secgroup.GroupRef{ID: g.ID}
	const n = 8
	errs := make(chan error, 2*n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(2)
		go func() { // distinct rules: all land
			defer wg.Done()
			_, err := v.svc.Authorize(ctx(), sc, ref, false, []secgroup.Permission{tcp(1000+i, 1000+i, "0.0.0.0/0")}, nil)
			errs <- err
		}()
		go func() { // one rule asked n times: it lands once
			defer wg.Done()
			_, err := v.svc.Authorize(ctx(), sc, ref, false, []secgroup.Permission{tcp(22, 22, "0.0.0.0/0")}, nil)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	dups := 0
	for err := range errs {
		if e, ok := apierr.As(err); ok && e.Code == "InvalidPermission.Duplicate" {
			dups++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	rules := v.group(t, g.ID).Rules
	if dups != n-1 || len(rules) != 1+n+1 {
		t.Fatalf("%d duplicates, %d rules", dups, len(rules))
	}
	for _, r := range rules {
		if !v.exists(t, secgroup.RuleKey(sc, r.ID)) {
			t.Fatalf("rule %s not indexed", r.ID)
		}
	}
	// Lost races left no index entries behind (4: the default groups' rules).
	kvs, err := v.st.List(ctx(), secgroup.RuleKey(sc, ""))
	if err != nil || len(kvs) != len(rules)+4 {
		t.Fatalf("%d rule index entries for %d rules: %v", len(kvs), len(rules)+4, err)
	}
}
