package ec2

import (
	"context"
	"strings"

	"nubo/internal/api/ec2query"
	"nubo/internal/apierr"
)

// Region is the one region a nubo deployment serves, and its zones.
type Region struct {
	Name     string
	Endpoint string // host[:port] clients reach the API at
	Zones    []Zone
}

// Zone is an availability zone: its name and its account-independent ID.
type Zone struct {
	Name string // us-east-1a
	ID   string // use1-az1
}

// NewRegion names zones region+letter ("a", "b", …) with IDs in AWS's form.
func NewRegion(name, endpoint string, letters []string) Region {
	r := Region{Name: name, Endpoint: endpoint}
	for i, l := range letters {
		r.Zones = append(r.Zones, Zone{Name: name + l, ID: zonePrefix(name) + "-az" + string(rune('1'+i))})
	}
	return r
}

// zonePrefix shortens a region as AWS's zone IDs do: us-east-1 → use1,
// ap-southeast-2 → apse2, eu-central-1 → euc1.
func zonePrefix(region string) string {
	parts := strings.Split(region, "-")
	if len(parts) < 3 {
		return region
	}
	dirs := map[string]string{"north": "n", "south": "s", "east": "e", "west": "w", "central": "c",
		"northeast": "ne", "northwest": "nw", "southeast": "se", "southwest": "sw"}
	d, ok := dirs[parts[len(parts)-2]]
	if !ok {
		d = parts[len(parts)-2][:1]
	}
	return strings.Join(parts[:len(parts)-2], "") + d + parts[len(parts)-1]
}

type regionItem struct {
	RegionName     string `xml:"regionName"`
	RegionEndpoint string `xml:"regionEndpoint"`
	OptInStatus    string `xml:"optInStatus"`
}

var regionFilters = map[string]ec2query.FilterFunc[regionItem]{
	"endpoint":      func(r regionItem) []string { return []string{r.RegionEndpoint} },
	"region-name":   func(r regionItem) []string { return []string{r.RegionName} },
	"opt-in-status": func(r regionItem) []string { return []string{r.OptInStatus} },
}

func (a *API) describeRegions(ctx context.Context, r *ec2query.Request) (any, error) {
	filters, err := ec2query.ParseFilters(r.Params)
	if err != nil {
		return nil, err
	}
	m, err := ec2query.Compile(filters, regionFilters, nil)
	if err != nil {
		return nil, err
	}
	if _, err := r.Params.Bool("AllRegions"); err != nil {
		return nil, err
	}
	for _, name := range r.Params.Strings("RegionName") {
		if name != a.Region.Name {
			return nil, apierr.New(apierr.InvalidParameterValue, "Invalid region: %s. This endpoint serves %s.", name, a.Region.Name)
		}
	}
	items := m.Apply([]regionItem{{RegionName: a.Region.Name, RegionEndpoint: a.Region.Endpoint, OptInStatus: "opt-in-not-required"}})
	return struct {
		RegionInfo ec2query.List[regionItem] `xml:"regionInfo"`
	}{ec2query.ListOf(items)}, nil
}

type zoneItem struct {
	ZoneName           string                  `xml:"zoneName"`
	ZoneState          string                  `xml:"zoneState"`
	RegionName         string                  `xml:"regionName"`
	ZoneID             string                  `xml:"zoneId"`
	ZoneType           string                  `xml:"zoneType"`
	OptInStatus        string                  `xml:"optInStatus"`
	GroupName          string                  `xml:"groupName"`
	NetworkBorderGroup string                  `xml:"networkBorderGroup"`
	MessageSet         ec2query.List[struct{}] `xml:"messageSet"`
}

var zoneFilters = map[string]ec2query.FilterFunc[zoneItem]{
	"zone-name":            func(z zoneItem) []string { return []string{z.ZoneName} },
	"zone-id":              func(z zoneItem) []string { return []string{z.ZoneID} },
	"state":                func(z zoneItem) []string { return []string{z.ZoneState} },
	"region-name":          func(z zoneItem) []string { return []string{z.RegionName} },
	"zone-type":            func(z zoneItem) []string { return []string{z.ZoneType} },
	"group-name":           func(z zoneItem) []string { return []string{z.GroupName} },
	"opt-in-status":        func(z zoneItem) []string { return []string{z.OptInStatus} },
	"network-border-group": func(z zoneItem) []string { return []string{z.NetworkBorderGroup} },
}

func (a *API) describeAvailabilityZones(ctx context.Context, r *ec2query.Request) (any, error) {
	filters, err := ec2query.ParseFilters(r.Params)
	if err != nil {
		return nil, err
	}
	m, err := ec2query.Compile(filters, zoneFilters, nil)
	if err != nil {
		return nil, err
	}
	if _, err := r.Params.Bool("AllAvailabilityZones"); err != nil {
		return nil, err
	}
	names, ids := r.Params.Strings("ZoneName"), r.Params.Strings("ZoneId")
	var items []zoneItem
	for _, z := range a.Region.Zones {
		items = append(items, zoneItem{ZoneName: z.Name, ZoneState: "available", RegionName: a.Region.Name,
			ZoneID: z.ID, ZoneType: "availability-zone", OptInStatus: "opt-in-not-required",
			GroupName: a.Region.Name, NetworkBorderGroup: a.Region.Name})
	}
	if len(names) > 0 || len(ids) > 0 {
		want := map[string]bool{}
		for _, n := range names {
			want[n] = true
		}
		for _, id := range ids {
			want[id] = true
		}
		var picked []zoneItem
		for _, z := range items {
			if want[z.ZoneName] || want[z.ZoneID] {
				picked = append(picked, z)
				delete(want, z.ZoneName)
				delete(want, z.ZoneID)
			}
		}
		for _, n := range append(names, ids...) {
			if want[n] {
				return nil, apierr.New(apierr.InvalidParameterValue, "The zone '%s' does not exist in region %s.", n, a.Region.Name)
			}
		}
		items = picked
	}
	return struct {
		AvailabilityZoneInfo ec2query.List[zoneItem] `xml:"availabilityZoneInfo"`
	}{ec2query.ListOf(m.Apply(items))}, nil
}
