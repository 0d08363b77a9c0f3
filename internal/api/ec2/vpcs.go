package ec2

import (
	"context"
	"strconv"

	"nubo/internal/api/ec2query"
	"nubo/internal/apierr"
	"nubo/internal/resource"
	"nubo/internal/vpc"
)

type cidrState struct {
	State string `xml:"state"`
}

type cidrAssoc struct {
	CidrBlock      string    `xml:"cidrBlock"`
	AssociationID  string    `xml:"associationId"`
	CidrBlockState cidrState `xml:"cidrBlockState"`
}

type vpcItem struct {
	VpcID                       string                       `xml:"vpcId"`
	OwnerID                     string                       `xml:"ownerId"`
	State                       string                       `xml:"state"`
	CidrBlock                   string                       `xml:"cidrBlock"`
	CidrBlockAssociationSet     ec2query.List[cidrAssoc]     `xml:"cidrBlockAssociationSet"`
	Ipv6CidrBlockAssociationSet ec2query.List[struct{}]      `xml:"ipv6CidrBlockAssociationSet"`
	DhcpOptionsID               string                       `xml:"dhcpOptionsId"`
	InstanceTenancy             string                       `xml:"instanceTenancy"`
	IsDefault                   bool                         `xml:"isDefault"`
	TagSet                      *ec2query.List[ec2query.Tag] `xml:"tagSet"`
}

func vpcOf(v vpc.VPC) vpcItem {
	return vpcItem{VpcID: v.ID, OwnerID: v.Owner, State: "available", CidrBlock: v.CIDR,
		CidrBlockAssociationSet: ec2query.ListOf([]cidrAssoc{{v.CIDR, v.CIDRAssocID, cidrState{"associated"}}}),
		DhcpOptionsID:           v.DHCPOptionsID, InstanceTenancy: "default", IsDefault: v.IsDefault, TagSet: ec2query.TagSet(v.Tags)}
}

var vpcFilters = map[string]ec2query.FilterFunc[vpc.VPC]{
	"vpc-id":                                func(v vpc.VPC) []string { return one(v.ID) },
	"cidr":                                  func(v vpc.VPC) []string { return one(v.CIDR) },
	"cidr-block-association.cidr-block":     func(v vpc.VPC) []string { return one(v.CIDR) },
	"cidr-block-association.association-id": func(v vpc.VPC) []string { return one(v.CIDRAssocID) },
	"cidr-block-association.state":          func(v vpc.VPC) []string { return one("associated") },
	"dhcp-options-id":                       func(v vpc.VPC) []string { return one(v.DHCPOptionsID) },
	"is-default":                            func(v vpc.VPC) []string { return one(strconv.FormatBool(v.IsDefault)) },
	"owner-id":                              func(v vpc.VPC) []string { return one(v.Owner) },
	"state":                                 func(v vpc.VPC) []string { return one("available") },
}

func (a *API) createVpc(ctx context.Context, r *ec2query.Request) (any, error) {
	cidr, err := r.Params.Required("CidrBlock")
	if err != nil {
		return nil, err
	}
	if t := r.Params.String("InstanceTenancy"); t != "" && t != "default" {
		return nil, apierr.New(apierr.UnsupportedOperation, "InstanceTenancy %s is not supported: nubo hosts are shared (default tenancy).", t)
	}
	tags, err := parseTagSpecs(r.Params, resource.VPC)
	if err != nil {
		return nil, err
	}
	if _, err := vpc.ParseCIDR("CidrBlock", cidr); err != nil {
		return nil, err
	}
	if err := r.CheckDryRun(); err != nil {
		return nil, err
	}
	v, err := a.VPCs.CreateVPC(ctx, r.Account, cidr, tags, false)
	if err != nil {
		return nil, err
	}
	return struct {
		Vpc vpcItem `xml:"vpc"`
	}{vpcOf(v)}, nil
}

func (a *API) describeVpcs(ctx context.Context, r *ec2query.Request) (any, error) {
	all, err := a.VPCs.VPCs(ctx, r.Account)
	if err != nil {
		return nil, err
	}
	vs, next, err := describe(r, resource.VPC, "VpcId", all, func(v vpc.VPC) string { return v.ID }, vpcFilters,
		func(v vpc.VPC) ec2query.Tags { return v.Tags })
	if err != nil {
		return nil, err
	}
	items := make([]vpcItem, len(vs))
	for i, v := range vs {
		items[i] = vpcOf(v)
	}
	return struct {
		VpcSet    ec2query.List[vpcItem] `xml:"vpcSet"`
		NextToken string                 `xml:"nextToken,omitempty"`
	}{ec2query.ListOf(items), next}, nil
}

