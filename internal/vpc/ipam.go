package vpc

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"

	"nubo/internal/apierr"
	"nubo/internal/store"
)

// Address is who holds an allocated address.
type Address struct {
	Account  string `json:"account"`
	Holder   string `json:"holder"` // instance ID (or ENI, EIP allocation)
	SubnetID string `json:"subnetId,omitempty"`
}

// PrivateKey is where a VPC's allocated private address lives: addresses are
// unique within a VPC, so the key is the VPC's, not the subnet's.
func PrivateKey(account, region, vpcID string, ip netip.Addr) string {
	return privatePrefix(account, region, vpcID) + ip.String()
}

func privatePrefix(account, region, vpcID string) string {
	return store.Root + "ipam/" + account + "/" + region + "/" + vpcID + "/"
}

func (s *Service) privateKey(account, vpcID string, ip netip.Addr) string {
	return PrivateKey(account, s.Region, vpcID, ip)
}

func (s *Service) privatePrefix(account, vpcID string) string {
	return privatePrefix(account, s.Region, vpcID)
}

// PublicKey is where an allocated public address lives (one pool per deployment).
func PublicKey(ip netip.Addr) string { return store.Root + "pubip/" + ip.String() }

// used lists the allocated addresses under prefix.
func (s *Service) used(ctx context.Context, prefix string) (map[netip.Addr]Address, error) {
	kvs, err := s.Store.List(ctx, prefix)
	if err != nil {
		return nil, err
	}
	out := map[netip.Addr]Address{}
	for _, kv := range kvs {
		ip, err := netip.ParseAddr(strings.TrimPrefix(kv.Key, prefix))
		if err != nil {
			continue
		}
		var a Address
		if err := json.Unmarshal(kv.Value, &a); err != nil {
			return nil, fmt.Errorf("decoding %s: %w", kv.Key, err)
		}
		out[ip] = a
	}
	return out, nil
}

func (s *Service) addressesIn(ctx context.Context, account string, sn Subnet) ([]netip.Addr, error) {
	all, err := s.used(ctx, s.privatePrefix(account, sn.VPCID))
	if err != nil {
		return nil, err
	}
	p := Prefix(sn.CIDR)
	var out []netip.Addr
	for ip := range all {
		if p.Contains(ip) {
			out = append(out, ip)
		}
	}
	return out, nil
}

// usable reports whether ip may be given to an instance: inside the subnet
// and not one of AWS's five reserved addresses (network, router, DNS,
// future use, broadcast).
func usable(p netip.Prefix, ip netip.Addr) bool {
	if !p.Contains(ip) {
		return false
	}
	first := p.Masked().Addr()
	for i := 0; i < 4; i++ {
		if ip == first {
			return false
		}
		first = first.Next()
	}
	return ip != lastAddr(p)
}

func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3]) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// Gateway is the subnet's router address (base + 1).
func Gateway(sn Subnet) netip.Addr { return Prefix(sn.CIDR).Masked().Addr().Next() }

// Resolver is the VPC's DNS resolver (base + 2).
func Resolver(v VPC) netip.Addr { return Prefix(v.CIDR).Masked().Addr().Next().Next() }

// AllocatePrivate picks n private addresses in the subnet for holders (want,
// if given, for the first) and returns the writes that claim them; they must
// be applied in the caller's transaction, which fails if another claim won.
func (s *Service) AllocatePrivate(ctx context.Context, account string, sn Subnet, want string, holders []string) ([]netip.Addr, []store.Op, error) {
	claims := make([]Claim, len(holders))
	for i, h := range holders {
		claims[i].Holder = h
	}
	if len(claims) > 0 {
		claims[0].Want = want
	}
	return s.ClaimPrivate(ctx, account, sn, claims, nil)
}

// Claim asks for one private address for Holder: Want, or the lowest free.
type Claim struct {
	Holder string
	Want   string
}

