package vpc

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"

	"nubo/internal/apierr"
	"nubo/internal/resource"
	"nubo/internal/store"
)

// DefaultCIDR is the default VPC's block, as in AWS.
const DefaultCIDR = "172.31.0.0/16"

// ErrNoDefaultVPC: the account deleted its default VPC.
var ErrNoDefaultVPC = apierr.New("VPCIdNotSpecified", "No default VPC for this user.")

func (s *Service) defaultKey(account string) string {
	return store.Root + "default-vpc/" + account + "/" + s.Region
}

func hashID(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// DefaultVPC returns the account's default VPC in the region, creating it on
// first use as AWS does: 172.31.0.0/16, one /20 default subnet per zone that
// maps public IPs on launch, an attached internet gateway, and a main route
// table routing 0.0.0.0/0 to it. Creation is one transaction guarded by the
// default-VPC marker, so racing first uses make one VPC. It has a default
// security group, as every VPC.
func (s *Service) DefaultVPC(ctx context.Context, account string) (VPC, error) {
	var id string
	if _, err := s.Store.Get(ctx, s.defaultKey(account), &id); err == nil {
		if id == "" {
			return VPC{}, ErrNoDefaultVPC
		}
		return s.GetVPC(ctx, account, id)
	} else if !errors.Is(err, store.ErrNotFound) {
		return VPC{}, err
	}
	now := s.now()
	v := VPC{
		Meta: resource.Meta{ID: resource.NewID(resource.VPC), CreateTime: now},
		CIDR: DefaultCIDR, CIDRAssocID: resource.NewID(resource.CIDRAssociation), IsDefault: true,
		DNSSupport: true, DNSHostnames: true, DHCPOptionsID: "dopt-" + hashID(account + s.Region)[:17], Owner: account,
	}
	igw := InternetGateway{Meta: resource.Meta{ID: resource.NewID(resource.InternetGateway), CreateTime: now}, VPCID: v.ID, Owner: account}
	rt := RouteTable{
		Meta: resource.Meta{ID: resource.NewID(resource.RouteTable), CreateTime: now}, VPCID: v.ID, Owner: account,
		Routes: []Route{
			{Destination: DefaultCIDR, GatewayID: "local", Origin: "CreateRouteTable"},
			{Destination: "0.0.0.0/0", GatewayID: igw.ID, Origin: "CreateRoute"},
		},
		Associations: []Association{{ID: resource.NewID(resource.RouteTableAssoc), Main: true}},
	}
	v.MainRouteTableID = rt.ID
	ops := []store.Op{
		{Key: s.defaultKey(account), Value: v.ID},
		{Key: s.key(account, resource.VPC, v.ID), Value: v},
		{Key: s.key(account, resource.InternetGateway, igw.ID), Value: igw},
		{Key: s.key(account, resource.RouteTable, rt.ID), Value: rt},
	}
	ops = append(ops, s.defaultGroupOps(account, v.ID, now)...)
	base := netip.MustParsePrefix(DefaultCIDR).Addr().As4()
	for i, z := range s.Zones {
		if i >= 16 {
			break
		}
		b := base
		b[2] = byte(16 * i)
		sn := Subnet{
			Meta:  resource.Meta{ID: resource.NewID(resource.Subnet), CreateTime: now},
			VPCID: v.ID, CIDR: netip.PrefixFrom(netip.AddrFrom4(b), 20).String(), Zone: z.Name, ZoneID: z.ID,
			MapPublicIPOnLaunch: true, DefaultForAZ: true, Owner: account,
		}
		ops = append(ops, store.Op{Key: s.key(account, resource.Subnet, sn.ID), Value: sn})
	}
	err := s.Store.Apply(ctx, ops...)
	if errors.Is(err, store.ErrConflict) { // another request made it first
		if _, err := s.Store.Get(ctx, s.defaultKey(account), &id); err != nil {
			return VPC{}, fmt.Errorf("reading the default VPC: %w", err)
		}
		return s.GetVPC(ctx, account, id)
	}
	return v, err
}
