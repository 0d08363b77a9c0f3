package ec2

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"net/url"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"nubo/internal/api/ec2query"
	"nubo/internal/apierr"
	"nubo/internal/nubotest"
	"nubo/internal/placementgroup"
	"nubo/internal/resource"
	"nubo/internal/store/storetest"
)

// pgEnv serves the placement group actions over a real embedded etcd to
// aws-sdk-go-v2; busy marks groups InUse reports as having instances.
type pgEnv struct {
	c    *ec2.Client
	api  *API
	busy map[string]bool
}

func newPGEnv(t *testing.T) *pgEnv {
	t.Helper()
	st := storetest.New(t)
	e := &pgEnv{busy: map[string]bool{}}
	pgs := &placementgroup.Service{Store: st, Region: "us-east-1",
		InUse: func(_ context.Context, _, id string) (bool, error) { return e.busy[id], nil }}
	e.api = &API{Region: NewRegion("us-east-1", "localhost", []string{"a"}), Tags: resource.Tagger{Store: st}, PlacementGroups: pgs}
	q := &ec2query.Server{Region: "us-east-1", Actions: e.api.Actions(), Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Lookup: func(string) (ec2query.Account, bool) {
			return ec2query.Account{ID: testAccount, Secret: "secret"}, true
		}}
	srv := httptest.NewServer(q)
	t.Cleanup(srv.Close)
	e.c = ec2.NewFromConfig(aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL), RetryMaxAttempts: 1, HTTPClient: nubotest.HTTPClient,
		Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", "")})
	return e
}

func (e *pgEnv) create(t *testing.T, in *ec2.CreatePlacementGroupInput) types.PlacementGroup {
	t.Helper()
	out, err := e.c.CreatePlacementGroup(tctx(t), in)
	if err != nil {
		t.Fatal(err)
	}
	return *out.PlacementGroup
}

// names describes with in and returns the group names, in answer order.
func (e *pgEnv) names(t *testing.T, in *ec2.DescribePlacementGroupsInput) []string {
	t.Helper()
	out, err := e.c.DescribePlacementGroups(tctx(t), in)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, g := range out.PlacementGroups {
		names = append(names, aws.ToString(g.GroupName))
	}
	slices.Sort(names)
	return names
}

func pgFilter(name string, values ...string) *ec2.DescribePlacementGroupsInput {
	return &ec2.DescribePlacementGroupsInput{Filters: []types.Filter{{Name: aws.String(name), Values: values}}}
}

