package vpc

import (
	"context"
	"errors"

	"nubo/internal/apierr"
	"nubo/internal/resource"
	"nubo/internal/store"
)

// CreateSubnet makes a subnet of a VPC in one zone (by name or ID; the
// first zone when neither is given).
func (s *Service) CreateSubnet(ctx context.Context, account, vpcID, cidr, zone, zoneID string, tags []resource.Tag) (Subnet, error) {
	v, err := s.GetVPC(ctx, account, vpcID)
	if err != nil {
		return Subnet{}, err
	}
	p, err := ParseCIDR("CidrBlock", cidr)
	if err != nil {
		return Subnet{}, err
	}
	vp := Prefix(v.CIDR)
	if p.Bits() < 16 || p.Bits() > 28 || p.Bits() < vp.Bits() || !vp.Contains(p.Addr()) {
		return Subnet{}, apierr.New("InvalidSubnet.Range", "The CIDR '%s' is invalid: it must be /16 to /28 and inside the VPC's %s.", cidr, v.CIDR)
	}
	z, err := s.zone(zone, zoneID)
	if err != nil {
		return Subnet{}, err
	}
	all, err := s.Subnets(ctx, account)
	if err != nil {
		return Subnet{}, err
	}
	for _, o := range all {
		if o.VPCID == vpcID && Prefix(o.CIDR).Overlaps(p) {
			return Subnet{}, apierr.New("InvalidSubnet.Conflict", "The CIDR '%s' conflicts with another subnet (%s, %s).", cidr, o.ID, o.CIDR)
		}
	}
	set, err := resource.Merge("", nil, tags)
	if err != nil {
		return Subnet{}, err
	}
	sn := Subnet{
		Meta:  resource.Meta{ID: resource.NewID(resource.Subnet), Tags: set, CreateTime: s.now()},
		VPCID: vpcID, CIDR: cidr, Zone: z.Name, ZoneID: z.ID, Owner: account,
	}
	// Guarded by the VPC's revision: a VPC deleted meanwhile gets no subnet.
	_, rev, err := get[VPC](ctx, s, account, resource.VPC, vpcID)
	if err != nil {
		return Subnet{}, err
	}
	err = s.Store.Apply(ctx,
		store.Op{Key: s.key(account, resource.VPC, vpcID), ModRev: rev, Check: true},
		store.Op{Key: s.key(account, resource.Subnet, sn.ID), Value: sn})
	if errors.Is(err, store.ErrConflict) {
		return Subnet{}, apierr.New("IncorrectState", "The vpc '%s' changed while the subnet was being created; retry.", vpcID)
	}
	return sn, err
}

func (s *Service) zone(name, id string) (Zone, error) {
	for _, z := range s.Zones {
		if (name == "" && id == "") || z.Name == name || z.ID == id {
			return z, nil
		}
	}
	if name != "" {
		return Zone{}, apierr.New(apierr.InvalidParameterValue, "Value (%s) for parameter availabilityZone is invalid. Subnets can currently only be created in the following availability zones: %s.", name, s.zoneNames())
	}
	return Zone{}, apierr.New(apierr.InvalidParameterValue, "Value (%s) for parameter availabilityZoneId is invalid.", id)
}

func (s *Service) zoneNames() string {
	out := ""
	for i, z := range s.Zones {
		if i > 0 {
			out += ", "
		}
		out += z.Name
	}
	return out
}

// GetSubnet reads one subnet.
func (s *Service) GetSubnet(ctx context.Context, account, id string) (Subnet, error) {
	sn, _, err := get[Subnet](ctx, s, account, resource.Subnet, id)
	return sn, err
}

// Subnets lists the account's subnets (default VPC included).
func (s *Service) Subnets(ctx context.Context, account string) ([]Subnet, error) {
	if _, err := s.DefaultVPC(ctx, account); err != nil && !errors.Is(err, ErrNoDefaultVPC) {
		return nil, err
	}
	return list[Subnet](ctx, s, account, resource.Subnet)
}

// DeleteSubnet removes a subnet nothing uses.
func (s *Service) DeleteSubnet(ctx context.Context, account, id string) error {
	sn, rev, err := get[Subnet](ctx, s, account, resource.Subnet, id)
	if err != nil {
		return err
	}
	used, err := s.addressesIn(ctx, account, sn)
	if err != nil {
		return err
	}
	if len(used) > 0 {
		return apierr.New("DependencyViolation", "The subnet '%s' has dependencies and cannot be deleted: %d address(es) in use.", id, len(used))
	}
	rts, err := list[RouteTable](ctx, s, account, resource.RouteTable)
	if err != nil {
		return err
	}
	ops := []store.Op{{Key: s.key(account, resource.Subnet, id), ModRev: rev, Delete: true}}
	for _, rt := range rts { // its route table association goes with it
		if rt.VPCID != sn.VPCID {
			continue
		}
		keep := rt.Associations[:0:0]
		for _, a := range rt.Associations {
			if a.SubnetID != id {
				keep = append(keep, a)
			}
		}
		if len(keep) != len(rt.Associations) {
			rt.Associations = keep
			ops = append(ops, store.Op{Key: s.key(account, resource.RouteTable, rt.ID), Value: rt, ModRev: -1})
		}
	}
	if err := s.Store.Apply(ctx, ops...); errors.Is(err, store.ErrConflict) {
		return apierr.New("IncorrectState", "The subnet '%s' changed while being deleted; retry.", id)
	} else if err != nil {
		return err
	}
	return nil
}

// ModifySubnet sets MapPublicIpOnLaunch.
func (s *Service) ModifySubnet(ctx context.Context, account, id string, mapPublic bool) error {
	if _, err := s.GetSubnet(ctx, account, id); err != nil {
		return err
	}
	_, err := store.Update(ctx, s.Store, s.key(account, resource.Subnet, id), func(sn *Subnet) error {
		sn.MapPublicIPOnLaunch = mapPublic
		return nil
	})
	return err
}

// AvailableIPs is the subnet's free address count: its size less AWS's five
// reserved addresses and those in use.
func (s *Service) AvailableIPs(ctx context.Context, account string, sn Subnet) (int, error) {
	used, err := s.addressesIn(ctx, account, sn)
	if err != nil {
		return 0, err
	}
	p := Prefix(sn.CIDR)
	return 1<<(32-p.Bits()) - 5 - len(used), nil
}
