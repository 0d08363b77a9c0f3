package ec2

import (
	"context"
	"encoding/xml"
	"fmt"
	"strings"
	"sync"

	"nubo/internal/api/ec2query"
	"nubo/internal/apierr"
	"nubo/internal/catalog"
)

// filterBy adapts a type's own FilterValues method to ec2query's filters;
// probe is any value of the type, asked which filter names exist.
func filterBy[T interface {
	FilterValues(string) ([]string, bool)
}](probe T) func(string) (ec2query.FilterFunc[T], bool) {
	return func(name string) (ec2query.FilterFunc[T], bool) {
		if _, ok := probe.FilterValues(name); !ok {
			return nil, false
		}
		return func(t T) []string {
			v, _ := t.FilterValues(name)
			return v
		}, true
	}
}

// instanceTypes is the catalogue, built once; read-only.
var instanceTypes = sync.OnceValue(func() []*catalog.InstanceType {
	all := catalog.InstanceTypes()
	out := make([]*catalog.InstanceType, len(all))
	for i := range all {
		out[i] = &all[i]
	}
	return out
})

func (a *API) describeInstanceTypes(ctx context.Context, r *ec2query.Request) (any, error) {
	filters, err := ec2query.ParseFilters(r.Params)
	if err != nil {
		return nil, err
	}
	m, err := ec2query.CompileWith(filters, filterBy(&catalog.InstanceType{}), nil)
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
	types := instanceTypes()
	if names := r.Params.Strings("InstanceType"); len(names) > 0 {
		byName := map[string]*catalog.InstanceType{}
		for _, t := range types {
			byName[t.InstanceType] = t
		}
		var picked []*catalog.InstanceType
		var missing []string
		for _, n := range names {
			if t, ok := byName[n]; ok {
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
	items, next, err := ec2query.Paginate(m.Apply(types), func(t *catalog.InstanceType) string { return t.InstanceType }, page)
	if err != nil {
		return nil, err
	}
	encoded, err := instanceTypeXML()
	if err != nil {
		return nil, err
	}
	size := 0
	for _, t := range items {
		size += len(encoded[t.InstanceType])
	}
	set := rawXML{Inner: make([]byte, 0, size)}
	for _, t := range items {
		set.Inner = append(set.Inner, encoded[t.InstanceType]...)
	}
	return struct {
		InstanceTypeSet rawXML `xml:"instanceTypeSet"`
		NextToken       string `xml:"nextToken,omitempty"`
	}{set, next}, nil
}

// rawXML is already-encoded XML content.
type rawXML struct {
	Inner []byte `xml:",innerxml"`
}

// instanceTypeXML is each catalogue type's <item>, encoded once: the catalogue
// never changes, and encoding it was most of DescribeInstanceTypes' cost.
var instanceTypeXML = sync.OnceValues(func() (map[string][]byte, error) {
	out := map[string][]byte{}
	for _, t := range instanceTypes() {
		b, err := xml.Marshal(t)
		if err != nil {
			return nil, fmt.Errorf("encoding instance type %s: %w", t.InstanceType, err)
		}
		out[t.InstanceType] = b
	}
	return out, nil
})

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
	m, err := ec2query.CompileWith(filters, filterBy(catalog.Offering{}), nil)
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
