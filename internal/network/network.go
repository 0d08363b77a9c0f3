package network

import (
	"context"
	"errors"
	"net"
	"net/netip"
)

// Error classes. Drivers wrap them with context (errors.Is works); the API
// layer maps them to EC2 error codes once, at the edge.
var (
	// ErrNotFound: the VPC, subnet, instance or host network named does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict: something with that ID, address or name exists with other
	// properties (a VPC with another CIDR, overlapping subnets, a private IP
	// already attached elsewhere).
	ErrConflict = errors.New("conflict")
	// ErrInUse: the object still has dependents (a subnet with interfaces, a
	// VPC with subnets or public IPs).
	ErrInUse = errors.New("in use")
	// ErrInvalid: the arguments are malformed whatever the state.
	ErrInvalid = errors.New("invalid argument")
)

// Driver builds VPCs on this host. Every method is idempotent: it measures
// what exists before it acts, adopts what is already right, and is safe to
// repeat after a crash at any point. Kernel state is the source of truth, so
// a restarted nubo reads it back with Observe and reconciles.
//
// Methods other than EnsureHost, Teardown, Observe and Close need the host
// network (EnsureHost) and report ErrNotFound without it.
type Driver interface {
	// EnsureHost creates the host's gateway: the one link and the one route
	// toward the public range (see the package doc).
	EnsureHost(ctx context.Context) error
	// Teardown removes every VPC, instance network and the host's link and
	// route, leaving the host as it was before EnsureHost.
	Teardown(ctx context.Context) error

	// EnsureVPC creates a VPC's router and starts its DNS resolver (in this
	// process; after a restart EnsureVPC starts it again). ErrConflict if the ID
	// exists with another CIDR.
	EnsureVPC(ctx context.Context, vpc VPC) error
	// DeleteVPC removes the VPC's router and resolver. ErrInUse while it has
	// subnets or public IPs; an absent VPC is a no-op.
	DeleteVPC(ctx context.Context, vpcID string) error

	// EnsureSubnet creates a subnet or updates its Public flag.
	EnsureSubnet(ctx context.Context, vpcID string, subnet Subnet) error
	// DeleteSubnet removes a subnet; ErrInUse while interfaces are attached.
	DeleteSubnet(ctx context.Context, vpcID, subnetID string) error

	// Attach creates the instance's network namespace if needed and the
	// interface eth<Device> in it, and returns the namespace's path for the
	// runtime to join (runtime.Spec.NetNS). Every interface of an instance is
	// in one VPC.
	Attach(ctx context.Context, ifc Interface) (netnsPath string, err error)
	// Attach also updates an attached interface: its secondary addresses
	// become exactly Interface.SecondaryIPs. A secondary address routed to
	// another interface of the VPC moves to this one (EC2's reassignment:
	// the records decide who holds it); a primary address in use elsewhere
	// is ErrConflict.

	// Adopt makes the network namespace at path (one the instance's
	// runtime made, e.g. /proc/PID/ns/net) the instance's: Attach then
	// plumbs into it, and Detach releases it. Adopting the namespace the
	// instance has is a no-op; another one while it has one is ErrConflict.
	Adopt(ctx context.Context, instanceID, path string) error
	// DetachInterface removes one interface, eth<device>, of an instance
	// (its port, routes, neighbours and source-routing rules); its
	// addresses stop answering at once. An absent interface is a no-op.
	DetachInterface(ctx context.Context, instanceID string, device int) error
	// Detach removes all of an instance's interfaces and its namespace.
	Detach(ctx context.Context, instanceID string) error

	// SetPublicIP maps publicIP to privateIP in the VPC (DNAT inbound, SNAT
	// outbound). The mapping is one to one: a public IP mapped elsewhere
	// (another private IP, another VPC) moves, and a public IP the private IP
	// had before is released. Flows of other public IPs are untouched.
	SetPublicIP(ctx context.Context, vpcID string, privateIP, publicIP netip.Addr) error
	// ClearPublicIP releases a public IP wherever it is mapped.
	ClearPublicIP(ctx context.Context, publicIP netip.Addr) error

	// SetDNS replaces what the VPC's resolver (VPC base + 2, port 53) answers.
	SetDNS(ctx context.Context, vpcID string, dns DNS) error

	// SetFirewall replaces the security groups the VPC's router enforces on
	// its instances' interfaces, atomically: a packet sees the old firewall
	// or the new one. An interface of the VPC that Ports does not name
	// passes nothing (default deny both ways); Ports may name interfaces
	// not attached yet, so their firewall is in place when they are.
	SetFirewall(ctx context.Context, vpcID string, fw Firewall) error

	// Observe reports what exists, for reconciliation.
	Observe(ctx context.Context) (State, error)
	// Close stops what runs in this process (the resolvers) and leaves the
	// kernel state in place: instances keep their network.
	Close() error
}

