package linux

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"nubo/internal/network"
	"nubo/internal/network/netns"
)

// Settings of an instance's namespace: its root is an unprivileged user in
// its own user namespace, so sshd needs port 22 unprivileged, and ping
// needs ICMP datagram sockets (raw sockets are not allowed there).
var instanceSysctls = []netns.Sysctl{
	{Key: "net/ipv4/ip_unprivileged_port_start", Value: "0"},
	{Key: "net/ipv4/ping_group_range", Value: "0\t2147483647"},
}

// Attach makes eth<Device> in the instance's namespace: a veth whose other
// end (the port) is in the VPC router, which routes the private IP (/32) to
// the port, has a permanent neighbour entry for the MAC, answers ARP for
// the subnet's other addresses (proxy ARP) and drops any other source
// address on the port (strict reverse-path filter).
func (d *Driver) Attach(ctx context.Context, ifc network.Interface) (string, error) {
	if err := ifc.Validate(); err != nil {
		return "", err
	}
	defer d.begin("vpc/"+ifc.VPCID, "i/"+ifc.InstanceID)()
	if err := ctx.Err(); err != nil {
		return "", err
	}
	rpath, rh, _, err := d.router(ifc.VPCID)
	if err != nil {
		return "", err
	}
	defer rh.Close()
	subnets, err := d.subnets(ctx, rpath)
	if err != nil {
		return "", err
	}
	subnet, ok := findSubnet(subnets, ifc.SubnetID)
	if !ok {
		return "", fmt.Errorf("%w: subnet %s in VPC %s", network.ErrNotFound, ifc.SubnetID, ifc.VPCID)
	}
	if err := ifc.CheckSubnet(subnet.CIDR); err != nil {
		return "", err
	}

	// Measure: this instance's ports in the router, and who routes the IP.
	ports, err := routerPorts(rh)
	if err != nil {
		return "", err
	}
	var mine *port
	devices := make(map[int]bool)
	for i, p := range ports {
		if p.instanceID == ifc.InstanceID {
			devices[p.device] = true
			if p.device == ifc.Device {
				mine = &ports[i]
			}
		}
	}
	if mine != nil && mine.subnetID != ifc.SubnetID {
		return "", fmt.Errorf("%w: %s eth%d is attached to subnet %s", network.ErrConflict, ifc.InstanceID, ifc.Device, mine.subnetID)
	}
	hostRoute := netip.PrefixFrom(ifc.PrivateIP, 32)
	routes, err := routesTo(rh, hostRoute)
	if err != nil {
		return "", err
	}
	for _, r := range routes {
		if mine == nil || r.LinkIndex != mine.link.Attrs().Index {
			return "", fmt.Errorf("%w: private IP %s is in use in VPC %s", network.ErrConflict, ifc.PrivateIP, ifc.VPCID)
		}
	}

	ipath := d.instanceNS(ifc.InstanceID)
	if _, err := netns.Create(ipath); err != nil {
		return "", fmt.Errorf("instance namespace: %w", err)
	}
	if err := netns.SetSysctls(ipath, instanceSysctls...); err != nil {
		return "", fmt.Errorf("instance namespace: %w", err)
	}
	ih, err := netns.NewHandle(ipath)
	if err != nil {
		return "", err
	}
	defer ih.Close()
	links, err := linkList(ih)
	if err != nil {
		return "", err
	}
	for _, l := range links {
		if dev, ok := ethDevice(l.Attrs().Name); ok && l.Type() == "veth" && !devices[dev] {
			return "", fmt.Errorf("%w: instance %s has eth%d outside VPC %s", network.ErrConflict, ifc.InstanceID, dev, ifc.VPCID)
		}
	}
	eth, err := linkByName(ih, ethName(ifc.Device))
	if err != nil {
		return "", err
	}
	if mine != nil && eth != nil {
		if err := sameInterface(ih, eth, ifc); err != nil {
			return "", err
		}
	} else {
		if eth, err = d.createPort(rh, ih, ipath, ifc); err != nil {
			return "", err
		}
	}
	portLink, err := linkByName(rh, portName(ifc.InstanceID, ifc.Device))
	if err != nil {
		return "", err
	}
	if portLink == nil {
		return "", fmt.Errorf("port of %s eth%d vanished", ifc.InstanceID, ifc.Device)
	}
	if err := d.configureInstanceSide(ih, eth, ifc); err != nil {
		return "", err
	}
	if err := d.configureRouterSide(rpath, rh, portLink, ifc); err != nil {
		return "", err
	}
	return ipath, nil
}

