package ec2

import (
	"context"

	"nubo/internal/api/ec2query"
	"nubo/internal/resource"
	"nubo/internal/vpc"
)

type igwAttachment struct {
	VpcID string `xml:"vpcId"`
	State string `xml:"state"`
}

type igwItem struct {
	InternetGatewayID string                       `xml:"internetGatewayId"`
	OwnerID           string                       `xml:"ownerId"`
	AttachmentSet     ec2query.List[igwAttachment] `xml:"attachmentSet"`
	TagSet            *ec2query.List[ec2query.Tag] `xml:"tagSet"`
}

func igwOf(g vpc.InternetGateway) igwItem {
	it := igwItem{InternetGatewayID: g.ID, OwnerID: g.Owner, TagSet: ec2query.TagSet(g.Tags)}
	if g.VPCID != "" {
		it.AttachmentSet.Items = []igwAttachment{{g.VPCID, "available"}}
	}
	return it
}

var igwFilters = map[string]ec2query.FilterFunc[vpc.InternetGateway]{
	"internet-gateway-id": func(g vpc.InternetGateway) []string { return one(g.ID) },
	"attachment.vpc-id": func(g vpc.InternetGateway) []string {
		if g.VPCID == "" {
			return nil
		}
		return one(g.VPCID)
	},
	"attachment.state": func(g vpc.InternetGateway) []string {
		if g.VPCID == "" {
			return nil
		}
		return one("available")
	},
	"owner-id": func(g vpc.InternetGateway) []string { return one(g.Owner) },
}

func (a *API) createInternetGateway(ctx context.Context, r *ec2query.Request) (any, error) {
	tags, err := parseTagSpecs(r.Params, resource.InternetGateway)
	if err != nil {
		return nil, err
	}
	if err := r.CheckDryRun(); err != nil {
		return nil, err
	}
	g, err := a.VPCs.CreateInternetGateway(ctx, r.Account, tags)
	if err != nil {
		return nil, err
	}
	return struct {
		InternetGateway igwItem `xml:"internetGateway"`
	}{igwOf(g)}, nil
}

func (a *API) describeInternetGateways(ctx context.Context, r *ec2query.Request) (any, error) {
	all, err := a.VPCs.InternetGateways(ctx, r.Account)
	if err != nil {
		return nil, err
	}
	gs, next, err := describe(r, resource.InternetGateway, "InternetGatewayId", all, func(g vpc.InternetGateway) string { return g.ID },
		igwFilters, func(g vpc.InternetGateway) ec2query.Tags { return g.Tags })
	if err != nil {
		return nil, err
	}
	items := make([]igwItem, len(gs))
	for i, g := range gs {
		items[i] = igwOf(g)
	}
	return struct {
		InternetGatewaySet ec2query.List[igwItem] `xml:"internetGatewaySet"`
		NextToken          string                 `xml:"nextToken,omitempty"`
	}{ec2query.ListOf(items), next}, nil
}

// igwCall runs an action on an internet gateway (and VPC) after the dry run check.
func (a *API) igwCall(r *ec2query.Request, withVPC bool, do func(igw, vpcID string) error) (any, error) {
	igw, err := r.Params.Required("InternetGatewayId")
	if err != nil {
		return nil, err
	}
	vpcID := ""
	if withVPC {
		if vpcID, err = r.Params.Required("VpcId"); err != nil {
			return nil, err
		}
	}
	if err := r.CheckDryRun(); err != nil {
		return nil, err
	}
	if err := do(igw, vpcID); err != nil {
		return nil, err
	}
	return returnTrue{true}, nil
}

func (a *API) attachInternetGateway(ctx context.Context, r *ec2query.Request) (any, error) {
	return a.igwCall(r, true, func(igw, v string) error { return a.VPCs.AttachInternetGateway(ctx, r.Account, igw, v) })
}

func (a *API) detachInternetGateway(ctx context.Context, r *ec2query.Request) (any, error) {
	return a.igwCall(r, true, func(igw, v string) error { return a.VPCs.DetachInternetGateway(ctx, r.Account, igw, v) })
}

