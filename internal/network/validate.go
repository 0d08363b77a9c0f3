package network

import (
	"fmt"
	"net/netip"
	"strings"
)

// MaxDevice is the highest device index an interface can have.
const MaxDevice = 31

// ValidID reports whether id is prefix followed by 1–60 letters, digits,
// '-' or '_' (vpc-…, subnet-…, i-…): safe in names of namespaces and links.
func ValidID(id, prefix string) bool {
	rest, ok := strings.CutPrefix(id, prefix)
	if !ok || rest == "" || len(rest) > 60 {
		return false
	}
	for _, c := range rest {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
		if !ok {
			return false
		}
	}
	return true
}

// reservedRanges may not be VPC address space: the routers use link-local
// addresses toward the gateway, and the others are not unicast.
var reservedRanges = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("224.0.0.0/3"),
}

// Validate checks what a VPC can be whatever the state.
func (v VPC) Validate() error {
	if !ValidID(v.ID, "vpc-") {
		return fmt.Errorf("%w: VPC ID %q", ErrInvalid, v.ID)
	}
	if err := validCIDR(v.CIDR); err != nil {
		return fmt.Errorf("VPC %s: %w", v.ID, err)
	}
	for _, r := range reservedRanges {
		if r.Overlaps(v.CIDR) {
			return fmt.Errorf("%w: VPC %s: CIDR %s overlaps reserved %s", ErrInvalid, v.ID, v.CIDR, r)
		}
	}
	return nil
}

func validCIDR(p netip.Prefix) error {
	switch {
	case !p.IsValid() || !p.Addr().Is4():
		return fmt.Errorf("%w: CIDR %s is not IPv4", ErrInvalid, p)
	case p != p.Masked():
		return fmt.Errorf("%w: CIDR %s has host bits set", ErrInvalid, p)
	case p.Bits() < 16 || p.Bits() > 28:
		return fmt.Errorf("%w: CIDR %s: prefix length must be 16 to 28", ErrInvalid, p)
	}
	return nil
}

// Validate checks a subnet against its VPC's CIDR.
func (s Subnet) Validate(vpcCIDR netip.Prefix) error {
	if !ValidID(s.ID, "subnet-") {
		return fmt.Errorf("%w: subnet ID %q", ErrInvalid, s.ID)
	}
	if err := validCIDR(s.CIDR); err != nil {
		return fmt.Errorf("subnet %s: %w", s.ID, err)
	}
	if s.CIDR.Bits() < vpcCIDR.Bits() || !vpcCIDR.Contains(s.CIDR.Addr()) {
		return fmt.Errorf("%w: subnet %s: CIDR %s is not inside the VPC's %s", ErrInvalid, s.ID, s.CIDR, vpcCIDR)
	}
	return nil
}

// Validate checks what an interface can be whatever the state; CheckSubnet
// checks it against its subnet.
func (i Interface) Validate() error {
	switch {
	case !ValidID(i.InstanceID, "i-"):
		return fmt.Errorf("%w: instance ID %q", ErrInvalid, i.InstanceID)
	case !ValidID(i.VPCID, "vpc-"):
		return fmt.Errorf("%w: VPC ID %q", ErrInvalid, i.VPCID)
	case !ValidID(i.SubnetID, "subnet-"):
		return fmt.Errorf("%w: subnet ID %q", ErrInvalid, i.SubnetID)
	case i.Device < 0 || i.Device > MaxDevice:
		return fmt.Errorf("%w: device index %d: must be 0 to %d", ErrInvalid, i.Device, MaxDevice)
	case len(i.MAC) != 6 || i.MAC[0]&1 != 0 || allZero(i.MAC):
		return fmt.Errorf("%w: MAC %q is not a unicast Ethernet address", ErrInvalid, i.MAC)
	case !i.PrivateIP.Is4():
		return fmt.Errorf("%w: private IP %s is not IPv4", ErrInvalid, i.PrivateIP)
	}
	seen := map[netip.Addr]bool{i.PrivateIP: true}
	for _, a := range i.SecondaryIPs {
		if !a.Is4() || seen[a] {
			return fmt.Errorf("%w: secondary IP %s (not IPv4, or listed twice)", ErrInvalid, a)
		}
		seen[a] = true
	}
	return nil
}

