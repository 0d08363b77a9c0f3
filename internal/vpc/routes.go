package vpc

import (
	"context"
	"net/netip"

	"nubo/internal/apierr"
	"nubo/internal/resource"
	"nubo/internal/store"
)

// CreateRouteTable makes a route table with the VPC's local route.
func (s *Service) CreateRouteTable(ctx context.Context, account, vpcID string, tags []resource.Tag) (RouteTable, error) {
	v, err := s.GetVPC(ctx, account, vpcID)
	if err != nil {
		return RouteTable{}, err
	}
	set, err := resource.Merge("", nil, tags)
	if err != nil {
		return RouteTable{}, err
	}
	rt := RouteTable{
		Meta:  resource.Meta{ID: resource.NewID(resource.RouteTable), Tags: set, CreateTime: s.now()},
		VPCID: vpcID, Owner: account, Associations: []Association{},
		Routes: []Route{{Destination: v.CIDR, GatewayID: "local", Origin: "CreateRouteTable"}},
	}
	return rt, s.Store.Apply(ctx, store.Op{Key: s.key(account, resource.RouteTable, rt.ID), Value: rt})
}

// RouteTables lists the account's route tables.
func (s *Service) RouteTables(ctx context.Context, account string) ([]RouteTable, error) {
	if _, err := s.DefaultVPC(ctx, account); err != nil && err != ErrNoDefaultVPC {
		return nil, err
	}
	return list[RouteTable](ctx, s, account, resource.RouteTable)
}

// GetRouteTable reads one route table.
func (s *Service) GetRouteTable(ctx context.Context, account, id string) (RouteTable, error) {
	rt, _, err := get[RouteTable](ctx, s, account, resource.RouteTable, id)
	return rt, err
}

// DeleteRouteTable removes a route table with no associations.
func (s *Service) DeleteRouteTable(ctx context.Context, account, id string) error {
	rt, rev, err := get[RouteTable](ctx, s, account, resource.RouteTable, id)
	if err != nil {
		return err
	}
	if len(rt.Associations) > 0 {
		return apierr.New("DependencyViolation", "The routeTable '%s' has dependencies and cannot be deleted.", id)
	}
	err = s.Store.Apply(ctx, store.Op{Key: s.key(account, resource.RouteTable, id), ModRev: rev, Delete: true})
	if err == store.ErrConflict {
		return apierr.New("IncorrectState", "The route table '%s' changed while being deleted; retry.", id)
	}
	return err
}

// CreateRoute adds a route to an internet gateway attached to the table's VPC.
func (s *Service) CreateRoute(ctx context.Context, account, rtbID, dest, gatewayID string, replace bool) error {
	rt, err := s.GetRouteTable(ctx, account, rtbID)
	if err != nil {
		return err
	}
	p, err := ParseCIDR("DestinationCidrBlock", dest)
	if err != nil {
		return err
	}
	g, _, err := get[InternetGateway](ctx, s, account, resource.InternetGateway, gatewayID)
	if err != nil {
		return err
	}
	if g.VPCID != rt.VPCID {
		return apierr.New(apierr.InvalidParameterValue, "route table %s and network gateway %s belong to different networks", rtbID, gatewayID)
	}
	_, err = store.Update(ctx, s.Store, s.key(account, resource.RouteTable, rtbID), func(rt *RouteTable) error {
		for i, r := range rt.Routes {
			if r.Destination != p.String() {
				continue
			}
			if r.GatewayID == "local" {
				return apierr.New(apierr.InvalidParameterValue, "The local route %s cannot be replaced.", dest)
			}
			if !replace {
				return apierr.New("RouteAlreadyExists", "The route identified by %s already exists.", dest)
			}
			rt.Routes[i].GatewayID = gatewayID
			return nil
		}
		if replace {
			return apierr.New("InvalidRoute.NotFound", "no route with destination-cidr-block %s in route table %s", dest, rtbID)
		}
		rt.Routes = append(rt.Routes, Route{Destination: p.String(), GatewayID: gatewayID, Origin: "CreateRoute"})
		return nil
	})
	return err
}

