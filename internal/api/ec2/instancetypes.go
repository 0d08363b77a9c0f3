package ec2

import (
	"context"
	"strings"

	"nubo/internal/api/ec2query"
	"nubo/internal/apierr"
	"nubo/internal/catalog"
)

// filterBy adapts a type's own FilterValues method to ec2query's filters.
func filterBy[T interface {
	FilterValues(string) ([]string, bool)
}](name string) (ec2query.FilterFunc[T], bool) {
	var zero T
	if _, ok := zero.FilterValues(name); !ok {
		return nil, false
	}
	return func(t T) []string {
		v, _ := t.FilterValues(name)
		return v
	}, true
}

func (a *API) describeInstanceTypes(ctx context.Context, r *ec2query.Request) (any, error) {
	filters, err := ec2query.ParseFilters(r.Params)
	if err != nil {
		return nil, err
	}
	m, err := ec2query.CompileWith(filters, filterBy[catalog.InstanceType], nil)
	if err != nil {
		return nil, err
	}
	page, err := ec2query.ParsePage(r.Params, 5, 100)
	if err != nil {
		return nil, err
	}
	if page.Max == 0 {
		page.Max = 100 // EC2 pages DescribeInstanceTypes at 100 even unasked
	}
	types := catalog.InstanceTypes()
	if names := r.Params.Strings("InstanceType"); len(names) > 0 {
		var picked []catalog.InstanceType
		var missing []string
		for _, n := range names {
			if t, ok := catalog.LookupInstanceType(n); ok {
				picked = append(picked, t)
			} else {
				missing = append(missing, n)
			}
		}
		if len(missing) > 0 {
			return nil, apierr.New("InvalidInstanceType", "The following supplied instance types do not exist: [%s]", strings.Join(missing, ", "))
		}
		types = picked
	}
	items, next, err := ec2query.Paginate(m.Apply(types), func(t catalog.InstanceType) string { return t.InstanceType }, page)
	if err != nil {
		return nil, err
	}
	return struct {
		InstanceTypeSet ec2query.List[catalog.InstanceType] `xml:"instanceTypeSet"`
		NextToken       string                              `xml:"nextToken,omitempty"`
	}{ec2query.ListOf(items), next}, nil
}

func (a *API) describeInstanceTypeOfferings(ctx context.Context, r *ec2query.Request) (any, error) {
	lt := r.Params.String("LocationType")
	switch lt {
	case "":
		lt = "region"
	case "region", "availability-zone", "availability-zone-id":
	default:
		return nil, apierr.InvalidValue("LocationType", lt, "Valid values are region, availability-zone and availability-zone-id.")
	}
	filters, err := ec2query.ParseFilters(r.Params)
	if err != nil {
		return nil, err
	}
	m, err := ec2query.CompileWith(filters, filterBy[catalog.Offering], nil)
	if err != nil {
		return nil, err
	}
	page, err := ec2query.ParsePage(r.Params, 5, 1000)
	if err != nil {
		return nil, err
	}
	if page.Max == 0 {
		page.Max = 1000
	}
	var zones, ids []string
	for _, z := range a.Region.Zones {
		zones, ids = append(zones, z.Name), append(ids, z.ID)
	}
	offers := catalog.Offerings(lt, a.Region.Name, zones, ids)
	items, next, err := ec2query.Paginate(m.Apply(offers), func(o catalog.Offering) string {
		return o.InstanceType + "\x00" + o.Location
	}, page)
	if err != nil {
		return nil, err
	}
	return struct {
		InstanceTypeOfferingSet ec2query.List[catalog.Offering] `xml:"instanceTypeOfferingSet"`
		NextToken               string                          `xml:"nextToken,omitempty"`
	}{ec2query.ListOf(items), next}, nil
}