// CheckSubnet checks the interface's addresses against its subnet: the IPs
// (primary and secondary) inside it and not reserved, the prefix length the subnet's, the gateway
// base + 1.
func (i Interface) CheckSubnet(subnet netip.Prefix) error {
	switch {
	case !subnet.Contains(i.PrivateIP) || SubnetReserved(subnet, i.PrivateIP):
		return fmt.Errorf("%w: private IP %s is not an instance address of subnet %s (%s)", ErrInvalid, i.PrivateIP, i.SubnetID, subnet)
	case i.PrefixLen != subnet.Bits():
		return fmt.Errorf("%w: prefix length %d, subnet %s is a /%d", ErrInvalid, i.PrefixLen, i.SubnetID, subnet.Bits())
	case i.Gateway != SubnetGateway(subnet):
		return fmt.Errorf("%w: gateway %s, subnet %s's is %s", ErrInvalid, i.Gateway, i.SubnetID, SubnetGateway(subnet))
	}
	for _, a := range i.SecondaryIPs {
		if !subnet.Contains(a) || SubnetReserved(subnet, a) {
			return fmt.Errorf("%w: secondary IP %s is not an instance address of subnet %s (%s)", ErrInvalid, a, i.SubnetID, subnet)
		}
	}
	return nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// SubnetGateway is the subnet's router address: base + 1.
func SubnetGateway(subnet netip.Prefix) netip.Addr { return nth(subnet, 1) }

// DNSAddr is the VPC's resolver address: base + 2.
func DNSAddr(vpc netip.Prefix) netip.Addr { return nth(vpc, 2) }

// SubnetReserved reports whether ip is one of the five addresses AWS keeps
// in every subnet: the network address, base + 1 (router), + 2 (DNS), + 3
// (future use) and the broadcast address.
func SubnetReserved(subnet netip.Prefix, ip netip.Addr) bool {
	for k := range 4 {
		if ip == nth(subnet, k) {
			return true
		}
	}
	return ip == lastAddr(subnet)
}

func nth(p netip.Prefix, n int) netip.Addr {
	a := p.Masked().Addr()
	for range n {
		a = a.Next()
	}
	return a
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// PublicRange is the block of public IPs a driver routes from the host.
// Its first three addresses and its last are not for instances: the
// network address, the host's address on its link (base + 1), the gateway
// namespace's (base + 2), base + 3 kept, and the broadcast address.
type PublicRange netip.Prefix

// HostIP is the host's address on its nubo link: the source of the host's
// traffic to instances, and where instances reach the host.
func (r PublicRange) HostIP() netip.Addr { return nth(netip.Prefix(r), 1) }

// GatewayIP is the gateway namespace's address on the host link.
func (r PublicRange) GatewayIP() netip.Addr { return nth(netip.Prefix(r), 2) }

// Check reports whether ip can be an instance's public IP.
func (r PublicRange) Check(ip netip.Addr) error {
	p := netip.Prefix(r)
	if !ip.Is4() || !p.Contains(ip) || SubnetReserved(p, ip) {
		return fmt.Errorf("%w: public IP %s is not an instance address of the public range %s", ErrInvalid, ip, p)
	}
	return nil
}

// Validate checks a firewall whatever the state: group and instance IDs,
// 1 to MaxGroupsPerPort known groups per port, no port twice, IPv4 peers,
// protocols and ports in range.
func (f Firewall) Validate() error {
	groups := make(map[string]bool, len(f.Groups))
	for _, g := range f.Groups {
		if !ValidID(g.ID, "sg-") || groups[g.ID] {
			return fmt.Errorf("%w: security group ID %q (malformed or listed twice)", ErrInvalid, g.ID)
		}
		groups[g.ID] = true
		for _, rs := range [][]FirewallRule{g.Ingress, g.Egress} {
			for _, r := range rs {
				if err := r.validate(); err != nil {
					return fmt.Errorf("security group %s: %w", g.ID, err)
				}
			}
		}
	}
	ports := make(map[string]bool, len(f.Ports))
	for _, p := range f.Ports {
		key := fmt.Sprintf("%s/%d", p.InstanceID, p.Device)
		switch {
		case !ValidID(p.InstanceID, "i-"):
			return fmt.Errorf("%w: instance ID %q", ErrInvalid, p.InstanceID)
		case p.Device < 0 || p.Device > MaxDevice:
			return fmt.Errorf("%w: device index %d: must be 0 to %d", ErrInvalid, p.Device, MaxDevice)
		case ports[key]:
			return fmt.Errorf("%w: interface %s listed twice", ErrInvalid, key)
		case len(p.Groups) == 0 || len(p.Groups) > MaxGroupsPerPort:
			return fmt.Errorf("%w: interface %s has %d security groups: must be 1 to %d", ErrInvalid, key, len(p.Groups), MaxGroupsPerPort)
		}
		ports[key] = true
		for _, g := range p.Groups {
			if !groups[g] {
				return fmt.Errorf("%w: interface %s: security group %q is not in the firewall", ErrInvalid, key, g)
			}
		}
	}
	return nil
}

func (r FirewallRule) validate() error {
	switch {
	case !r.Peer.IsValid() || !r.Peer.Addr().Is4() || r.Peer != r.Peer.Masked():
		return fmt.Errorf("%w: peer %s is not an IPv4 prefix", ErrInvalid, r.Peer)
	case r.Protocol < -1 || r.Protocol > 255:
		return fmt.Errorf("%w: protocol %d", ErrInvalid, r.Protocol)
	case (r.Protocol == 6 || r.Protocol == 17) && (r.FromPort < 0 || r.FromPort > r.ToPort || r.ToPort > 65535):
		return fmt.Errorf("%w: port range %d-%d", ErrInvalid, r.FromPort, r.ToPort)
	case r.Protocol == 1 && (r.FromPort < -1 || r.FromPort > 255 || r.ToPort < -1 || r.ToPort > 255 || r.FromPort == -1 && r.ToPort != -1):
		return fmt.Errorf("%w: ICMP type %d code %d", ErrInvalid, r.FromPort, r.ToPort)
	}
	return nil
}
