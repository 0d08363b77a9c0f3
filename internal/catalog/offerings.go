package catalog

// Offering mirrors EC2's InstanceTypeOffering, an <item> of
// DescribeInstanceTypeOfferings' <instanceTypeOfferingSet>.
type Offering struct {
	InstanceType string `xml:"instanceType"`
	LocationType string `xml:"locationType"`
	Location     string `xml:"location"`
}

// Location types of DescribeInstanceTypeOfferings.
const (
	LocationRegion           = "region"
	LocationAvailabilityZone = "availability-zone"
	LocationZoneID           = "availability-zone-id"
)

// Offerings returns where each catalogue type is offered, for locationType
// "region" (region), "availability-zone" (each of zones) or
// "availability-zone-id" (each of zoneIDs): every type is offered in the
// region and in every zone. Offerings are sorted by instance type, then by
// location in the order given. An unknown locationType offers nothing.
func Offerings(locationType, region string, zones []string, zoneIDs []string) []Offering {
	var locations []string
	switch locationType {
	case LocationRegion:
		locations = []string{region}
	case LocationAvailabilityZone:
		locations = zones
	case LocationZoneID:
		locations = zoneIDs
	default:
		return nil
	}
	var out []Offering
	for _, t := range InstanceTypes() {
		for _, l := range locations {
			out = append(out, Offering{InstanceType: t.InstanceType, LocationType: locationType, Location: l})
		}
	}
	return out
}

// FilterValues returns o's values for the DescribeInstanceTypeOfferings
// filter name ("instance-type" or "location"); ok is false for any other.
func (o Offering) FilterValues(name string) ([]string, bool) {
	switch name {
	case "instance-type":
		return []string{o.InstanceType}, true
	case "location":
		return []string{o.Location}, true
	}
	return nil, false
}
