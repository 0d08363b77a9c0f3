package ec2

import (
	"context"
	"sort"

	"nubo/internal/api/ec2query"
	"nubo/internal/apierr"
	"nubo/internal/placementgroup"
	"nubo/internal/resource"
)

// placementGroupItem is EC2's PlacementGroup as CreatePlacementGroup and
// DescribePlacementGroups answer it.
type placementGroupItem struct {
	GroupName      string                       `xml:"groupName"`
	State          string                       `xml:"state"`
	Strategy       string                       `xml:"strategy"`
	PartitionCount int                          `xml:"partitionCount,omitempty"`
	GroupID        string                       `xml:"groupId"`
	TagSet         *ec2query.List[ec2query.Tag] `xml:"tagSet"`
	GroupArn       string                       `xml:"groupArn"`
	SpreadLevel    string                       `xml:"spreadLevel,omitempty"`
}

func placementGroupOf(g placementgroup.Group) placementGroupItem {
	return placementGroupItem{GroupName: g.Name, State: g.State, Strategy: g.Strategy, PartitionCount: g.PartitionCount,
		GroupID: g.ID, TagSet: ec2query.TagSet(g.Tags), GroupArn: g.ARN(), SpreadLevel: g.SpreadLevel}
}

// withPlacementGroups refuses the call where no service was wired.
func (a *API) withPlacementGroups(h ec2query.Handler) ec2query.Handler {
	return func(ctx context.Context, r *ec2query.Request) (any, error) {
		if a.PlacementGroups == nil {
			return nil, apierr.New(apierr.UnsupportedOperation, "Placement groups are not offered by this endpoint.")
		}
		return h(ctx, r)
	}
}

func (a *API) createPlacementGroup(ctx context.Context, r *ec2query.Request) (any, error) {
	spec := placementgroup.Spec{
		Name:        r.Params.String("GroupName"),
		Strategy:    r.Params.String("Strategy"),
		SpreadLevel: r.Params.String("SpreadLevel"),
	}
	n, ok, err := r.Params.Int("PartitionCount")
	if err != nil {
		return nil, err
	}
	if ok {
		spec.PartitionCount = &n
	}
	if spec.Tags, err = parseTagSpecs(r.Params, resource.PlacementGroup); err != nil {
		return nil, err
	}
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if err := r.CheckDryRun(); err != nil {
		return nil, err
	}
	g, err := a.PlacementGroups.Create(ctx, r.Account, spec)
	if err != nil {
		return nil, err
	}
	return struct {
		PlacementGroup placementGroupItem `xml:"placementGroup"`
	}{placementGroupOf(g)}, nil
}

var placementGroupFilters = map[string]ec2query.FilterFunc[placementgroup.Group]{
	"group-name":   func(g placementgroup.Group) []string { return one(g.Name) },
	"group-arn":    func(g placementgroup.Group) []string { return one(g.ARN()) },
	"state":        func(g placementgroup.Group) []string { return one(g.State) },
	"strategy":     func(g placementgroup.Group) []string { return one(g.Strategy) },
	"spread-level": func(g placementgroup.Group) []string { return one(g.SpreadLevel) },
}

// describePlacementGroups answers every match at once: EC2 does not page
// this call.
func (a *API) describePlacementGroups(ctx context.Context, r *ec2query.Request) (any, error) {
	filters, err := ec2query.ParseFilters(r.Params)
	if err != nil {
		return nil, err
	}
	m, err := ec2query.Compile(filters, placementGroupFilters, func(g placementgroup.Group) ec2query.Tags { return g.Tags })
	if err != nil {
		return nil, err
	}
	names, ids := r.Params.Strings("GroupName"), r.Params.Strings("GroupId")
	for _, id := range ids {
		if err := placementgroup.CheckID(id); err != nil {
			return nil, err
		}
	}
	var all []placementgroup.Group
	if len(names) > 0 || len(ids) > 0 {
		all, err = a.selectPlacementGroups(ctx, r.Account, names, ids)
	} else {
		all, err = a.PlacementGroups.List(ctx, r.Account)
	}
	if err != nil {
		return nil, err
	}
	var items []placementGroupItem
	for _, g := range m.Apply(all) {
		items = append(items, placementGroupOf(g))
	}
	return struct {
		PlacementGroupSet ec2query.List[placementGroupItem] `xml:"placementGroupSet"`
	}{ec2query.ListOf(items)}, nil
}

// selectPlacementGroups fetches the groups asked for by name or ID, each
// once; as in EC2, one that does not exist fails the whole call.
func (a *API) selectPlacementGroups(ctx context.Context, account string, names, ids []string) ([]placementgroup.Group, error) {
	seen := map[string]bool{}
	var out []placementgroup.Group
	add := func(g placementgroup.Group, err error) error {
		if err == nil && !seen[g.ID] {
			seen[g.ID] = true
			out = append(out, g)
		}
		return err
	}
	for _, n := range names {
		if err := add(a.PlacementGroups.ByName(ctx, account, n)); err != nil {
			return nil, err
		}
	}
	for _, id := range ids {
		if err := add(a.PlacementGroups.Get(ctx, account, id)); err != nil {
			return nil, err
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func (a *API) deletePlacementGroup(ctx context.Context, r *ec2query.Request) (any, error) {
	name, err := r.Params.Required("GroupName")
	if err != nil {
		return nil, err
	}
	if _, err := a.PlacementGroups.ByName(ctx, r.Account, name); err != nil {
		return nil, err
	}
	if err := r.CheckDryRun(); err != nil {
		return nil, err
	}
	if err := a.PlacementGroups.Delete(ctx, r.Account, name, ""); err != nil {
		return nil, err
	}
	return returnTrue{true}, nil
}