func TestPlacementGroupsWithSDK(t *testing.T) {
	e := newPGEnv(t)
	c := e.create(t, &ec2.CreatePlacementGroupInput{GroupName: aws.String("web"), Strategy: types.PlacementStrategyCluster,
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypePlacementGroup, Tags: []types.Tag{{Key: aws.String("env"), Value: aws.String("prod")}}}}})
	if !resource.ValidID(resource.PlacementGroup, aws.ToString(c.GroupId)) || c.State != types.PlacementGroupStateAvailable ||
		aws.ToString(c.GroupArn) != "arn:aws:ec2:us-east-1:"+testAccount+":placement-group/web" || c.PartitionCount != nil || c.SpreadLevel != "" ||
		len(c.Tags) != 1 || aws.ToString(c.Tags[0].Value) != "prod" {
		t.Errorf("cluster group: %+v", c)
	}
	s := e.create(t, &ec2.CreatePlacementGroupInput{GroupName: aws.String("spread"), Strategy: types.PlacementStrategySpread})
	if s.SpreadLevel != types.SpreadLevelRack {
		t.Errorf("spread level %q, want rack", s.SpreadLevel)
	}
	h := e.create(t, &ec2.CreatePlacementGroupInput{GroupName: aws.String("hosts"), Strategy: types.PlacementStrategySpread, SpreadLevel: types.SpreadLevelHost})
	if h.SpreadLevel != types.SpreadLevelHost {
		t.Errorf("spread level %q, want host", h.SpreadLevel)
	}
	p := e.create(t, &ec2.CreatePlacementGroupInput{GroupName: aws.String("parts"), Strategy: types.PlacementStrategyPartition})
	if aws.ToInt32(p.PartitionCount) != 2 {
		t.Errorf("partition count %v, want EC2's default 2", p.PartitionCount)
	}
	p5 := e.create(t, &ec2.CreatePlacementGroupInput{GroupName: aws.String("parts5"), Strategy: types.PlacementStrategyPartition, PartitionCount: aws.Int32(5)})
	if aws.ToInt32(p5.PartitionCount) != 5 || p5.Strategy != types.PlacementStrategyPartition {
		t.Errorf("partition group: %+v", p5)
	}

	all := []string{"hosts", "parts", "parts5", "spread", "web"}
	if got := e.names(t, &ec2.DescribePlacementGroupsInput{}); !slices.Equal(got, all) {
		t.Errorf("all: %v", got)
	}
	out, err := e.c.DescribePlacementGroups(tctx(t), &ec2.DescribePlacementGroupsInput{GroupNames: []string{"web"}})
	if err != nil || len(out.PlacementGroups) != 1 {
		t.Fatalf("by name: %+v, %v", out, err)
	}
	if d := out.PlacementGroups[0]; aws.ToString(d.GroupId) != aws.ToString(c.GroupId) || aws.ToString(d.GroupArn) != aws.ToString(c.GroupArn) ||
		d.Strategy != types.PlacementStrategyCluster || d.State != types.PlacementGroupStateAvailable || len(d.Tags) != 1 {
		t.Errorf("described: %+v", d)
	}
	for _, tc := range []struct {
		in   *ec2.DescribePlacementGroupsInput
		want []string
	}{
		{&ec2.DescribePlacementGroupsInput{GroupIds: []string{aws.ToString(p.GroupId), aws.ToString(s.GroupId)}}, []string{"parts", "spread"}},
		{&ec2.DescribePlacementGroupsInput{GroupNames: []string{"web"}, GroupIds: []string{aws.ToString(c.GroupId), aws.ToString(h.GroupId)}}, []string{"hosts", "web"}},
		{pgFilter("group-name", "parts*"), []string{"parts", "parts5"}},
		{pgFilter("group-arn", aws.ToString(h.GroupArn)), []string{"hosts"}},
		{pgFilter("state", "available"), all},
		{pgFilter("state", "deleted"), nil},
		{pgFilter("strategy", "spread", "cluster"), []string{"hosts", "spread", "web"}},
		{pgFilter("spread-level", "rack"), []string{"spread"}},
		{pgFilter("tag:env", "prod"), []string{"web"}},
		{pgFilter("tag-key", "env"), []string{"web"}},
		{&ec2.DescribePlacementGroupsInput{GroupNames: []string{"web", "parts"}, Filters: []types.Filter{{Name: aws.String("strategy"), Values: []string{"partition"}}}}, []string{"parts"}},
	} {
		if got := e.names(t, tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("%+v: %v, want %v", tc.in, got, tc.want)
		}
	}

	// Tags through CreateTags / DescribeTags on the pg- ID.
	if _, err := e.c.CreateTags(tctx(t), &ec2.CreateTagsInput{Resources: []string{aws.ToString(s.GroupId)},
		Tags: []types.Tag{{Key: aws.String("team"), Value: aws.String("a")}}}); err != nil {
		t.Fatal(err)
	}
	tags, err := e.c.DescribeTags(tctx(t), &ec2.DescribeTagsInput{Filters: []types.Filter{{Name: aws.String("resource-type"), Values: []string{"placement-group"}}}})
	if err != nil || len(tags.Tags) != 2 {
		t.Fatalf("DescribeTags: %+v, %v", tags, err)
	}
	if got := e.names(t, pgFilter("tag:team", "a")); !slices.Equal(got, []string{"spread"}) {
		t.Errorf("tag:team: %v", got)
	}

	// Delete: refused while in use, then gone, and the name free again.
	e.busy[aws.ToString(c.GroupId)] = true
	_, err = e.c.DeletePlacementGroup(tctx(t), &ec2.DeletePlacementGroupInput{GroupName: aws.String("web")})
	if msg := wantAPIError(t, err, "InvalidPlacementGroup.InUse"); msg != "The placement group 'web' is in use and may not be deleted." {
		t.Errorf("message %q", msg)
	}
	e.busy[aws.ToString(c.GroupId)] = false
	_, err = e.c.DeletePlacementGroup(tctx(t), &ec2.DeletePlacementGroupInput{GroupName: aws.String("web"), DryRun: aws.Bool(true)})
	wantAPIError(t, err, apierr.DryRunOperation)
	if _, err := e.c.DeletePlacementGroup(tctx(t), &ec2.DeletePlacementGroupInput{GroupName: aws.String("web")}); err != nil {
		t.Fatal(err)
	}
	_, err = e.c.DescribePlacementGroups(tctx(t), &ec2.DescribePlacementGroupsInput{GroupNames: []string{"web"}})
	wantAPIError(t, err, "InvalidPlacementGroup.Unknown")
	e.create(t, &ec2.CreatePlacementGroupInput{GroupName: aws.String("web"), Strategy: types.PlacementStrategySpread})
}