// VPC is a virtual network with its own address space; VPCs may overlap.
type VPC struct {
	ID   string       // vpc-…
	CIDR netip.Prefix // IPv4, /16 to /28
}

// Subnet is a range of a VPC's addresses. Its gateway is base + 1.
type Subnet struct {
	ID   string       // subnet-…
	CIDR netip.Prefix // inside the VPC's CIDR, /16 to /28
	// Public: the subnet routes to an internet gateway. Only instances in a
	// public subnet that have a public IP reach the host and are reached
	// from it.
	Public bool
}

// Interface is one network interface of an instance (eth<Device>).
type Interface struct {
	InstanceID string // i-…
	VPCID      string
	SubnetID   string
	// Device is the device index: 0 is eth0, the primary interface that
	// carries the default route; 1… are eth1… (more ENIs).
	Device    int
	MAC       net.HardwareAddr
	PrivateIP netip.Addr
	// SecondaryIPs are the interface's other private addresses, in its
	// subnet (EC2's secondary private IPv4 addresses).
	SecondaryIPs []netip.Addr
	PrefixLen    int        // the subnet's prefix length
	Gateway      netip.Addr // the subnet's base + 1
}

// PublicIP is a public IP mapped to a private IP of a VPC.
type PublicIP struct {
	PublicIP  netip.Addr
	PrivateIP netip.Addr
	VPCID     string
}

// DNS is what a VPC's resolver answers. Names in Records answer their
// addresses (A) and addresses their first name (PTR); other names inside
// Zones answer NXDOMAIN; everything else REFUSED (there is no upstream).
type DNS struct {
	Zones   []string
	Records []DNSRecord
}

// DNSRecord is one A record.
type DNSRecord struct {
	Name string
	IP   netip.Addr
}

// Firewall is a VPC's security groups as the data plane enforces them:
// stateful (replies to allowed traffic pass both ways, an established
// connection lives as long as the rules still allow it), default deny in,
// egress as the rules say, dropped rather than rejected.
type Firewall struct {
	Groups []SecurityGroup
	Ports  []Port
}

// SecurityGroup is one group's rules. A rule naming another group arrives
// expanded: one rule per current private address of that group's members.
type SecurityGroup struct {
	ID      string
	Ingress []FirewallRule // what may reach the group's interfaces
	Egress  []FirewallRule // where they may send
}

// FirewallRule allows traffic with a peer (the source of ingress, the
// destination of egress) by protocol and ports. IPv4 only: the data plane
// has no IPv6.
type FirewallRule struct {
	// Protocol is an IANA protocol number, or -1 for all.
	Protocol int
	// FromPort and ToPort: the destination port range for TCP (6) and UDP
	// (17); for ICMP (1) the type and the code, -1 meaning any. Ignored for
	// other protocols.
	FromPort, ToPort int
	Peer             netip.Prefix
}

// Port names one interface and the groups that filter it (1 to
// MaxGroupsPerPort, listed in Firewall.Groups).
type Port struct {
	InstanceID string
	Device     int
	Groups     []string
}

// MaxGroupsPerPort is EC2's limit of security groups per interface.
const MaxGroupsPerPort = 5

// State is what a driver observes.
type State struct {
	Host      bool // the host's link, route and gateway exist
	VPCs      []VPCState
	Instances []InstanceState
}

// VPCState is one VPC as observed.
type VPCState struct {
	VPC       VPC
	Subnets   []Subnet
	PublicIPs []PublicIP
	// DNS is what the resolver answers; nil when this process runs none for
	// the VPC (after a restart, until EnsureVPC and SetDNS).
	DNS *DNS
}

// InstanceState is an instance's network namespace and its interfaces.
// An instance with no interfaces is a leftover for Detach.
type InstanceState struct {
	InstanceID string
	NetNS      string
	Interfaces []Interface
}
