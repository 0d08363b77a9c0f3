package linux

import (
	"context"
	"net/netip"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"

	"nubo/internal/network"
	"nubo/internal/network/netns"
)

// Observe reads everything this driver made back from the kernel: the
// namespaces named with its prefix, the routers' routes, nftables elements
// and port aliases, and the instances' links.
func (d *Driver) Observe(ctx context.Context) (network.State, error) {
	d.all.RLock()
	defer d.all.RUnlock()
	var st network.State
	var err error
	if st.Host, err = d.hostReady(); err != nil {
		return st, err
	}
	names, err := netns.List(d.cfg.NetNSDir, d.cfg.Prefix+"-")
	if err != nil {
		return st, err
	}
	type key struct {
		inst string
		dev  int
	}
	attached := make(map[key]network.Interface) // from the routers' ports
	var instances []string
	for _, n := range names {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		kind, id := d.nsKind(n)
		switch kind {
		case "instance":
			instances = append(instances, id)
		case "vpc":
			vs, ports, err := d.observeVPC(ctx, id)
			if err != nil {
				return st, err
			}
			st.VPCs = append(st.VPCs, vs)
			for _, p := range ports {
				attached[key{p.InstanceID, p.Device}] = p
			}
		}
	}
	for _, id := range instances {
		is := network.InstanceState{InstanceID: id, NetNS: d.instanceNS(id)}
		ih, err := netns.NewHandle(is.NetNS)
		if err != nil {
			return st, err
		}
		links, err := linkList(ih)
		for _, l := range links {
			dev, ok := ethDevice(l.Attrs().Name)
			ifc, known := attached[key{id, dev}]
			if err != nil || !ok || !known {
				continue
			}
			ifc.MAC = l.Attrs().HardwareAddr
			var have []netip.Prefix
			if have, err = primaryAddrs(ih, l); err == nil && len(have) > 0 {
				ifc.PrivateIP, ifc.PrefixLen = have[0].Addr(), have[0].Bits()
			}
			is.Interfaces = append(is.Interfaces, ifc)
		}
		ih.Close()
		if err != nil {
			return st, err
		}
		slices.SortFunc(is.Interfaces, func(a, b network.Interface) int { return a.Device - b.Device })
		st.Instances = append(st.Instances, is)
	}
	slices.SortFunc(st.VPCs, func(a, b network.VPCState) int { return strings.Compare(a.VPC.ID, b.VPC.ID) })
	slices.SortFunc(st.Instances, func(a, b network.InstanceState) int { return strings.Compare(a.InstanceID, b.InstanceID) })
	return st, nil
}

// publicIPs lists a VPC's public IPs: those in its maps that the gateway
// routes to it, or to no VPC (a crash before the route was made); not the
// stale ones routed elsewhere.
func (d *Driver) publicIPs(ctx context.Context, vpcID string) ([]network.PublicIP, error) {
	toPrivate, err := d.addrMap(ctx, d.routerNS(vpcID), mapToPrivate)
	if err != nil || len(toPrivate) == 0 {
		return nil, err
	}
	owners := map[netip.Addr]string{}
	if ok, _ := netns.IsNS(d.gwNS()); ok {
		gh, err := netns.NewHandle(d.gwNS())
		if err != nil {
			return nil, err
		}
		owners, err = publicOwners(gh)
		gh.Close()
		if err != nil {
			return nil, err
		}
	}
	var out []network.PublicIP
	for pub, priv := range toPrivate {
		if o := owners[pub]; o == "" || o == vpcID {
			out = append(out, network.PublicIP{PublicIP: pub, PrivateIP: priv, VPCID: vpcID})
		}
	}
	slices.SortFunc(out, func(a, b network.PublicIP) int { return a.PublicIP.Compare(b.PublicIP) })
	return out, nil
}

// observeVPC reads one router; the interfaces it returns know their
// instance, device, VPC, subnet, gateway and secondary addresses (the
// instance side adds MAC and primary address).
func (d *Driver) observeVPC(ctx context.Context, vpcID string) (network.VPCState, []network.Interface, error) {
	vs := network.VPCState{VPC: network.VPC{ID: vpcID}}
	path := d.routerNS(vpcID)
	rh, err := netns.NewHandle(path)
	if err != nil {
		return vs, nil, err
	}
	defer rh.Close()
	if vs.VPC.CIDR, err = vpcCIDRFrom(rh); err != nil {
		return vs, nil, err
	}
	if vs.Subnets, err = d.subnets(ctx, path); err != nil {
		return vs, nil, err
	}
	if vs.PublicIPs, err = d.publicIPs(ctx, vpcID); err != nil {
		return vs, nil, err
	}
	if s := d.resolverOf(vpcID); s != nil {
		dns := s.Get()
		vs.DNS = &dns
	}
	ports, err := routerPorts(rh)
	if err != nil {
		return vs, nil, err
	}
	routes, err := mainRoutes(rh)
	if err != nil {
		return vs, nil, err
	}
	var out []network.Interface
	for _, p := range ports {
		ifc := network.Interface{InstanceID: p.instanceID, VPCID: vpcID, SubnetID: p.subnetID, Device: p.device}
		if s, ok := findSubnet(vs.Subnets, p.subnetID); ok {
			ifc.Gateway = network.SubnetGateway(s.CIDR)
		}
		ifc.SecondaryIPs = secondariesOf(routes, p.link.Attrs().Index)
		out = append(out, ifc)
	}
	return vs, out, nil
}

// secondariesOf lists, sorted, the secondary addresses the router routes
// to a port: those it answers for, whatever the instance side still has
// (a moved address stays there until its old interface is updated).
func secondariesOf(routes []netlink.Route, link int) []netip.Addr {
	var out []netip.Addr
	for _, r := range routes {
		if dst := routeDst(r); r.LinkIndex == link && r.Protocol == secondaryProto && dst.Bits() == 32 {
			out = append(out, dst.Addr())
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}
