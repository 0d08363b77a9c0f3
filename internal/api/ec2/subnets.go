package ec2

import (
	"context"
	"strconv"

	"nubo/internal/api/ec2query"
	"nubo/internal/apierr"
	"nubo/internal/resource"
	"nubo/internal/vpc"
)

type dnsNameOptions struct {
	HostnameType                    string `xml:"hostnameType"`
	EnableResourceNameDNSARecord    bool   `xml:"enableResourceNameDnsARecord"`
	EnableResourceNameDNSAAAARecord bool   `xml:"enableResourceNameDnsAAAARecord"`
}

type subnetItem struct {
	SubnetID                      string                       `xml:"subnetId"`
	SubnetArn                     string                       `xml:"subnetArn"`
	State                         string                       `xml:"state"`
	OwnerID                       string                       `xml:"ownerId"`
	VpcID                         string                       `xml:"vpcId"`
	CidrBlock                     string                       `xml:"cidrBlock"`
	Ipv6CidrBlockAssociationSet   ec2query.List[struct{}]      `xml:"ipv6CidrBlockAssociationSet"`
	AvailableIPAddressCount       int                          `xml:"availableIpAddressCount"`
	AvailabilityZone              string                       `xml:"availabilityZone"`
	AvailabilityZoneID            string                       `xml:"availabilityZoneId"`
	DefaultForAz                  bool                         `xml:"defaultForAz"`
	MapPublicIPOnLaunch           bool                         `xml:"mapPublicIpOnLaunch"`
	AssignIpv6AddressOnCreation   bool                         `xml:"assignIpv6AddressOnCreation"`
	MapCustomerOwnedIPOnLaunch    bool                         `xml:"mapCustomerOwnedIpOnLaunch"`
	EnableDNS64                   bool                         `xml:"enableDns64"`
	Ipv6Native                    bool                         `xml:"ipv6Native"`
	PrivateDNSNameOptionsOnLaunch dnsNameOptions               `xml:"privateDnsNameOptionsOnLaunch"`
	TagSet                        *ec2query.List[ec2query.Tag] `xml:"tagSet"`
}

func (a *API) subnetOf(ctx context.Context, account string, sn vpc.Subnet) (subnetItem, error) {
	free, err := a.VPCs.AvailableIPs(ctx, account, sn)
	if err != nil {
		return subnetItem{}, err
	}
	return subnetItem{
		SubnetID: sn.ID, SubnetArn: "arn:aws:ec2:" + a.Region.Name + ":" + account + ":subnet/" + sn.ID, State: "available",
		OwnerID: sn.Owner, VpcID: sn.VPCID, CidrBlock: sn.CIDR, AvailableIPAddressCount: free,
		AvailabilityZone: sn.Zone, AvailabilityZoneID: sn.ZoneID, DefaultForAz: sn.DefaultForAZ,
		MapPublicIPOnLaunch: sn.MapPublicIPOnLaunch, PrivateDNSNameOptionsOnLaunch: dnsNameOptions{HostnameType: "ip-name"},
		TagSet: ec2query.TagSet(sn.Tags),
	}, nil
}

var subnetFilters = map[string]ec2query.FilterFunc[vpc.Subnet]{
	"subnet-id":               func(s vpc.Subnet) []string { return one(s.ID) },
	"vpc-id":                  func(s vpc.Subnet) []string { return one(s.VPCID) },
	"cidr":                    func(s vpc.Subnet) []string { return one(s.CIDR) },
	"cidr-block":              func(s vpc.Subnet) []string { return one(s.CIDR) },
	"cidrBlock":               func(s vpc.Subnet) []string { return one(s.CIDR) },
	"availability-zone":       func(s vpc.Subnet) []string { return one(s.Zone) },
	"availabilityZone":        func(s vpc.Subnet) []string { return one(s.Zone) },
	"availability-zone-id":    func(s vpc.Subnet) []string { return one(s.ZoneID) },
	"default-for-az":          func(s vpc.Subnet) []string { return one(strconv.FormatBool(s.DefaultForAZ)) },
	"defaultForAz":            func(s vpc.Subnet) []string { return one(strconv.FormatBool(s.DefaultForAZ)) },
	"map-public-ip-on-launch": func(s vpc.Subnet) []string { return one(strconv.FormatBool(s.MapPublicIPOnLaunch)) },
	"owner-id":                func(s vpc.Subnet) []string { return one(s.Owner) },
	"state":                   func(s vpc.Subnet) []string { return one("available") },
}

func (a *API) createSubnet(ctx context.Context, r *ec2query.Request) (any, error) {
	vpcID, err := r.Params.Required("VpcId")
	if err != nil {
		return nil, err
	}
	cidr, err := r.Params.Required("CidrBlock")
	if err != nil {
		return nil, err
	}
	tags, err := parseTagSpecs(r.Params, resource.Subnet)
	if err != nil {
		return nil, err
	}
	if err := r.CheckDryRun(); err != nil {
		return nil, err
	}
	sn, err := a.VPCs.CreateSubnet(ctx, r.Account, vpcID, cidr, r.Params.String("AvailabilityZone"), r.Params.String("AvailabilityZoneId"), tags)
	if err != nil {
		return nil, err
	}
	item, err := a.subnetOf(ctx, r.Account, sn)
	if err != nil {
		return nil, err
	}
	return struct {
		Subnet subnetItem `xml:"subnet"`
	}{item}, nil
}

func (a *API) describeSubnets(ctx context.Context, r *ec2query.Request) (any, error) {
	all, err := a.VPCs.Subnets(ctx, r.Account)
	if err != nil {
		return nil, err
	}
	sns, next, err := describe(r, resource.Subnet, "SubnetId", all, func(s vpc.Subnet) string { return s.ID }, subnetFilters,
		func(s vpc.Subnet) ec2query.Tags { return s.Tags })
	if err != nil {
		return nil, err
	}
	items := make([]subnetItem, len(sns))
	for i, sn := range sns {
		if items[i], err = a.subnetOf(ctx, r.Account, sn); err != nil {
			return nil, err
		}
	}
	return struct {
		SubnetSet ec2query.List[subnetItem] `xml:"subnetSet"`
		NextToken string                    `xml:"nextToken,omitempty"`
	}{ec2query.ListOf(items), next}, nil
}

func (a *API) deleteSubnet(ctx context.Context, r *ec2query.Request) (any, error) {
	return onID(r, "SubnetId",
		func(id string) error { _, err := a.VPCs.GetSubnet(ctx, r.Account, id); return err },
		func(id string) error { return a.VPCs.DeleteSubnet(ctx, r.Account, id) })
}

func (a *API) modifySubnetAttribute(ctx context.Context, r *ec2query.Request) (any, error) {
	id, err := r.Params.Required("SubnetId")
	if err != nil {
		return nil, err
	}
	mapPublic, err := r.Params.OptBool("MapPublicIpOnLaunch.Value")
	if err != nil {
		return nil, err
	}
	if mapPublic == nil {
		return nil, apierr.New(apierr.MissingParameter, "The request must contain the parameter MapPublicIpOnLaunch.Value (the attribute nubo can modify).")
	}
	if err := r.CheckDryRun(); err != nil {
		return nil, err
	}
	if err := a.VPCs.ModifySubnet(ctx, r.Account, id, *mapPublic); err != nil {
		return nil, err
	}
	return returnTrue{true}, nil
}