func TestPlacementGroupErrorsWithSDK(t *testing.T) {
	e := newPGEnv(t)
	g := e.create(t, &ec2.CreatePlacementGroupInput{GroupName: aws.String("web"), Strategy: types.PlacementStrategyCluster})
	for _, tc := range []struct {
		name string
		in   *ec2.CreatePlacementGroupInput
		code string
	}{
		{"no name", &ec2.CreatePlacementGroupInput{Strategy: types.PlacementStrategyCluster}, apierr.MissingParameter},
		{"no strategy", &ec2.CreatePlacementGroupInput{GroupName: aws.String("x")}, apierr.MissingParameter},
		{"bad strategy", &ec2.CreatePlacementGroupInput{GroupName: aws.String("x"), Strategy: "clump"}, apierr.InvalidParameterValue},
		{"duplicate", &ec2.CreatePlacementGroupInput{GroupName: aws.String("web"), Strategy: types.PlacementStrategySpread}, "InvalidPlacementGroup.Duplicate"},
		{"partitions on cluster", &ec2.CreatePlacementGroupInput{GroupName: aws.String("x"), Strategy: types.PlacementStrategyCluster, PartitionCount: aws.Int32(2)}, apierr.InvalidParameterCombination},
		{"eight partitions", &ec2.CreatePlacementGroupInput{GroupName: aws.String("x"), Strategy: types.PlacementStrategyPartition, PartitionCount: aws.Int32(8)}, apierr.InvalidParameterValue},
		{"level on partition", &ec2.CreatePlacementGroupInput{GroupName: aws.String("x"), Strategy: types.PlacementStrategyPartition, SpreadLevel: types.SpreadLevelRack}, apierr.InvalidParameterCombination},
		{"bad level", &ec2.CreatePlacementGroupInput{GroupName: aws.String("x"), Strategy: types.PlacementStrategySpread, SpreadLevel: "room"}, apierr.InvalidParameterValue},
		{"tags for another type", &ec2.CreatePlacementGroupInput{GroupName: aws.String("x"), Strategy: types.PlacementStrategySpread,
			TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeInstance, Tags: []types.Tag{{Key: aws.String("k")}}}}}, apierr.InvalidParameterValue},
		{"dry run", &ec2.CreatePlacementGroupInput{GroupName: aws.String("x"), Strategy: types.PlacementStrategySpread, DryRun: aws.Bool(true)}, apierr.DryRunOperation},
	} {
		_, err := e.c.CreatePlacementGroup(tctx(t), tc.in)
		t.Run(tc.name, func(t *testing.T) { wantAPIError(t, err, tc.code) })
	}
	if got := e.names(t, &ec2.DescribePlacementGroupsInput{}); !slices.Equal(got, []string{"web"}) {
		t.Errorf("groups after failed creates: %v", got)
	}

	for _, tc := range []struct {
		name string
		in   *ec2.DescribePlacementGroupsInput
		code string
	}{
		{"unknown name", &ec2.DescribePlacementGroupsInput{GroupNames: []string{"web", "nope"}}, "InvalidPlacementGroup.Unknown"},
		{"unknown id", &ec2.DescribePlacementGroupsInput{GroupIds: []string{"pg-0123456789abcdef0"}}, "InvalidPlacementGroup.Unknown"},
		{"malformed id", &ec2.DescribePlacementGroupsInput{GroupIds: []string{aws.ToString(g.GroupId), "sg-0123456789abcdef0"}}, "InvalidPlacementGroupId.Malformed"},
		{"unknown filter", pgFilter("group-id", aws.ToString(g.GroupId)), apierr.InvalidParameterValue},
	} {
		_, err := e.c.DescribePlacementGroups(tctx(t), tc.in)
		t.Run(tc.name, func(t *testing.T) { wantAPIError(t, err, tc.code) })
	}

	_, err := e.c.DeletePlacementGroup(tctx(t), &ec2.DeletePlacementGroupInput{GroupName: aws.String("nope")})
	if msg := wantAPIError(t, err, "InvalidPlacementGroup.Unknown"); msg != "The Placement Group 'nope' is unknown." {
		t.Errorf("message %q", msg)
	}
	_, err = e.c.CreateTags(tctx(t), &ec2.CreateTagsInput{Resources: []string{"pg-0123456789abcdef0"}, Tags: []types.Tag{{Key: aws.String("k")}}})
	wantAPIError(t, err, "InvalidPlacementGroup.Unknown")
}

