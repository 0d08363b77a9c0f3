package vpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"time"

	"nubo/internal/apierr"
	"nubo/internal/resource"
	"nubo/internal/secgroup"
	"nubo/internal/store"
)

// Zone is an availability zone's name and ID.
type Zone struct{ Name, ID string }

// Service keeps VPC records.
type Service struct {
	Store  *store.Store
	Region string
	Zones  []Zone
	Now    func() time.Time
}

func (s *Service) scope(account string) resource.Scope {
	return resource.Scope{Account: account, Region: s.Region}
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

func (s *Service) key(account string, k resource.Kind, id string) string {
	return resource.Key(s.scope(account), k, id)
}

// get reads one record of kind k, or k's NotFound error.
func get[T any](ctx context.Context, s *Service, account string, k resource.Kind, id string) (T, int64, error) {
	var v T
	if !resource.ValidID(k, id) {
		return v, 0, apierr.New(notFoundOrMalformed(k), "Invalid id: \"%s\"", id)
	}
	rev, err := s.Store.Get(ctx, s.key(account, k, id), &v)
	if errors.Is(err, store.ErrNotFound) {
		return v, 0, apierr.New(k.NotFoundCode, "The %s ID '%s' does not exist", k.Name, id)
	}
	return v, rev, err
}

func notFoundOrMalformed(k resource.Kind) string {
	return k.NotFoundCode[:len(k.NotFoundCode)-len(".NotFound")] + ".Malformed"
}

// list reads every record of kind k in the account, ordered by ID.
func list[T any](ctx context.Context, s *Service, account string, k resource.Kind) ([]T, error) {
	kvs, err := s.Store.List(ctx, resource.Prefix(s.scope(account), k))
	if err != nil {
		return nil, err
	}
	out := make([]T, len(kvs))
	for i, kv := range kvs {
		if err := json.Unmarshal(kv.Value, &out[i]); err != nil {
			return nil, fmt.Errorf("decoding %s: %w", kv.Key, err)
		}
	}
	return out, nil
}

// ParseCIDR checks a VPC or subnet block: a network address, /16 to /28.
func ParseCIDR(param, cidr string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(cidr)
	if err != nil || !p.Addr().Is4() {
		return netip.Prefix{}, apierr.New(apierr.InvalidParameterValue, "Value (%s) for parameter %s is invalid. This is not a valid CIDR block.", cidr, param)
	}
	if p.Masked() != p {
		return netip.Prefix{}, apierr.New(apierr.InvalidParameterValue, "Value (%s) for parameter %s is invalid. This is not a network address: use %s.", cidr, param, p.Masked())
	}
	return p, nil
}

// CreateVPC makes a VPC with its main route table (one local route) and its
// default security group.
func (s *Service) CreateVPC(ctx context.Context, account, cidr string, tags []resource.Tag, isDefault bool) (VPC, error) {
	p, err := ParseCIDR("CidrBlock", cidr)
	if err != nil {
		return VPC{}, err
	}
	if p.Bits() < 16 || p.Bits() > 28 {
		return VPC{}, apierr.New("InvalidVpc.Range", "The CIDR '%s' is invalid: VPC blocks are /16 to /28.", cidr)
	}
	set, err := resource.Merge("", nil, tags)
	if err != nil {
		return VPC{}, err
	}
	now := s.now()
	v := VPC{
		Meta: resource.Meta{ID: resource.NewID(resource.VPC), Tags: set, CreateTime: now},
		CIDR: cidr, CIDRAssocID: resource.NewID(resource.CIDRAssociation), IsDefault: isDefault,
		DNSSupport: true, DNSHostnames: isDefault, DHCPOptionsID: "dopt-" + hashID(account + s.Region)[:17], Owner: account,
	}
	rt := RouteTable{
		Meta:  resource.Meta{ID: resource.NewID(resource.RouteTable), CreateTime: now},
		VPCID: v.ID, Owner: account,
		Routes:       []Route{{Destination: cidr, GatewayID: "local", Origin: "CreateRouteTable"}},
		Associations: []Association{{ID: resource.NewID(resource.RouteTableAssoc), Main: true}},
	}
	v.MainRouteTableID = rt.ID
	ops := []store.Op{
		{Key: s.key(account, resource.VPC, v.ID), Value: v},
		{Key: s.key(account, resource.RouteTable, rt.ID), Value: rt},
	}
	err = s.Store.Apply(ctx, append(ops, s.defaultGroupOps(account, v.ID, now)...)...)
	return v, err
}

// GetVPC reads one VPC.
func (s *Service) GetVPC(ctx context.Context, account, id string) (VPC, error) {
	v, _, err := get[VPC](ctx, s, account, resource.VPC, id)
	return v, err
}

// VPCs lists the account's VPCs (creating its default VPC on first use).
func (s *Service) VPCs(ctx context.Context, account string) ([]VPC, error) {
	if _, err := s.DefaultVPC(ctx, account); err != nil && !errors.Is(err, ErrNoDefaultVPC) {
		return nil, err
	}
	return list[VPC](ctx, s, account, resource.VPC)
}

// DeleteVPC removes a VPC that has nothing left in it but its main route
// table and default security group, which go with it.
func (s *Service) DeleteVPC(ctx context.Context, account, id string) error {
	v, rev, err := get[VPC](ctx, s, account, resource.VPC, id)
	if err != nil {
		return err
	}
	subnets, err := s.Subnets(ctx, account)
	if err != nil {
		return err
	}
	for _, sn := range subnets {
		if sn.VPCID == id {
			return apierr.New("DependencyViolation", "The vpc '%s' has dependencies and cannot be deleted: subnet %s.", id, sn.ID)
		}
	}
	igws, err := list[InternetGateway](ctx, s, account, resource.InternetGateway)
	if err != nil {
		return err
	}
	for _, g := range igws {
		if g.VPCID == id {
			return apierr.New("DependencyViolation", "The vpc '%s' has dependencies and cannot be deleted: internet gateway %s is attached.", id, g.ID)
		}
	}
	rts, err := list[RouteTable](ctx, s, account, resource.RouteTable)
	if err != nil {
		return err
	}
	for _, rt := range rts {
		if rt.VPCID == id && rt.ID != v.MainRouteTableID {
			return apierr.New("DependencyViolation", "The vpc '%s' has dependencies and cannot be deleted: route table %s.", id, rt.ID)
		}
	}
	groups, err := s.SecurityGroups(ctx, account)
	if err != nil {
		return err
	}
	var def *secgroup.Group
	for i, g := range groups {
		if g.VPCID != id {
			continue
		}
		if g.Name != secgroup.DefaultName {
			return apierr.New("DependencyViolation", "The vpc '%s' has dependencies and cannot be deleted: security group %s.", id, g.ID)
		}
		def = &groups[i]
	}
	ops := []store.Op{
		{Key: s.key(account, resource.VPC, id), ModRev: rev, Delete: true},
		{Key: s.key(account, resource.RouteTable, v.MainRouteTableID), ModRev: -1, Delete: true},
	}
	if def != nil { // the default group goes with its VPC, unless it changed meanwhile
		g, grev, err := s.SecurityGroup(ctx, account, def.ID)
		if err != nil {
			return err
		}
		ops = append(ops, s.groupDeleteOps(account, g, grev)...)
	}
	if v.IsDefault { // gone for good: AWS makes no new default VPC by itself
		ops = append(ops, store.Op{Key: s.defaultKey(account), Value: "", ModRev: -1})
	}
	if err := s.Store.Apply(ctx, ops...); errors.Is(err, store.ErrConflict) {
		return apierr.New("IncorrectState", "The vpc '%s' changed while being deleted; retry.", id)
	} else if err != nil {
		return err
	}
	return nil
}

// ModifyVPC changes DNS attributes.
func (s *Service) ModifyVPC(ctx context.Context, account, id string, dnsSupport, dnsHostnames *bool) error {
	if _, err := s.GetVPC(ctx, account, id); err != nil {
		return err
	}
	_, err := store.Update(ctx, s.Store, s.key(account, resource.VPC, id), func(v *VPC) error {
		if dnsSupport != nil {
			v.DNSSupport = *dnsSupport
		}
		if dnsHostnames != nil {
			v.DNSHostnames = *dnsHostnames
		}
		if v.DNSHostnames && !v.DNSSupport {
			return apierr.New(apierr.InvalidParameterCombination, "DNS hostnames need DNS support: enable enableDnsSupport first.")
		}
		return nil
	})
	return err
}

func sortByID[T any](xs []T, id func(T) string) {
	sort.Slice(xs, func(i, j int) bool { return id(xs[i]) < id(xs[j]) })
}