// ClaimPrivate picks a private address in the subnet for each claim (the
// wanted ones first, then the lowest free for the rest) and returns the
// writes that claim them, to be applied in the caller's transaction.
// Addresses that planned (writes of the same transaction) claim are taken.
func (s *Service) ClaimPrivate(ctx context.Context, account string, sn Subnet, claims []Claim, planned []store.Op) ([]netip.Addr, []store.Op, error) {
	prefix := s.privatePrefix(account, sn.VPCID)
	taken, err := s.used(ctx, prefix)
	if err != nil {
		return nil, nil, err
	}
	for _, op := range planned {
		if ip, err := netip.ParseAddr(strings.TrimPrefix(op.Key, prefix)); err == nil && strings.HasPrefix(op.Key, prefix) && !op.Delete {
			taken[ip] = Address{}
		}
	}
	p := Prefix(sn.CIDR)
	ips := make([]netip.Addr, len(claims))
	mine := map[netip.Addr]bool{}
	for i, c := range claims {
		if c.Want == "" {
			continue
		}
		ip, err := netip.ParseAddr(c.Want)
		if err != nil || !usable(p, ip) {
			return nil, nil, apierr.New(apierr.InvalidParameterValue, "Address %s does not fall within the subnet's address range (%s) or is reserved.", c.Want, sn.CIDR)
		}
		if _, busy := taken[ip]; busy || mine[ip] {
			return nil, nil, apierr.New("InvalidIPAddress.InUse", "Address %s is in use.", c.Want)
		}
		ips[i], mine[ip] = ip, true
	}
	next := p.Masked().Addr()
	for i := range claims {
		if ips[i].IsValid() {
			continue
		}
		for ; p.Contains(next); next = next.Next() {
			if _, busy := taken[next]; !busy && !mine[next] && usable(p, next) {
				break
			}
		}
		if !p.Contains(next) {
			return nil, nil, apierr.New("InsufficientFreeAddressesInSubnet", "There are not enough free addresses in subnet '%s' to satisfy the requested number of addresses.", sn.ID)
		}
		ips[i], mine[next] = next, true
	}
	ops := make([]store.Op, len(claims))
	for i, c := range claims {
		ops[i] = store.Op{Key: s.privateKey(account, sn.VPCID, ips[i]), Value: Address{Account: account, Holder: c.Holder, SubnetID: sn.ID}}
	}
	return ips, ops, nil
}

// ReleasePrivate is the write that frees a private address.
func (s *Service) ReleasePrivate(account, vpcID string, ip netip.Addr) store.Op {
	return store.Op{Key: s.privateKey(account, vpcID, ip), ModRev: -1, Delete: true}
}

// PublicPool hands out public addresses from one range per deployment.
type PublicPool struct {
	Store  *store.Store
	Prefix netip.Prefix // e.g. 198.18.0.0/15, a range reserved for benchmarking
}

// Reserved addresses at the pool's start: the network and the host link.
const poolReserved = 4

// Allocate picks n free public addresses for holders (never one of avoid)
// and returns the writes that claim them.
func (pp *PublicPool) Allocate(ctx context.Context, account string, holders []string, avoid ...netip.Addr) ([]netip.Addr, []store.Op, error) {
	if len(holders) == 0 {
		return nil, nil, nil
	}
	kvs, err := pp.Store.List(ctx, store.Root+"pubip/")
	if err != nil {
		return nil, nil, err
	}
	taken := map[string]bool{}
	for _, kv := range kvs {
		taken[strings.TrimPrefix(kv.Key, store.Root+"pubip/")] = true
	}
	for _, ip := range avoid {
		taken[ip.String()] = true
	}
	var ips []netip.Addr
	ip := pp.Prefix.Masked().Addr()
	for i := 0; i < poolReserved; i++ {
		ip = ip.Next()
	}
	last := lastAddr(pp.Prefix)
	for ; len(ips) < len(holders) && ip.Less(last); ip = ip.Next() {
		if !taken[ip.String()] {
			ips = append(ips, ip)
		}
	}
	if len(ips) < len(holders) {
		return nil, nil, apierr.New("AddressLimitExceeded", "The public address pool %s is exhausted.", pp.Prefix)
	}
	ops := make([]store.Op, len(holders))
	for i, h := range holders {
		ops[i] = store.Op{Key: PublicKey(ips[i]), Value: Address{Account: account, Holder: h}}
	}
	return ips, ops, nil
}

// PrivateDomain is the domain of private DNS names: ec2.internal in
// us-east-1, <region>.compute.internal elsewhere, as in EC2.
func PrivateDomain(region string) string {
	if region == "us-east-1" {
		return "ec2.internal"
	}
	return region + ".compute.internal"
}

// PublicDomain is the domain of public DNS names.
func PublicDomain(region string) string {
	if region == "us-east-1" {
		return "compute-1.amazonaws.com"
	}
	return region + ".compute.amazonaws.com"
}

// PrivateDNSName is EC2's name for a private address: ip-a-b-c-d.<domain>.
func PrivateDNSName(region string, ip netip.Addr) string {
	return "ip-" + strings.ReplaceAll(ip.String(), ".", "-") + "." + PrivateDomain(region)
}

// PublicDNSName is EC2's name for a public address: ec2-a-b-c-d.<domain>.
func PublicDNSName(region string, ip netip.Addr) string {
	return "ec2-" + strings.ReplaceAll(ip.String(), ".", "-") + "." + PublicDomain(region)
}
