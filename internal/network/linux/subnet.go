package linux

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"sigs.k8s.io/knftables"

	"nubo/internal/network"
)

// A subnet is an element of the router's "subnets" set (comment: its ID),
// of "public_subnets" if public, and its gateway address (base + 1) on the
// router's loopback, where the router answers ARP for it on every port.

// subnets reads a router's subnets, sorted by CIDR.
func (d *Driver) subnets(ctx context.Context, path string) ([]network.Subnet, error) {
	all, err := d.nftElements(ctx, path, "set", setSubnets)
	if err != nil {
		return nil, err
	}
	public, err := d.nftElements(ctx, path, "set", setPublic)
	if err != nil {
		return nil, err
	}
	isPublic := make(map[netip.Prefix]bool)
	for _, e := range public {
		if p, err := elemPrefix(e); err == nil {
			isPublic[p] = true
		}
	}
	var out []network.Subnet
	for _, e := range all {
		p, err := elemPrefix(e)
		if err != nil {
			return nil, fmt.Errorf("set %s in %s: %w", setSubnets, path, err)
		}
		id := ""
		if e.Comment != nil {
			id = *e.Comment
		}
		out = append(out, network.Subnet{ID: id, CIDR: p, Public: isPublic[p]})
	}
	slices.SortFunc(out, func(a, b network.Subnet) int { return a.CIDR.Addr().Compare(b.CIDR.Addr()) })
	return out, nil
}

func elemPrefix(e *knftables.Element) (netip.Prefix, error) {
	if len(e.Key) != 1 {
		return netip.Prefix{}, fmt.Errorf("unexpected element %v", e.Key)
	}
	if p, err := netip.ParsePrefix(e.Key[0]); err == nil {
		return p, nil
	}
	a, err := netip.ParseAddr(e.Key[0])
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("unexpected element %v", e.Key)
	}
	return netip.PrefixFrom(a, 32), nil
}

func findSubnet(subnets []network.Subnet, id string) (network.Subnet, bool) {
	for _, s := range subnets {
		if s.ID == id {
			return s, true
		}
	}
	return network.Subnet{}, false
}

// EnsureSubnet adds the subnet to the router or updates its Public flag.
func (d *Driver) EnsureSubnet(ctx context.Context, vpcID string, subnet network.Subnet) error {
	defer d.begin("vpc/" + vpcID)()
	if err := ctx.Err(); err != nil {
		return err
	}
	path, rh, vpcCIDR, err := d.router(vpcID)
	if err != nil {
		return err
	}
	defer rh.Close()
	if err := subnet.Validate(vpcCIDR); err != nil {
		return err
	}
	have, err := d.subnets(ctx, path)
	if err != nil {
		return err
	}
	var cur *network.Subnet
	for i, s := range have {
		switch {
		case s.ID == subnet.ID && s.CIDR != subnet.CIDR:
			return fmt.Errorf("%w: subnet %s exists with CIDR %s", network.ErrConflict, s.ID, s.CIDR)
		case s.ID == subnet.ID:
			cur = &have[i]
		case s.CIDR.Overlaps(subnet.CIDR):
			return fmt.Errorf("%w: subnet %s (%s) overlaps subnet %s (%s)", network.ErrConflict, subnet.ID, subnet.CIDR, s.ID, s.CIDR)
		}
	}
	tx, err := d.nftTx()
	if err != nil {
		return err
	}
	elem := func(set string) *knftables.Element {
		return &knftables.Element{Set: set, Key: []string{subnet.CIDR.String()}}
	}
	if cur == nil {
		e := elem(setSubnets)
		e.Comment = knftables.PtrTo(subnet.ID)
		tx.Add(e)
	}
	wasPublic := cur != nil && cur.Public
	if subnet.Public && !wasPublic {
		tx.Add(elem(setPublic))
	} else if !subnet.Public && wasPublic {
		tx.Delete(elem(setPublic))
	}
	if err := d.nftRun(ctx, path, tx); err != nil {
		return err
	}
	lo, err := linkByName(rh, "lo")
	if err != nil {
		return err
	}
	return ensureAddr(rh, lo, netip.PrefixFrom(network.SubnetGateway(subnet.CIDR), 32))
}

// DeleteSubnet removes a subnet that has no interfaces.
func (d *Driver) DeleteSubnet(ctx context.Context, vpcID, subnetID string) error {
	if !network.ValidID(subnetID, "subnet-") {
		return fmt.Errorf("%w: subnet ID %q", network.ErrInvalid, subnetID)
	}
	defer d.begin("vpc/" + vpcID)()
	if err := ctx.Err(); err != nil {
		return err
	}
	path, rh, _, err := d.router(vpcID)
	if errors.Is(err, network.ErrNotFound) {
		return nil // no VPC, no subnet
	}
	if err != nil {
		return err
	}
	defer rh.Close()
	have, err := d.subnets(ctx, path)
	if err != nil {
		return err
	}
	subnet, ok := findSubnet(have, subnetID)
	if !ok {
		return nil
	}
	ports, err := routerPorts(rh)
	if err != nil {
		return err
	}
	for _, p := range ports {
		if p.subnetID == subnetID {
			return fmt.Errorf("%w: subnet %s has interface %s eth%d", network.ErrInUse, subnetID, p.instanceID, p.device)
		}
	}
	lo, err := linkByName(rh, "lo")
	if err != nil {
		return err
	}
	if err := removeAddr(rh, lo, netip.PrefixFrom(network.SubnetGateway(subnet.CIDR), 32)); err != nil {
		return err
	}
	tx, err := d.nftTx()
	if err != nil {
		return err
	}
	if subnet.Public {
		tx.Delete(&knftables.Element{Set: setPublic, Key: []string{subnet.CIDR.String()}})
	}
	tx.Delete(&knftables.Element{Set: setSubnets, Key: []string{subnet.CIDR.String()}})
	return d.nftRun(ctx, path, tx)
}

// port is an instance interface's end in the router.
type port struct {
	link       netlink.Link
	instanceID string
	device     int
	subnetID   string
}

// routerPorts lists a router's instance ports (links with a port alias).
func routerPorts(rh *netlink.Handle) ([]port, error) {
	links, err := linkList(rh)
	if err != nil {
		return nil, err
	}
	var out []port
	for _, l := range links {
		inst, dev, subnet, ok := parsePortAlias(l.Attrs().Alias)
		if ok && l.Attrs().Name == portName(inst, dev) {
			out = append(out, port{link: l, instanceID: inst, device: dev, subnetID: subnet})
		}
	}
	return out, nil
}