func (a *API) deleteVpc(ctx context.Context, r *ec2query.Request) (any, error) {
	return onID(r, "VpcId",
		func(id string) error { _, err := a.VPCs.GetVPC(ctx, r.Account, id); return err },
		func(id string) error { return a.VPCs.DeleteVPC(ctx, r.Account, id) })
}

func (a *API) modifyVpcAttribute(ctx context.Context, r *ec2query.Request) (any, error) {
	id, err := r.Params.Required("VpcId")
	if err != nil {
		return nil, err
	}
	support, err := r.Params.OptBool("EnableDnsSupport.Value")
	if err != nil {
		return nil, err
	}
	hostnames, err := r.Params.OptBool("EnableDnsHostnames.Value")
	if err != nil {
		return nil, err
	}
	if (support == nil) == (hostnames == nil) {
		return nil, apierr.New(apierr.InvalidParameterCombination, "Specify exactly one of EnableDnsSupport and EnableDnsHostnames per request.")
	}
	if err := r.CheckDryRun(); err != nil {
		return nil, err
	}
	if err := a.VPCs.ModifyVPC(ctx, r.Account, id, support, hostnames); err != nil {
		return nil, err
	}
	return returnTrue{true}, nil
}

func (a *API) describeVpcAttribute(ctx context.Context, r *ec2query.Request) (any, error) {
	id, err := r.Params.Required("VpcId")
	if err != nil {
		return nil, err
	}
	attr, err := r.Params.Required("Attribute")
	if err != nil {
		return nil, err
	}
	v, err := a.VPCs.GetVPC(ctx, r.Account, id)
	if err != nil {
		return nil, err
	}
	out := struct {
		VpcID              string     `xml:"vpcId"`
		EnableDNSSupport   *boolValue `xml:"enableDnsSupport,omitempty"`
		EnableDNSHostnames *boolValue `xml:"enableDnsHostnames,omitempty"`
	}{VpcID: id}
	switch attr {
	case "enableDnsSupport":
		out.EnableDNSSupport = &boolValue{v.DNSSupport}
	case "enableDnsHostnames":
		out.EnableDNSHostnames = &boolValue{v.DNSHostnames}
	default:
		return nil, apierr.InvalidValue("Attribute", attr, "Valid values are enableDnsSupport and enableDnsHostnames.")
	}
	return out, nil
}

func (a *API) describeAccountAttributes(ctx context.Context, r *ec2query.Request) (any, error) {
	type value struct {
		AttributeValue string `xml:"attributeValue"`
	}
	type attr struct {
		AttributeName     string               `xml:"attributeName"`
		AttributeValueSet ec2query.List[value] `xml:"attributeValueSet"`
	}
	def := "none"
	if v, err := a.VPCs.DefaultVPC(ctx, r.Account); err == nil {
		def = v.ID
	} else if err != vpc.ErrNoDefaultVPC {
		return nil, err
	}
	all := []attr{
		{"supported-platforms", ec2query.ListOf([]value{{"VPC"}})},
		{"default-vpc", ec2query.ListOf([]value{{def}})},
		{"max-instances", ec2query.ListOf([]value{{"1000"}})},
		{"vpc-max-security-groups-per-interface", ec2query.ListOf([]value{{"5"}})},
		{"max-elastic-ips", ec2query.ListOf([]value{{"5"}})},
		{"vpc-max-elastic-ips", ec2query.ListOf([]value{{"5"}})},
	}
	if names := r.Params.Strings("AttributeName"); len(names) > 0 {
		byName := map[string]attr{}
		for _, x := range all {
			byName[x.AttributeName] = x
		}
		all = nil
		for _, n := range names {
			x, ok := byName[n]
			if !ok {
				return nil, apierr.InvalidValue("AttributeName", n, "")
			}
			all = append(all, x)
		}
	}
	return struct {
		AccountAttributeSet ec2query.List[attr] `xml:"accountAttributeSet"`
	}{ec2query.ListOf(all)}, nil
}
