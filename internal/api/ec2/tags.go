package ec2

import (
	"context"

	"nubo/internal/api/ec2query"
	"nubo/internal/apierr"
	"nubo/internal/resource"
)

// parseTags reads "<name>.N.Key" / "<name>.N.Value".
func parseTags(p ec2query.Params, name string) []resource.Tag {
	var out []resource.Tag
	for _, m := range p.Members(name) {
		out = append(out, resource.Tag{Key: m.String("Key"), Value: m.String("Value"), HasValue: m.Has("Value")})
	}
	return out
}

// parseTagSpecs reads TagSpecification.N on a create call that makes a
// resource of kind k, and returns the tags to put on it.
func parseTagSpecs(p ec2query.Params, k resource.Kind) ([]resource.Tag, error) {
	var out []resource.Tag
	for _, spec := range p.Members("TagSpecification") {
		rt, err := spec.Required("ResourceType")
		if err != nil {
			return nil, err
		}
		if rt != k.Name {
			return nil, apierr.New(apierr.InvalidParameterValue, "'%s' is not a valid taggable resource type for this operation (%s).", rt, spec.Name("ResourceType"))
		}
		tags := parseTags(spec, "Tag")
		if err := resource.ValidateTags(spec.Name("Tag"), tags); err != nil {
			return nil, err
		}
		out = append(out, tags...)
	}
	return out, nil
}

func (a *API) createTags(ctx context.Context, r *ec2query.Request) (any, error) {
	ids := r.Params.Strings("ResourceId")
	if len(ids) == 0 {
		return nil, apierr.Missing("ResourceId")
	}
	tags := parseTags(r.Params, "Tag")
	if len(tags) == 0 {
		return nil, apierr.Missing("Tag")
	}
	if err := resource.ValidateTags("Tag", tags); err != nil {
		return nil, err
	}
	if err := r.CheckDryRun(); err != nil {
		return nil, err
	}
	if err := a.Tags.Create(ctx, a.scope(r), ids, tags); err != nil {
		return nil, err
	}
	return returnTrue{true}, nil
}

func (a *API) deleteTags(ctx context.Context, r *ec2query.Request) (any, error) {
	ids := r.Params.Strings("ResourceId")
	if len(ids) == 0 {
		return nil, apierr.Missing("ResourceId")
	}
	tags := parseTags(r.Params, "Tag")
	for _, t := range tags {
		if t.Key == "" {
			return nil, apierr.Missing("Tag.N.Key")
		}
	}
	if err := r.CheckDryRun(); err != nil {
		return nil, err
	}
	if err := a.Tags.Delete(ctx, a.scope(r), ids, tags); err != nil {
		return nil, err
	}
	return returnTrue{true}, nil
}

type tagItem struct {
	ResourceID   string `xml:"resourceId"`
	ResourceType string `xml:"resourceType"`
	Key          string `xml:"key"`
	Value        string `xml:"value"`
}

var tagFilters = map[string]ec2query.FilterFunc[resource.TagDescription]{
	"key":           func(t resource.TagDescription) []string { return []string{t.Key} },
	"value":         func(t resource.TagDescription) []string { return []string{t.Value} },
	"resource-id":   func(t resource.TagDescription) []string { return []string{t.ResourceID} },
	"resource-type": func(t resource.TagDescription) []string { return []string{t.ResourceType} },
}

func (a *API) describeTags(ctx context.Context, r *ec2query.Request) (any, error) {
	filters, err := ec2query.ParseFilters(r.Params)
	if err != nil {
		return nil, err
	}
	m, err := ec2query.Compile(filters, tagFilters, nil)
	if err != nil {
		return nil, err
	}
	page, err := ec2query.ParsePage(r.Params, 5, 1000)
	if err != nil {
		return nil, err
	}
	all, err := a.Tags.List(ctx, a.scope(r))
	if err != nil {
		return nil, err
	}
	tags, next, err := ec2query.Paginate(m.Apply(all), func(t resource.TagDescription) string {
		return t.ResourceID + "\x00" + t.Key
	}, page)
	if err != nil {
		return nil, err
	}
	items := make([]tagItem, len(tags))
	for i, t := range tags {
		items[i] = tagItem{t.ResourceID, t.ResourceType, t.Key, t.Value}
	}
	return struct {
		TagSet    ec2query.List[tagItem] `xml:"tagSet"`
		NextToken string                 `xml:"nextToken,omitempty"`
	}{ec2query.ListOf(items), next}, nil
}
