package ec2

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"

	"nubo/internal/api/ec2query"
	"nubo/internal/nubotest"
	"nubo/internal/resource"
	"nubo/internal/secgroup"
	"nubo/internal/store"
	"nubo/internal/store/storetest"
	"nubo/internal/vpc"
)

const testAccount = "123456789012"

// sgEnv serves the EC2 API over a real embedded etcd to aws-sdk-go-v2, so
// that the wire shapes are checked by the SDK's own (de)serializers.
type sgEnv struct {
	c      *ec2.Client
	st     *store.Store
	groups *secgroup.Service
	defVPC string
	defSG  string // the default VPC's default group
}

func newSGEnv(t *testing.T) *sgEnv {
	t.Helper()
	st := storetest.New(t)
	ctx := context.Background()
	vpcs := &vpc.Service{Store: st, Region: "us-east-1", Zones: []vpc.Zone{{Name: "us-east-1a", ID: "use1-az1"}}}
	groups := &secgroup.Service{Store: st, DefaultVPC: func(ctx context.Context, account string) (string, error) {
		v, err := vpcs.DefaultVPC(ctx, account)
		return v.ID, err
	}}
	a := &API{Region: NewRegion("us-east-1", "localhost", []string{"a"}), Tags: resource.Tagger{Store: st}, VPCs: vpcs, SecurityGroups: groups}
	q := &ec2query.Server{Region: "us-east-1", Actions: a.Actions(), Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Lookup: func(string) (ec2query.Account, bool) {
			return ec2query.Account{ID: testAccount, Secret: "secret"}, true
		}}
	srv := httptest.NewServer(q)
	t.Cleanup(srv.Close)
	c := ec2.NewFromConfig(aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL), RetryMaxAttempts: 1, HTTPClient: nubotest.HTTPClient,
		Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", "")})

	env := &sgEnv{c: c, st: st, groups: groups}
	sc := resource.Scope{Account: testAccount, Region: "us-east-1"}
	v, err := vpcs.DefaultVPC(ctx, testAccount)
	if err != nil {
		t.Fatal(err)
	}
	env.defVPC = v.ID
	// The default VPC's default group, unless package vpc made it already.
	if g, err := groups.ByName(ctx, sc, v.ID, secgroup.DefaultName); err == nil {
		env.defSG = g.ID
	} else {
		g := secgroup.NewDefault(v.ID, testAccount, time.Now())
		if err := st.Apply(ctx, secgroup.CreateOps(sc, g)...); err != nil {
			t.Fatal(err)
		}
		env.defSG = g.ID
	}
	return env
}

func tctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func wantAPIError(t *testing.T, err error, code string) string {
	t.Helper()
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != code {
		t.Fatalf("want %s, got %v", code, err)
	}
	return ae.ErrorMessage()
}

func (e *sgEnv) create(t *testing.T, name string, vpcID *string) string {
	t.Helper()
	out, err := e.c.CreateSecurityGroup(tctx(t), &ec2.CreateSecurityGroupInput{GroupName: aws.String(name), Description: aws.String("test " + name), VpcId: vpcID})
	if err != nil {
		t.Fatal(err)
	}
	return *out.GroupId
}