func (a *API) deleteInternetGateway(ctx context.Context, r *ec2query.Request) (any, error) {
	return a.igwCall(r, false, func(igw, _ string) error { return a.VPCs.DeleteInternetGateway(ctx, r.Account, igw) })
}

type routeItem struct {
	DestinationCidrBlock string `xml:"destinationCidrBlock"`
	GatewayID            string `xml:"gatewayId"`
	State                string `xml:"state"`
	Origin               string `xml:"origin"`
}

type assocItem struct {
	RouteTableAssociationID string    `xml:"routeTableAssociationId"`
	RouteTableID            string    `xml:"routeTableId"`
	SubnetID                string    `xml:"subnetId,omitempty"`
	Main                    bool      `xml:"main"`
	AssociationState        cidrState `xml:"associationState"`
}

type routeTableItem struct {
	RouteTableID      string                       `xml:"routeTableId"`
	VpcID             string                       `xml:"vpcId"`
	OwnerID           string                       `xml:"ownerId"`
	RouteSet          ec2query.List[routeItem]     `xml:"routeSet"`
	AssociationSet    ec2query.List[assocItem]     `xml:"associationSet"`
	PropagatingVgwSet ec2query.List[struct{}]      `xml:"propagatingVgwSet"`
	TagSet            *ec2query.List[ec2query.Tag] `xml:"tagSet"`
}

func routeTableOf(rt vpc.RouteTable, attached map[string]string) routeTableItem {
	it := routeTableItem{RouteTableID: rt.ID, VpcID: rt.VPCID, OwnerID: rt.Owner, TagSet: ec2query.TagSet(rt.Tags)}
	for _, r := range rt.Routes {
		state := "active"
		if r.GatewayID != "local" && attached[r.GatewayID] != rt.VPCID {
			state = "blackhole" // the gateway was detached or deleted
		}
		it.RouteSet.Items = append(it.RouteSet.Items, routeItem{r.Destination, r.GatewayID, state, r.Origin})
	}
	for _, x := range rt.Associations {
		it.AssociationSet.Items = append(it.AssociationSet.Items, assocItem{x.ID, rt.ID, x.SubnetID, x.Main, cidrState{"associated"}})
	}
	return it
}

var routeTableFilters = map[string]ec2query.FilterFunc[vpc.RouteTable]{
	"route-table-id": func(t vpc.RouteTable) []string { return one(t.ID) },
	"vpc-id":         func(t vpc.RouteTable) []string { return one(t.VPCID) },
	"owner-id":       func(t vpc.RouteTable) []string { return one(t.Owner) },
	"association.main": func(t vpc.RouteTable) []string {
		for _, a := range t.Associations {
			if a.Main {
				return one("true")
			}
		}
		return one("false")
	},
	"association.subnet-id": func(t vpc.RouteTable) (out []string) {
		for _, a := range t.Associations {
			if a.SubnetID != "" {
				out = append(out, a.SubnetID)
			}
		}
		return out
	},
	"association.route-table-association-id": func(t vpc.RouteTable) (out []string) {
		for _, a := range t.Associations {
			out = append(out, a.ID)
		}
		return out
	},
	"route.destination-cidr-block": func(t vpc.RouteTable) (out []string) {
		for _, r := range t.Routes {
			out = append(out, r.Destination)
		}
		return out
	},
	"route.gateway-id": func(t vpc.RouteTable) (out []string) {
		for _, r := range t.Routes {
			out = append(out, r.GatewayID)
		}
		return out
	},
}

func (a *API) attachedGateways(ctx context.Context, account string) (map[string]string, error) {
	gs, err := a.VPCs.InternetGateways(ctx, account)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, g := range gs {
		out[g.ID] = g.VPCID
	}
	return out, nil
}

func (a *API) createRouteTable(ctx context.Context, r *ec2query.Request) (any, error) {
	vpcID, err := r.Params.Required("VpcId")
	if err != nil {
		return nil, err
	}
	tags, err := parseTagSpecs(r.Params, resource.RouteTable)
	if err != nil {
		return nil, err
	}
	if err := r.CheckDryRun(); err != nil {
		return nil, err
	}
	rt, err := a.VPCs.CreateRouteTable(ctx, r.Account, vpcID, tags)
	if err != nil {
		return nil, err
	}
	return struct {
		RouteTable routeTableItem `xml:"routeTable"`
	}{routeTableOf(rt, nil)}, nil
}