// DeleteRoute removes a route (never the local one).
func (s *Service) DeleteRoute(ctx context.Context, account, rtbID, dest string) error {
	if _, err := s.GetRouteTable(ctx, account, rtbID); err != nil {
		return err
	}
	_, err := store.Update(ctx, s.Store, s.key(account, resource.RouteTable, rtbID), func(rt *RouteTable) error {
		for i, r := range rt.Routes {
			if r.Destination == dest {
				if r.GatewayID == "local" {
					return apierr.New(apierr.InvalidParameterValue, "cannot remove local route %s in route table %s", dest, rtbID)
				}
				rt.Routes = append(rt.Routes[:i], rt.Routes[i+1:]...)
				return nil
			}
		}
		return apierr.New("InvalidRoute.NotFound", "no route with destination-cidr-block %s in route table %s", dest, rtbID)
	})
	return err
}

// AssociateRouteTable makes a route table the subnet's (one per subnet).
func (s *Service) AssociateRouteTable(ctx context.Context, account, rtbID, subnetID string) (string, error) {
	rt, err := s.GetRouteTable(ctx, account, rtbID)
	if err != nil {
		return "", err
	}
	sn, err := s.GetSubnet(ctx, account, subnetID)
	if err != nil {
		return "", err
	}
	if sn.VPCID != rt.VPCID {
		return "", apierr.New(apierr.InvalidParameterValue, "route table %s and subnet %s belong to different networks", rtbID, subnetID)
	}
	all, err := s.RouteTables(ctx, account)
	if err != nil {
		return "", err
	}
	for _, o := range all {
		for _, a := range o.Associations {
			if a.SubnetID == subnetID {
				return "", apierr.New("Resource.AlreadyAssociated", "the specified association for route table %s conflicts with an existing association", o.ID)
			}
		}
	}
	id := resource.NewID(resource.RouteTableAssoc)
	_, err = store.Update(ctx, s.Store, s.key(account, resource.RouteTable, rtbID), func(rt *RouteTable) error {
		rt.Associations = append(rt.Associations, Association{ID: id, SubnetID: subnetID})
		return nil
	})
	return id, err
}

// DisassociateRouteTable removes a subnet association (the subnet falls back
// to the main route table).
func (s *Service) DisassociateRouteTable(ctx context.Context, account, assocID string) error {
	all, err := s.RouteTables(ctx, account)
	if err != nil {
		return err
	}
	for _, rt := range all {
		for _, a := range rt.Associations {
			if a.ID != assocID {
				continue
			}
			if a.Main {
				return apierr.New(apierr.InvalidParameterValue, "cannot disassociate the main route table association %s", assocID)
			}
			_, err := store.Update(ctx, s.Store, s.key(account, resource.RouteTable, rt.ID), func(rt *RouteTable) error {
				keep := rt.Associations[:0:0]
				for _, x := range rt.Associations {
					if x.ID != assocID {
						keep = append(keep, x)
					}
				}
				rt.Associations = keep
				return nil
			})
			return err
		}
	}
	return apierr.New("InvalidAssociationID.NotFound", "The association ID '%s' does not exist", assocID)
}

// IsPublic reports whether a subnet routes to the internet: its route table
// (its own, else the VPC's main one) sends 0.0.0.0/0 to an internet gateway
// that is attached to the VPC.
func (s *Service) IsPublic(ctx context.Context, account string, sn Subnet) (bool, error) {
	rts, err := list[RouteTable](ctx, s, account, resource.RouteTable)
	if err != nil {
		return false, err
	}
	var own, main *RouteTable
	for i, rt := range rts {
		if rt.VPCID != sn.VPCID {
			continue
		}
		for _, a := range rt.Associations {
			switch {
			case a.SubnetID == sn.ID:
				own = &rts[i]
			case a.Main:
				main = &rts[i]
			}
		}
	}
	table := own
	if table == nil {
		table = main
	}
	if table == nil {
		return false, nil
	}
	for _, r := range table.Routes {
		p, err := netip.ParsePrefix(r.Destination)
		if err != nil || p.Bits() != 0 || r.GatewayID == "local" {
			continue
		}
		g, _, err := get[InternetGateway](ctx, s, account, resource.InternetGateway, r.GatewayID)
		if err == nil && g.VPCID == sn.VPCID {
			return true, nil
		}
	}
	return false, nil
}
