// Package network is the VPC data plane contract: the Driver interface, its
// vocabulary (VPC, Subnet, Interface, PublicIP, DNS) and its error classes.
// Implementations: network/linux (real) and network/fake (tests);
// network/networktest is the conformance suite both pass, and
// network/netbench measures the real one.
//
// # Topology on one host (network/linux)
//
//	host namespace                      (one link, one route: PublicRange via nubo0)
//	  nubo0  HostIP/32 (PublicRange base+1)
//	    │ veth
//	nubo-gw                             gateway namespace: routes only
//	  host0  GatewayIP/32 (base+2), route HostIP/32
//	  t<hash(vpc-a)>  169.254.0.1/32    one transit veth per VPC,
//	  t<hash(vpc-b)>  169.254.0.1/32    every public IP: /32 via 169.254.0.2 onlink
//	    │ veth                           dev t<hash(owner VPC)>
//	nubo-vpc-a                          VPC router namespace (one per VPC)
//	  gw0  169.254.0.2/32, default via 169.254.0.1 onlink
//	  lo   VPC base+2 (DNS), each subnet's base+1 (gateways)
//	  i<hash(i-1)>0  proxy ARP, strict rp_filter,  route 10.0.1.5/32, permanent neighbour
//	                 (the same for each secondary IP, route proto 0x6e)
//	  unreachable 10.0.0.0/16            (VPC addresses no instance has:
//	                                      TCP refused with a reset, else ICMP)
//	  nftables "ip nubo": stateless 1:1 NAT by maps, forward filter,
//	                     security groups (stateful, see linux/firewall.go)
//	    │ veth (one per interface)
//	nubo-i-1                            instance namespace (runc joins it)
//	  eth0  MAC, 10.0.1.5/24 (+ secondary IPs), default via 10.0.1.1
//	  eth1… for more ENIs; per eth<n>: "from <each address> lookup 1000+n",
//	        table 1000+n: subnet and default via eth<n> (source routing)
//
// Why this shape:
//
//   - A namespace per VPC router: VPCs never share a routing table, a
//     neighbour table or a firewall, so overlapping CIDRs just work, and a
//     VPC's state is one thing to create, inspect (ip netns exec) and delete.
//   - Routed instance ports instead of a bridge: each interface is a
//     point-to-point veth into the router, which routes the private IP (/32)
//     to it and answers ARP for the rest of the subnet (proxy ARP) and for
//     the gateway. Like EC2 there is no L2 between instances (no broadcast,
//     no ARP or MAC spoofing to worry about), and spoofing is stopped for
//     free: with strict reverse-path filtering on a port, only the
//     instance's own addresses are accepted from it (so replies from
//     eth1's addresses must leave through eth1: source routing in the
//     instance). Moving a secondary IP or a whole interface to another
//     instance is a route replace in the router; other instances' neighbour
//     caches hold their own port's MAC, so no gratuitous ARP is needed.
//     Between holders (an interface detached, not yet attached again), a
//     connection to the address is refused at once (a TCP reset: an ICMP
//     error arriving while connect() holds its socket only becomes a soft
//     error, and the client would wait a second for its SYN's retry), and
//     instances retry ARP every 100 ms (their router answers ARP only for
//     routed addresses), so a client's next try reaches the new holder.
//     Every packet between instances, in a subnet or across subnets, goes
//     through the router: one place for security groups and network ACLs
//     later.
//   - One gateway namespace between the host and the routers: the host needs
//     exactly one link and one route whatever the number of VPCs, the
//     gateway holds one /32 route per public IP (moving an IP between VPCs
//     is one route replace), and it has no default route, so nothing from a
//     VPC can leave the machine.
//   - NAT in the router, stateless (nftables maps, as EC2's internet gateway
//     maps 1:1): per-packet cost does not grow with the number of public
//     IPs, and a public IP moves or is cleared for the very next packet.
//     Connection tracking exists only for security groups, in the router,
//     after the NAT of inbound packets. (An ICMP error about NATed traffic
//     keeps the private address in its quoted header, so a host's UDP
//     socket does not see "port unreachable" through a public IP.)
//   - Subnet "public" (routed to an internet gateway) and an instance's
//     public IP are both checked per packet in the router's forward chain:
//     only instances with both reach the host and are reached from it.
//
// What the host sees while nubo runs: one veth (Config.HostLink, default
// nubo0, alias "nubo <prefix>", IPv6 off) with one address, HostIP/32 (a
// /32 adds no route to the main table), and one route,
// "PublicRange via GatewayIP dev nubo0 onlink src HostIP". Plus the named
// namespaces in /run/netns. No sysctl, firewall rule or other interface of
// the host's changes; Teardown removes them all.
//
// The host reaches an instance at its public IP (from HostIP); an instance
// with a public IP reaches the host at HostIP and is seen from its public
// IP. Instances resolve names at VPC base + 2 (a resolver in this process,
// sockets inside the router namespace).
//
// # Egress beyond the machine
//
// Off by default: the gateway has no default route and the host
// masquerades nothing. With linux.Config.Egress the gateway gets a default
// route to HostIP and the host one masquerade rule for PublicRange out of
// its other links (one nftables table of nubo's in the host namespace) and
// ip_forward, put back as it was by Teardown (see linux/egress.go).
//
// # Later: a VPC over several hosts (VXLAN)
//
// The VPC router becomes distributed: every host that runs an instance of a
// VPC has the VPC's router namespace with the same gateway addresses. The
// routers of a VPC are joined by one VXLAN device per VPC and host (VNI per
// VPC) inside the router namespace, its underlay socket in the host
// namespace (vxlan's link-netns). For a remote instance a router gets
// "10.0.1.7/32 via <remote router's VTEP-side address> dev vxlan onlink"
// plus a permanent neighbour and FDB entry toward the remote host's
// underlay IP, all written by nubo from its store (no multicast, no
// learning), exactly as Attach writes a local port's /32 and neighbour
// today. A public IP is mapped in the router of the host that runs its
// instance, and the hosts' gateways (or the underlay) route the /32 to that
// host, so NAT stays local to the instance; SetPublicIP on a new host is
// the same map-then-route-then-unmap move as between two local VPCs.
// Instance MTU then drops by 50 bytes (Config.MTU).
package network