func (e *sgEnv) describe(t *testing.T, id string) types.SecurityGroup {
	t.Helper()
	out, err := e.c.DescribeSecurityGroups(tctx(t), &ec2.DescribeSecurityGroupsInput{GroupIds: []string{id}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.SecurityGroups) != 1 {
		t.Fatalf("%d groups", len(out.SecurityGroups))
	}
	return out.SecurityGroups[0]
}

func cidrs(p types.IpPermission) []string {
	var out []string
	for _, r := range p.IpRanges {
		out = append(out, aws.ToString(r.CidrIp))
	}
	for _, r := range p.Ipv6Ranges {
		out = append(out, aws.ToString(r.CidrIpv6))
	}
	for _, g := range p.UserIdGroupPairs {
		out = append(out, aws.ToString(g.GroupId))
	}
	return out
}

func TestSecurityGroupLifecycleWithSDK(t *testing.T) {
	e := newSGEnv(t)
	ctx := tctx(t)
	out, err := e.c.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{GroupName: aws.String("web"), Description: aws.String("web servers"),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeSecurityGroup, Tags: []types.Tag{{Key: aws.String("env"), Value: aws.String("dev")}}}}})
	if err != nil {
		t.Fatal(err)
	}
	id := *out.GroupId
	if len(out.Tags) != 1 || !strings.HasSuffix(aws.ToString(out.SecurityGroupArn), ":"+testAccount+":security-group/"+id) {
		t.Fatalf("create answered %+v", out)
	}

	// Two CIDRs on one port are one permission; the IPv6 one and the group
	// reference another; -1 shows no ports.
	auth, err := e.c.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: &id, IpPermissions: []types.IpPermission{
		{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(22), ToPort: aws.Int32(22),
			IpRanges: []types.IpRange{{CidrIp: aws.String("10.0.0.0/8"), Description: aws.String("office")}, {CidrIp: aws.String("192.168.0.0/16")}}},
		{IpProtocol: aws.String("-1"), Ipv6Ranges: []types.Ipv6Range{{CidrIpv6: aws.String("::/0")}},
			UserIdGroupPairs: []types.UserIdGroupPair{{GroupId: aws.String(e.defSG), Description: aws.String("peers")}}},
	}, TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeSecurityGroupRule, Tags: []types.Tag{{Key: aws.String("Name"), Value: aws.String("r")}}}}})
	if err != nil {
		t.Fatal(err)
	}
	if !aws.ToBool(auth.Return) || len(auth.SecurityGroupRules) != 4 {
		t.Fatalf("authorize answered %+v", auth)
	}
	r0 := auth.SecurityGroupRules[0]
	if aws.ToString(r0.GroupId) != id || aws.ToBool(r0.IsEgress) || aws.ToString(r0.CidrIpv4) != "10.0.0.0/8" || aws.ToInt32(r0.FromPort) != 22 ||
		aws.ToString(r0.Description) != "office" || len(r0.Tags) != 1 || aws.ToString(r0.GroupOwnerId) != testAccount {
		t.Fatalf("rule %+v", r0)
	}
	if ref := auth.SecurityGroupRules[3].ReferencedGroupInfo; ref == nil || aws.ToString(ref.GroupId) != e.defSG || aws.ToString(ref.UserId) != testAccount {
		t.Fatalf("referenced group %+v", ref)
	}

	g := e.describe(t, id)
	if aws.ToString(g.GroupName) != "web" || aws.ToString(g.Description) != "web servers" || aws.ToString(g.VpcId) != e.defVPC ||
		aws.ToString(g.OwnerId) != testAccount || len(g.Tags) != 1 {
		t.Fatalf("group %+v", g)
	}
	if len(g.IpPermissions) != 2 || len(g.IpPermissionsEgress) != 1 {
		t.Fatalf("permissions %+v egress %+v", g.IpPermissions, g.IpPermissionsEgress)
	}
	ssh, all := g.IpPermissions[0], g.IpPermissions[1]
	if aws.ToString(ssh.IpProtocol) != "tcp" || aws.ToInt32(ssh.FromPort) != 22 || strings.Join(cidrs(ssh), ",") != "10.0.0.0/8,192.168.0.0/16" ||
		aws.ToString(ssh.IpRanges[0].Description) != "office" {
		t.Fatalf("ssh permission %+v", ssh)
	}
	if aws.ToString(all.IpProtocol) != "-1" || all.FromPort != nil || all.ToPort != nil || strings.Join(cidrs(all), ",") != "::/0,"+e.defSG {
		t.Fatalf("all permission %+v", all)
	}
	if eg := g.IpPermissionsEgress[0]; aws.ToString(eg.IpProtocol) != "-1" || strings.Join(cidrs(eg), ",") != "0.0.0.0/0" {
		t.Fatalf("egress %+v", eg)
	}

	// Duplicate, as EC2 words it.
	_, err = e.c.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{GroupName: aws.String("web"),
		IpProtocol: aws.String("tcp"), FromPort: aws.Int32(22), ToPort: aws.Int32(22), CidrIp: aws.String("10.0.0.0/8")})
	msg := wantAPIError(t, err, "InvalidPermission.Duplicate")
	if msg != `the specified rule "peer: 10.0.0.0/8, TCP, from port: 22, to port: 22, ALLOW" already exists` {
		t.Fatalf("message %q", msg)
	}

	// Rules: by filter, by ID, tagged.
	rules, err := e.c.DescribeSecurityGroupRules(ctx, &ec2.DescribeSecurityGroupRulesInput{Filters: []types.Filter{{Name: aws.String("group-id"), Values: []string{id}}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(rules.SecurityGroupRules) != 5 {
		t.Fatalf("%d rules", len(rules.SecurityGroupRules))
	}
	byTag, err := e.c.DescribeSecurityGroupRules(ctx, &ec2.DescribeSecurityGroupRulesInput{Filters: []types.Filter{{Name: aws.String("tag:Name"), Values: []string{"r"}}}})
	if err != nil || len(byTag.SecurityGroupRules) != 4 {
		t.Fatalf("by tag: %+v %v", byTag, err)
	}
	_, err = e.c.DescribeSecurityGroupRules(ctx, &ec2.DescribeSecurityGroupRulesInput{SecurityGroupRuleIds: []string{"sgr-0123456789abcdef0"}})
	wantAPIError(t, err, "InvalidSecurityGroupRuleId.NotFound")

	// Modify keeps the ID; descriptions change by ID or by values.
	rid := aws.ToString(r0.SecurityGroupRuleId)
	if _, err := e.c.ModifySecurityGroupRules(ctx, &ec2.ModifySecurityGroupRulesInput{GroupId: &id, SecurityGroupRules: []types.SecurityGroupRuleUpdate{{
		SecurityGroupRuleId: &rid, SecurityGroupRule: &types.SecurityGroupRuleRequest{IpProtocol: aws.String("udp"), FromPort: aws.Int32(53), ToPort: aws.Int32(53),
			CidrIpv4: aws.String("10.0.0.0/8"), Description: aws.String("dns")}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.UpdateSecurityGroupRuleDescriptionsIngress(ctx, &ec2.UpdateSecurityGroupRuleDescriptionsIngressInput{GroupId: &id,
		IpPermissions: []types.IpPermission{{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(22), ToPort: aws.Int32(22),
			IpRanges: []types.IpRange{{CidrIp: aws.String("192.168.0.0/16"), Description: aws.String("lan")}}}}}); err != nil {
		t.Fatal(err)
	}
	one, err := e.c.DescribeSecurityGroupRules(ctx, &ec2.DescribeSecurityGroupRulesInput{SecurityGroupRuleIds: []string{rid, *auth.SecurityGroupRules[1].SecurityGroupRuleId}})
	if err != nil {
		t.Fatal(err)
	}
	if r := one.SecurityGroupRules[0]; aws.ToString(r.IpProtocol) != "udp" || aws.ToInt32(r.ToPort) != 53 || aws.ToString(r.Description) != "dns" || len(r.Tags) != 1 {
		t.Fatalf("modified rule %+v", r)
	}
	if r := one.SecurityGroupRules[1]; aws.ToString(r.Description) != "lan" {
		t.Fatalf("described rule %+v", r)
	}

	// Revoke by ID answers the revoked rules; by unknown values in the
	// default VPC answers them as unknown.
	rv, err := e.c.RevokeSecurityGroupIngress(ctx, &ec2.RevokeSecurityGroupIngressInput{GroupId: &id, SecurityGroupRuleIds: []string{rid}})
	if err != nil {
		t.Fatal(err)
	}
	if !aws.ToBool(rv.Return) || len(rv.RevokedSecurityGroupRules) != 1 || aws.ToString(rv.RevokedSecurityGroupRules[0].SecurityGroupRuleId) != rid {
		t.Fatalf("revoke answered %+v", rv)
	}
	rv, err = e.c.RevokeSecurityGroupIngress(ctx, &ec2.RevokeSecurityGroupIngressInput{GroupId: &id, IpPermissions: []types.IpPermission{
		{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(22), ToPort: aws.Int32(22), IpRanges: []types.IpRange{{CidrIp: aws.String("192.168.0.0/16")}, {CidrIp: aws.String("1.1.1.1/32")}}}}})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToBool(rv.Return) || len(rv.RevokedSecurityGroupRules) != 1 || len(rv.UnknownIpPermissions) != 1 || cidrs(rv.UnknownIpPermissions[0])[0] != "1.1.1.1/32" {
		t.Fatalf("revoke answered %+v", rv)
	}

	// Tags on rules through the generic tag actions.
	left := aws.ToString(auth.SecurityGroupRules[2].SecurityGroupRuleId)
	if _, err := e.c.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{left}, Tags: []types.Tag{{Key: aws.String("team"), Value: aws.String("a")}}}); err != nil {
		t.Fatal(err)
	}
	tags, err := e.c.DescribeTags(ctx, &ec2.DescribeTagsInput{Filters: []types.Filter{{Name: aws.String("resource-type"), Values: []string{"security-group-rule"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(tags.Tags) != 3 { // Name on both rules left, team on one
		t.Fatalf("tags %+v", tags.Tags)
	}

	// Delete: not while referenced, then by name.
	other := e.create(t, "db", nil)
	if _, err := e.c.AuthorizeSecurityGroupEgress(ctx, &ec2.AuthorizeSecurityGroupEgressInput{GroupId: &other, IpPermissions: []types.IpPermission{
		{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(443), ToPort: aws.Int32(443), UserIdGroupPairs: []types.UserIdGroupPair{{GroupId: &id}}}}}); err != nil {
		t.Fatal(err)
	}
	_, err = e.c.DeleteSecurityGroup(ctx, &ec2.DeleteSecurityGroupInput{GroupName: aws.String("web")})
	wantAPIError(t, err, "DependencyViolation")
	if _, err := e.c.DeleteSecurityGroup(ctx, &ec2.DeleteSecurityGroupInput{GroupId: &other}); err != nil {
		t.Fatal(err)
	}
	del, err := e.c.DeleteSecurityGroup(ctx, &ec2.DeleteSecurityGroupInput{GroupName: aws.String("web")})
	if err != nil || aws.ToString(del.GroupId) != id || !aws.ToBool(del.Return) {
		t.Fatalf("delete answered %+v: %v", del, err)
	}
	_, err = e.c.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{GroupIds: []string{id}})
	if msg := wantAPIError(t, err, "InvalidGroup.NotFound"); msg != "The security group '"+id+"' does not exist" {
		t.Fatalf("message %q", msg)
	}
	_, err = e.c.DeleteSecurityGroup(ctx, &ec2.DeleteSecurityGroupInput{GroupId: &e.defSG})
	wantAPIError(t, err, "CannotDelete")
}

func TestDescribeSecurityGroupsFilters(t *testing.T) {
	e := newSGEnv(t)
	ctx := tctx(t)
	v, err := e.c.CreateVpc(ctx, &ec2.CreateVpcInput{CidrBlock: aws.String("10.1.0.0/16")})
	if err != nil {
		t.Fatal(err)
	}
	web := e.create(t, "web", nil)
	app := e.create(t, "app", v.Vpc.VpcId)
	if _, err := e.c.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: &web, IpPermissions: []types.IpPermission{
		{IpProtocol: aws.String("6"), FromPort: aws.Int32(443), ToPort: aws.Int32(443), IpRanges: []types.IpRange{{CidrIp: aws.String("0.0.0.0/0")}}},
		{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(0), ToPort: aws.Int32(65535), UserIdGroupPairs: []types.UserIdGroupPair{{GroupName: aws.String("default")}}},
	}}); err != nil {
		t.Fatal(err)
	}
	names := func(fs ...types.Filter) string {
		t.Helper()
		out, err := e.c.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{Filters: fs})
		if err != nil {
			t.Fatal(err)
		}
		var ns []string
		for _, g := range out.SecurityGroups {
			if aws.ToString(g.GroupName) != "default" {
				ns = append(ns, aws.ToString(g.GroupName))
			}
		}
		return strings.Join(ns, ",")
	}
	f := func(name string, values ...string) types.Filter {
		return types.Filter{Name: aws.String(name), Values: values}
	}
	for _, tc := range []struct {
		f    []types.Filter
		want string
	}{
		{[]types.Filter{f("vpc-id", *v.Vpc.VpcId)}, "app"},
		{[]types.Filter{f("group-name", "w*")}, "web"},
		{[]types.Filter{f("description", "test app")}, "app"},
		{[]types.Filter{f("ip-permission.protocol", "tcp")}, "web"},
		{[]types.Filter{f("ip-permission.protocol", "6"), f("ip-permission.from-port", "443")}, "web"},
		{[]types.Filter{f("ip-permission.cidr", "0.0.0.0/0")}, "web"},
		{[]types.Filter{f("ip-permission.group-name", "default")}, "web"},
		{[]types.Filter{f("ip-permission.group-id", e.defSG)}, "web"},
		{[]types.Filter{f("egress.ip-permission.cidr", "0.0.0.0/0"), f("owner-id", testAccount)}, sortedNames(web, app, "web", "app")},
		{[]types.Filter{f("ip-permission.to-port", "22")}, ""},
	} {
		if got := names(tc.f...); got != tc.want {
			t.Errorf("%v: got %q want %q", *tc.f[0].Name, got, tc.want)
		}
	}
	_, err = e.c.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{Filters: []types.Filter{f("nope", "x")}})
	wantAPIError(t, err, "InvalidParameterValue")

	// GroupName narrows to the default VPC.
	out, err := e.c.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{GroupNames: []string{"web", "default"}})
	if err != nil || len(out.SecurityGroups) != 2 {
		t.Fatalf("by name: %+v %v", out, err)
	}
	_, err = e.c.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{GroupNames: []string{"app"}})
	if msg := wantAPIError(t, err, "InvalidGroup.NotFound"); !strings.Contains(msg, "does not exist in default VPC '"+e.defVPC+"'") {
		t.Fatalf("message %q", msg)
	}
	_, err = e.c.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{GroupIds: []string{web}, MaxResults: aws.Int32(5)})
	wantAPIError(t, err, "InvalidParameterCombination")

	// Pages of 5 cover every group once.
	for i := 0; i < 6; i++ {
		e.create(t, "g"+string(rune('a'+i)), nil)
	}
	seen := map[string]bool{}
	p := ec2.NewDescribeSecurityGroupsPaginator(e.c, &ec2.DescribeSecurityGroupsInput{MaxResults: aws.Int32(5)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range page.SecurityGroups {
			if seen[*g.GroupId] {
				t.Fatalf("%s twice", *g.GroupId)
			}
			seen[*g.GroupId] = true
		}
	}
	whole, err := e.c.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != len(whole.SecurityGroups) || len(seen) < 9 { // default group(s), web, app, 6 more
		t.Fatalf("%d groups over the pages, %d in one", len(seen), len(whole.SecurityGroups))
	}
}

// sortedNames orders the names of groups a and b by group ID, as
// DescribeSecurityGroups lists them.
func sortedNames(a, b, na, nb string) string {
	if a < b {
		return na + "," + nb
	}
	return nb + "," + na
}

func TestSecurityGroupDryRunAndErrors(t *testing.T) {
	e := newSGEnv(t)
	ctx := tctx(t)
	id := e.create(t, "web", nil)
	_, err := e.c.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{GroupName: aws.String("x"), Description: aws.String("x"), DryRun: aws.Bool(true)})
	wantAPIError(t, err, "DryRunOperation")
	_, err = e.c.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: &id, DryRun: aws.Bool(true),
		IpProtocol: aws.String("tcp"), FromPort: aws.Int32(22), ToPort: aws.Int32(22), CidrIp: aws.String("0.0.0.0/0")})
	wantAPIError(t, err, "DryRunOperation")
	_, err = e.c.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: &id, DryRun: aws.Bool(true),
		IpProtocol: aws.String("tcp"), CidrIp: aws.String("0.0.0.0/0")})
	if msg := wantAPIError(t, err, "InvalidParameterValue"); !strings.Contains(msg, "portRange") {
		t.Fatalf("message %q", msg)
	}
	_, err = e.c.DeleteSecurityGroup(ctx, &ec2.DeleteSecurityGroupInput{GroupId: &id, DryRun: aws.Bool(true)})
	wantAPIError(t, err, "DryRunOperation")
	if g := e.describe(t, id); len(g.IpPermissions) != 0 {
		t.Fatalf("a dry run wrote: %+v", g.IpPermissions)
	}
	_, err = e.c.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: aws.String("sg-0123456789abcdef0"),
		IpProtocol: aws.String("tcp"), FromPort: aws.Int32(22), ToPort: aws.Int32(22), CidrIp: aws.String("0.0.0.0/0")})
	wantAPIError(t, err, "InvalidGroup.NotFound")
	_, err = e.c.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: &id,
		IpProtocol: aws.String("bogus"), CidrIp: aws.String("0.0.0.0/0")})
	if msg := wantAPIError(t, err, "InvalidParameterValue"); !strings.Contains(msg, "bogus") {
		t.Fatalf("message %q", msg)
	}
	_, err = e.c.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{GroupName: aws.String("web"), Description: aws.String("again")})
	wantAPIError(t, err, "InvalidGroup.Duplicate")
	_, err = e.c.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{GroupName: aws.String("x"), Description: aws.String("x"), VpcId: aws.String("vpc-0123456789abcdef0")})
	wantAPIError(t, err, "InvalidVpcID.NotFound")
	// Legacy source group: all TCP, UDP and ICMP from it.
	auth, err := e.c.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: &id, SourceSecurityGroupName: aws.String("default")})
	if err != nil || len(auth.SecurityGroupRules) != 3 {
		t.Fatalf("source group: %+v %v", auth, err)
	}
	// A non-default VPC: unknown rules are an error.
	v, err := e.c.CreateVpc(ctx, &ec2.CreateVpcInput{CidrBlock: aws.String("10.1.0.0/16")})
	if err != nil {
		t.Fatal(err)
	}
	app := e.create(t, "app", v.Vpc.VpcId)
	_, err = e.c.RevokeSecurityGroupIngress(ctx, &ec2.RevokeSecurityGroupIngressInput{GroupId: &app, IpPermissions: []types.IpPermission{
		{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(22), ToPort: aws.Int32(22), IpRanges: []types.IpRange{{CidrIp: aws.String("1.1.1.1/32")}}}}})
	wantAPIError(t, err, "InvalidPermission.NotFound")
	_, err = e.c.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: &app, IpPermissions: []types.IpPermission{
		{IpProtocol: aws.String("-1"), UserIdGroupPairs: []types.UserIdGroupPair{{GroupId: &id}}}}})
	wantAPIError(t, err, "InvalidGroup.NotFound") // another VPC's group
}