func (a *API) describeRouteTables(ctx context.Context, r *ec2query.Request) (any, error) {
	all, err := a.VPCs.RouteTables(ctx, r.Account)
	if err != nil {
		return nil, err
	}
	rts, next, err := describe(r, resource.RouteTable, "RouteTableId", all, func(t vpc.RouteTable) string { return t.ID },
		routeTableFilters, func(t vpc.RouteTable) ec2query.Tags { return t.Tags })
	if err != nil {
		return nil, err
	}
	attached, err := a.attachedGateways(ctx, r.Account)
	if err != nil {
		return nil, err
	}
	items := make([]routeTableItem, len(rts))
	for i, rt := range rts {
		items[i] = routeTableOf(rt, attached)
	}
	return struct {
		RouteTableSet ec2query.List[routeTableItem] `xml:"routeTableSet"`
		NextToken     string                        `xml:"nextToken,omitempty"`
	}{ec2query.ListOf(items), next}, nil
}

func (a *API) deleteRouteTable(ctx context.Context, r *ec2query.Request) (any, error) {
	return onID(r, "RouteTableId",
		func(id string) error { _, err := a.VPCs.GetRouteTable(ctx, r.Account, id); return err },
		func(id string) error { return a.VPCs.DeleteRouteTable(ctx, r.Account, id) })
}

func (a *API) routeCall(ctx context.Context, r *ec2query.Request, del, replace bool) (any, error) {
	rtb, err := r.Params.Required("RouteTableId")
	if err != nil {
		return nil, err
	}
	dest, err := r.Params.Required("DestinationCidrBlock")
	if err != nil {
		return nil, err
	}
	gw := ""
	if !del {
		if gw, err = r.Params.Required("GatewayId"); err != nil {
			return nil, err
		}
	}
	if err := r.CheckDryRun(); err != nil {
		return nil, err
	}
	if del {
		err = a.VPCs.DeleteRoute(ctx, r.Account, rtb, dest)
	} else {
		err = a.VPCs.CreateRoute(ctx, r.Account, rtb, dest, gw, replace)
	}
	if err != nil {
		return nil, err
	}
	return returnTrue{true}, nil
}

func (a *API) createRoute(ctx context.Context, r *ec2query.Request) (any, error) {
	return a.routeCall(ctx, r, false, false)
}

func (a *API) replaceRoute(ctx context.Context, r *ec2query.Request) (any, error) {
	return a.routeCall(ctx, r, false, true)
}

func (a *API) deleteRoute(ctx context.Context, r *ec2query.Request) (any, error) {
	return a.routeCall(ctx, r, true, false)
}

func (a *API) associateRouteTable(ctx context.Context, r *ec2query.Request) (any, error) {
	rtb, err := r.Params.Required("RouteTableId")
	if err != nil {
		return nil, err
	}
	subnet, err := r.Params.Required("SubnetId")
	if err != nil {
		return nil, err
	}
	if err := r.CheckDryRun(); err != nil {
		return nil, err
	}
	id, err := a.VPCs.AssociateRouteTable(ctx, r.Account, rtb, subnet)
	if err != nil {
		return nil, err
	}
	return struct {
		AssociationID    string    `xml:"associationId"`
		AssociationState cidrState `xml:"associationState"`
	}{id, cidrState{"associated"}}, nil
}

func (a *API) disassociateRouteTable(ctx context.Context, r *ec2query.Request) (any, error) {
	id, err := r.Params.Required("AssociationId")
	if err != nil {
		return nil, err
	}
	if err := r.CheckDryRun(); err != nil {
		return nil, err
	}
	if err := a.VPCs.DisassociateRouteTable(ctx, r.Account, id); err != nil {
		return nil, err
	}
	return returnTrue{true}, nil
}