// sameInterface checks that an existing eth<Device> is this interface (a
// different MAC or address is another interface: a conflict).
func sameInterface(ih *netlink.Handle, eth netlink.Link, ifc network.Interface) error {
	if !bytes.Equal(eth.Attrs().HardwareAddr, ifc.MAC) {
		return fmt.Errorf("%w: %s eth%d has MAC %s", network.ErrConflict, ifc.InstanceID, ifc.Device, eth.Attrs().HardwareAddr)
	}
	have, err := addrs(ih, eth)
	if err != nil {
		return err
	}
	want := netip.PrefixFrom(ifc.PrivateIP, ifc.PrefixLen)
	for _, a := range have {
		if a != want {
			return fmt.Errorf("%w: %s eth%d has address %s", network.ErrConflict, ifc.InstanceID, ifc.Device, a)
		}
	}
	return nil
}

// createPort makes the veth pair: the port in the router, eth<Device> with
// the interface's MAC in the instance's namespace.
func (d *Driver) createPort(rh, ih *netlink.Handle, ipath string, ifc network.Interface) (netlink.Link, error) {
	// A port of that name without its alias is a leftover of a crash
	// between creating and naming it.
	if err := deleteLink(rh, portName(ifc.InstanceID, ifc.Device)); err != nil {
		return nil, err
	}
	f, err := os.Open(ipath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	veth := &netlink.Veth{
		LinkAttrs: netlink.LinkAttrs{
			Name: portName(ifc.InstanceID, ifc.Device), MTU: d.cfg.MTU, TxQLen: -1,
			Alias: portAlias(ifc.InstanceID, ifc.Device, ifc.SubnetID),
		},
		PeerName:         ethName(ifc.Device),
		PeerHardwareAddr: ifc.MAC,
		PeerNamespace:    netlink.NsFd(int(f.Fd())),
		PeerMTU:          uint32(d.cfg.MTU),
	}
	if _, err := addVeth(rh, veth); err != nil {
		return nil, fmt.Errorf("create %s eth%d: %w", ifc.InstanceID, ifc.Device, err)
	}
	eth, err := linkByName(ih, ethName(ifc.Device))
	if err == nil && eth == nil {
		err = fmt.Errorf("%s eth%d vanished after creation", ifc.InstanceID, ifc.Device)
	}
	return eth, err
}

func (d *Driver) configureInstanceSide(ih *netlink.Handle, eth netlink.Link, ifc network.Interface) error {
	lo, err := linkByName(ih, "lo")
	if err != nil {
		return err
	}
	if err := ensureUp(ih, lo, 0); err != nil {
		return err
	}
	if !bytes.Equal(eth.Attrs().HardwareAddr, ifc.MAC) {
		if err := ih.LinkSetHardwareAddr(eth, ifc.MAC); err != nil {
			return fmt.Errorf("MAC of eth%d: %w", ifc.Device, err)
		}
	}
	if err := ensureAddr(ih, eth, netip.PrefixFrom(ifc.PrivateIP, ifc.PrefixLen)); err != nil {
		return err
	}
	if err := d.ensureLink(ih, eth); err != nil {
		return err
	}
	// Source routing, as EC2's own images set up for their ENIs (the
	// instance cannot: it does not own its namespace): what leaves from
	// this interface's address leaves through it, so replies do not take
	// another interface and fall to the router's reverse-path filter.
	table := interfaceTable + ifc.Device
	subnet := netip.PrefixFrom(ifc.PrivateIP, ifc.PrefixLen).Masked()
	routes := []netlink.Route{
		{Dst: ipNet(subnet), LinkIndex: eth.Attrs().Index, Src: ifc.PrivateIP.AsSlice(), Scope: netlink.SCOPE_LINK, Table: table},
		{LinkIndex: eth.Attrs().Index, Gw: ifc.Gateway.AsSlice(), Table: table},
	}
	if ifc.Device == 0 { // only the primary interface carries the main default route
		routes = append(routes, netlink.Route{LinkIndex: eth.Attrs().Index, Gw: ifc.Gateway.AsSlice(), Table: unix.RT_TABLE_MAIN})
	}
	for _, r := range routes {
		if err := ensureRoute(ih, r); err != nil {
			return err
		}
	}
	return ensureRule(ih, table, table, ifc.PrivateIP)
}

// interfaceTable + device is the routing table (and rule priority) of an
// instance's interface.
const interfaceTable = 1000

func (d *Driver) configureRouterSide(rpath string, rh *netlink.Handle, p netlink.Link, ifc network.Interface) error {
	name := p.Attrs().Name
	err := netns.SetSysctls(rpath,
		netns.Sysctl{Key: "net/ipv4/conf/" + name + "/proxy_arp", Value: "1"},
		netns.Sysctl{Key: "net/ipv4/conf/" + name + "/rp_filter", Value: "1"},
		// Proxy ARP answers a broadcast request after a random delay of
		// up to proxy_delay (0.8 s by default): an instance's first packet
		// to a neighbour would wait for it.
		netns.Sysctl{Key: "net/ipv4/neigh/" + name + "/proxy_delay", Value: "0"})
	if err != nil {
		return err
	}
	if err := d.ensureLink(rh, p); err != nil {
		return err
	}
	err = ensureRoute(rh, netlink.Route{
		Dst: ipNet(netip.PrefixFrom(ifc.PrivateIP, 32)), LinkIndex: p.Attrs().Index, Scope: netlink.SCOPE_LINK, Table: unix.RT_TABLE_MAIN,
	})
	if err != nil {
		return err
	}
	err = rh.NeighSet(&netlink.Neigh{
		LinkIndex: p.Attrs().Index, Family: netlink.FAMILY_V4, State: netlink.NUD_PERMANENT,
		IP: ifc.PrivateIP.AsSlice(), HardwareAddr: ifc.MAC,
	})
	if err != nil {
		return fmt.Errorf("neighbour %s: %w", ifc.PrivateIP, err)
	}
	return nil
}

// Detach deletes the instance's interfaces (each port goes with its veth,
// and the port's route and neighbour with it) and its namespace.
func (d *Driver) Detach(ctx context.Context, instanceID string) error {
	if !network.ValidID(instanceID, "i-") {
		return fmt.Errorf("%w: instance ID %q", network.ErrInvalid, instanceID)
	}
	defer d.begin("i/" + instanceID)()
	if err := ctx.Err(); err != nil {
		return err
	}
	ipath := d.instanceNS(instanceID)
	ok, err := netns.IsNS(ipath)
	if err != nil {
		return err
	}
	if ok {
		ih, err := netns.NewHandle(ipath)
		if err != nil {
			return err
		}
		err = deleteEths(ih)
		ih.Close()
		if err != nil {
			return err
		}
	} else if err := d.deletePortsOf(instanceID); err != nil {
		// The namespace's file is gone but a process may still hold the
		// namespace, and with it the veths.
		return err
	}
	return netns.Delete(ipath)
}

func deleteEths(ih *netlink.Handle) error {
	links, err := linkList(ih)
	if err != nil {
		return err
	}
	for _, l := range links {
		if _, ok := ethDevice(l.Attrs().Name); ok && l.Type() == "veth" {
			if err := deleteLink(ih, l.Attrs().Name); err != nil {
				return err
			}
		}
	}
	return nil
}

// deletePortsOf removes an instance's ports from every router.
func (d *Driver) deletePortsOf(instanceID string) error {
	names, err := netns.List(d.cfg.NetNSDir, d.cfg.Prefix+"-")
	if err != nil {
		return err
	}
	for _, n := range names {
		if kind, _ := d.nsKind(n); kind != "vpc" {
			continue
		}
		rh, err := netns.NewHandle(d.nsPath(n))
		if err != nil {
			return err
		}
		ports, err := routerPorts(rh)
		for _, p := range ports {
			if err == nil && p.instanceID == instanceID {
				err = deleteLink(rh, p.link.Attrs().Name)
			}
		}
		rh.Close()
		if err != nil {
			return err
		}
	}
	return nil
}