// Parameters the SDK cannot misspell, sent as a hand-written query would.
func TestPlacementGroupRawParameters(t *testing.T) {
	e := newPGEnv(t)
	call := func(h ec2query.Handler, params url.Values) error {
		_, err := h(tctx(t), &ec2query.Request{Account: testAccount, Params: ec2query.NewParams(params)})
		return err
	}
	if e, ok := apierr.As(call(e.api.deletePlacementGroup, url.Values{})); !ok || e.Code != apierr.MissingParameter {
		t.Errorf("DeletePlacementGroup without GroupName: %v", e)
	}
	for _, tc := range []struct {
		params url.Values
		code   string
	}{
		{url.Values{"GroupName": {"x"}, "Strategy": {"partition"}, "PartitionCount": {"two"}}, apierr.InvalidParameterValue},
		{url.Values{"GroupName": {"x"}, "Strategy": {"partition"}, "PartitionCount": {"0"}}, apierr.InvalidParameterValue},
		{url.Values{"GroupName": {"grüppe"}, "Strategy": {"cluster"}}, apierr.InvalidParameterValue},
		{url.Values{"GroupName": {"x"}, "Strategy": {"cluster"}, "TagSpecification.1.Tag.1.Key": {"k"}}, apierr.MissingParameter},
	} {
		e, ok := apierr.As(call(e.api.createPlacementGroup, tc.params))
		if !ok || e.Code != tc.code {
			t.Errorf("%v: %v, want %s", tc.params, e, tc.code)
		}
	}
}

func TestPlacementGroupsNotOffered(t *testing.T) {
	a := &API{}
	_, err := a.Actions()["DescribePlacementGroups"](context.Background(), &ec2query.Request{Account: testAccount})
	if e, ok := apierr.As(err); !ok || e.Code != apierr.UnsupportedOperation {
		t.Errorf("without a service: %v", err)
	}
}
