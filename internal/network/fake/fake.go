// Package fake is an in-memory network.Driver with the semantics of the
// real one (network/linux): the same validation, conflicts, one-to-one
// public IPs and observations, and no packets. networktest's conformance
// suite runs against both. Any method can be made to fail with Fail.
package fake

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"nubo/internal/network"
)

// Op names a Driver method, for Fail.
type Op string

// Ops that can be made to fail.
const (
	OpEnsureHost    Op = "EnsureHost"
	OpTeardown      Op = "Teardown"
	OpEnsureVPC     Op = "EnsureVPC"
	OpDeleteVPC     Op = "DeleteVPC"
	OpEnsureSubnet  Op = "EnsureSubnet"
	OpDeleteSubnet  Op = "DeleteSubnet"
	OpAttach        Op = "Attach"
	OpDetach        Op = "Detach"
	OpDetachIfc     Op = "DetachInterface"
	OpSetPublicIP   Op = "SetPublicIP"
	OpClearPublicIP Op = "ClearPublicIP"
	OpSetDNS        Op = "SetDNS"
	OpObserve       Op = "Observe"
	OpSetFirewall   Op = "SetFirewall"
)

// Config of the fake; zero values take the real driver's defaults.
type Config struct {
	Prefix      string
	PublicRange netip.Prefix
	NetNSDir    string
}

// Driver is the fake. Call New.
type Driver struct {
	mu        sync.Mutex
	cfg       Config
	public    network.PublicRange
	host      bool
	vpcs      map[string]*vpc
	instances map[string]map[int]network.Interface // by instance ID, device
	adopted   map[string]string                    // instance ID → namespace path
	owners    map[netip.Addr]string                // public IP → VPC ID
	failures  map[Op]error
	calls     map[Op]int
}

type vpc struct {
	cidr      netip.Prefix
	subnets   map[string]network.Subnet
	toPrivate map[netip.Addr]netip.Addr
	dns       *network.DNS // nil: no resolver running
	firewall  *network.Firewall
}

var _ network.Driver = (*Driver)(nil)

// New returns a fake with nothing made.
func New(cfg Config) *Driver {
	if cfg.Prefix == "" {
		cfg.Prefix = "nubo"
	}
	if !cfg.PublicRange.IsValid() {
		cfg.PublicRange = netip.MustParsePrefix("198.18.0.0/15")
	}
	if cfg.NetNSDir == "" {
		cfg.NetNSDir = "/run/netns"
	}
	d := &Driver{cfg: cfg, public: network.PublicRange(cfg.PublicRange), failures: make(map[Op]error), calls: make(map[Op]int)}
	d.reset()
	return d
}

func (d *Driver) reset() {
	d.host = false
	d.vpcs = make(map[string]*vpc)
	d.instances = make(map[string]map[int]network.Interface)
	d.owners = make(map[netip.Addr]string)
}

// Fail makes every later call of op return err (nil clears it).
func (d *Driver) Fail(op Op, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err == nil {
		delete(d.failures, op)
	} else {
		d.failures[op] = err
	}
}

// Calls returns how many times op was called.
func (d *Driver) Calls(op Op) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.calls[op]
}

// begin locks the fake and counts the call; it returns the injected
// failure, if any, and then the context's error.
func (d *Driver) begin(ctx context.Context, op Op) error {
	d.mu.Lock()
	d.calls[op]++
	if err := d.failures[op]; err != nil {
		return err
	}
	return ctx.Err()
}

// EnsureHost implements network.Driver.
func (d *Driver) EnsureHost(ctx context.Context) error {
	defer d.mu.Unlock()
	if err := d.begin(ctx, OpEnsureHost); err != nil {
		return err
	}
	d.host = true
	return nil
}

// Teardown implements network.Driver.
func (d *Driver) Teardown(ctx context.Context) error {
	defer d.mu.Unlock()
	if err := d.begin(ctx, OpTeardown); err != nil {
		return err
	}
	d.reset()
	return nil
}

// Close implements network.Driver: the resolvers stop.
func (d *Driver) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, v := range d.vpcs {
		v.dns = nil
	}
	return nil
}

// EnsureVPC implements network.Driver.
func (d *Driver) EnsureVPC(ctx context.Context, v network.VPC) error {
	if err := v.Validate(); err != nil {
		return err
	}
	if v.CIDR.Overlaps(d.cfg.PublicRange) {
		return fmt.Errorf("%w: VPC %s: CIDR %s overlaps the public range %s", network.ErrInvalid, v.ID, v.CIDR, d.cfg.PublicRange)
	}
	defer d.mu.Unlock()
	if err := d.begin(ctx, OpEnsureVPC); err != nil {
		return err
	}
	if !d.host {
		return fmt.Errorf("%w: host network (call EnsureHost)", network.ErrNotFound)
	}
	cur := d.vpcs[v.ID]
	if cur == nil {
		cur = &vpc{cidr: v.CIDR, subnets: make(map[string]network.Subnet), toPrivate: make(map[netip.Addr]netip.Addr)}
		d.vpcs[v.ID] = cur
	} else if cur.cidr != v.CIDR {
		return fmt.Errorf("%w: VPC %s exists with CIDR %s", network.ErrConflict, v.ID, cur.cidr)
	}
	if cur.dns == nil {
		cur.dns = &network.DNS{}
	}
	return nil
}

// vpc returns an existing VPC or ErrNotFound / ErrInvalid.
func (d *Driver) vpc(id string) (*vpc, error) {
	if !network.ValidID(id, "vpc-") {
		return nil, fmt.Errorf("%w: VPC ID %q", network.ErrInvalid, id)
	}
	v := d.vpcs[id]
	if v == nil {
		return nil, fmt.Errorf("%w: VPC %s", network.ErrNotFound, id)
	}
	return v, nil
}

// DeleteVPC implements network.Driver.
func (d *Driver) DeleteVPC(ctx context.Context, id string) error {
	if !network.ValidID(id, "vpc-") {
		return fmt.Errorf("%w: VPC ID %q", network.ErrInvalid, id)
	}
	defer d.mu.Unlock()
	if err := d.begin(ctx, OpDeleteVPC); err != nil {
		return err
	}
	v := d.vpcs[id]
	switch {
	case v == nil:
		return nil
	case len(v.subnets) > 0:
		return fmt.Errorf("%w: VPC %s has %d subnets", network.ErrInUse, id, len(v.subnets))
	case len(v.toPrivate) > 0:
		return fmt.Errorf("%w: VPC %s has %d public IPs", network.ErrInUse, id, len(v.toPrivate))
	}
	delete(d.vpcs, id)
	return nil
}

// EnsureSubnet implements network.Driver.
func (d *Driver) EnsureSubnet(ctx context.Context, vpcID string, s network.Subnet) error {
	defer d.mu.Unlock()
	if err := d.begin(ctx, OpEnsureSubnet); err != nil {
		return err
	}
	v, err := d.vpc(vpcID)
	if err != nil {
		return err
	}
	if err := s.Validate(v.cidr); err != nil {
		return err
	}
	for _, o := range v.subnets {
		switch {
		case o.ID == s.ID && o.CIDR != s.CIDR:
			return fmt.Errorf("%w: subnet %s exists with CIDR %s", network.ErrConflict, o.ID, o.CIDR)
		case o.ID != s.ID && o.CIDR.Overlaps(s.CIDR):
			return fmt.Errorf("%w: subnet %s (%s) overlaps subnet %s (%s)", network.ErrConflict, s.ID, s.CIDR, o.ID, o.CIDR)
		}
	}
	v.subnets[s.ID] = s
	return nil
}

// DeleteSubnet implements network.Driver.
func (d *Driver) DeleteSubnet(ctx context.Context, vpcID, subnetID string) error {
	if !network.ValidID(subnetID, "subnet-") {
		return fmt.Errorf("%w: subnet ID %q", network.ErrInvalid, subnetID)
	}
	defer d.mu.Unlock()
	if err := d.begin(ctx, OpDeleteSubnet); err != nil {
		return err
	}
	v, err := d.vpc(vpcID)
	if errors.Is(err, network.ErrNotFound) {
		return nil // no VPC, no subnet
	}
	if err != nil {
		return err
	}
	for _, inst := range d.instances {
		for _, ifc := range inst {
			if ifc.VPCID == vpcID && ifc.SubnetID == subnetID {
				return fmt.Errorf("%w: subnet %s has interface %s eth%d", network.ErrInUse, subnetID, ifc.InstanceID, ifc.Device)
			}
		}
	}
	delete(v.subnets, subnetID)
	return nil
}

// Path is the namespace path Attach returns for an instance.
func (d *Driver) Path(instanceID string) string {
	return filepath.Join(d.cfg.NetNSDir, d.cfg.Prefix+"-"+instanceID)
}

// Attach implements network.Driver.
func (d *Driver) Attach(ctx context.Context, ifc network.Interface) (string, error) {
	if err := ifc.Validate(); err != nil {
		return "", err
	}
	defer d.mu.Unlock()
	if err := d.begin(ctx, OpAttach); err != nil {
		return "", err
	}
	v, err := d.vpc(ifc.VPCID)
	if err != nil {
		return "", err
	}
	s, ok := v.subnets[ifc.SubnetID]
	if !ok {
		return "", fmt.Errorf("%w: subnet %s in VPC %s", network.ErrNotFound, ifc.SubnetID, ifc.VPCID)
	}
	if err := ifc.CheckSubnet(s.CIDR); err != nil {
		return "", err
	}
	inst := d.instances[ifc.InstanceID]
	mine, exists := inst[ifc.Device]
	if exists && mine.SubnetID != ifc.SubnetID {
		return "", fmt.Errorf("%w: %s eth%d is attached to subnet %s", network.ErrConflict, ifc.InstanceID, ifc.Device, mine.SubnetID)
	}
	if err := d.checkAddrs(ifc); err != nil {
		return "", err
	}
	for dev, o := range inst {
		if o.VPCID != ifc.VPCID {
			return "", fmt.Errorf("%w: instance %s has eth%d outside VPC %s", network.ErrConflict, ifc.InstanceID, dev, ifc.VPCID)
		}
	}
	if exists {
		switch {
		case !bytes.Equal(mine.MAC, ifc.MAC):
			return "", fmt.Errorf("%w: %s eth%d has MAC %s", network.ErrConflict, ifc.InstanceID, ifc.Device, mine.MAC)
		case mine.PrivateIP != ifc.PrivateIP || mine.PrefixLen != ifc.PrefixLen:
			return "", fmt.Errorf("%w: %s eth%d has address %s/%d", network.ErrConflict, ifc.InstanceID, ifc.Device, mine.PrivateIP, mine.PrefixLen)
		}
	}
	if inst == nil {
		inst = make(map[int]network.Interface)
		d.instances[ifc.InstanceID] = inst
	}
	d.takeSecondaries(ifc)
	ifc.MAC = append(net.HardwareAddr(nil), ifc.MAC...)
	ifc.SecondaryIPs = sortedAddrs(ifc.SecondaryIPs)
	inst[ifc.Device] = ifc
	return d.Path(ifc.InstanceID), nil
}

// Adopt records that the instance's namespace is path (the fake has no
// namespaces: Attach answers Path as ever).
func (d *Driver) Adopt(ctx context.Context, instanceID, path string) error {
	if !network.ValidID(instanceID, "i-") {
		return fmt.Errorf("%w: instance ID %q", network.ErrInvalid, instanceID)
	}
	defer d.mu.Unlock()
	if err := d.begin(ctx, OpAttach); err != nil {
		return err
	}
	if d.adopted == nil {
		d.adopted = map[string]string{}
	}
	if old, ok := d.adopted[instanceID]; ok && old != path {
		return fmt.Errorf("%w: instance %s has namespace %s", network.ErrConflict, instanceID, old)
	}
	d.adopted[instanceID] = path
	return nil
}

// Adopted is the namespace Adopt recorded for the instance.
func (d *Driver) Adopted(instanceID string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.adopted[instanceID]
}

// others calls f with every interface of ifc's VPC but ifc itself.
func (d *Driver) others(ifc network.Interface, f func(network.Interface)) {
	for _, inst := range d.instances {
		for _, o := range inst {
			if o.VPCID == ifc.VPCID && (o.InstanceID != ifc.InstanceID || o.Device != ifc.Device) {
				f(o)
			}
		}
	}
}

// checkAddrs refuses a primary IP another interface of the VPC has
// (primary or secondary) and a secondary IP that is another's primary.
func (d *Driver) checkAddrs(ifc network.Interface) error {
	var err error
	d.others(ifc, func(o network.Interface) {
		switch {
		case err != nil:
		case o.PrivateIP == ifc.PrivateIP || slices.Contains(o.SecondaryIPs, ifc.PrivateIP):
			err = fmt.Errorf("%w: private IP %s is in use in VPC %s", network.ErrConflict, ifc.PrivateIP, ifc.VPCID)
		case slices.Contains(ifc.SecondaryIPs, o.PrivateIP):
			err = fmt.Errorf("%w: secondary IP %s is the primary IP of another interface in VPC %s", network.ErrConflict, o.PrivateIP, ifc.VPCID)
		}
	})
	return err
}

// takeSecondaries moves ifc's secondary IPs away from the other interfaces
// of the VPC that have them.
func (d *Driver) takeSecondaries(ifc network.Interface) {
	d.others(ifc, func(o network.Interface) {
		kept := slices.DeleteFunc(slices.Clone(o.SecondaryIPs), func(a netip.Addr) bool { return slices.Contains(ifc.SecondaryIPs, a) })
		if len(kept) != len(o.SecondaryIPs) {
			o.SecondaryIPs = sortedAddrs(kept)
			d.instances[o.InstanceID][o.Device] = o
		}
	})
}

// sortedAddrs is a sorted copy of addrs, nil if empty (as Observe reports).
func sortedAddrs(addrs []netip.Addr) []netip.Addr {
	if len(addrs) == 0 {
		return nil
	}
	out := slices.Clone(addrs)
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// DetachInterface implements network.Driver.
func (d *Driver) DetachInterface(ctx context.Context, instanceID string, device int) error {
	if !network.ValidID(instanceID, "i-") {
		return fmt.Errorf("%w: instance ID %q", network.ErrInvalid, instanceID)
	}
	if device < 0 || device > network.MaxDevice {
		return fmt.Errorf("%w: device index %d: must be 0 to %d", network.ErrInvalid, device, network.MaxDevice)
	}
	defer d.mu.Unlock()
	if err := d.begin(ctx, OpDetachIfc); err != nil {
		return err
	}
	delete(d.instances[instanceID], device)
	return nil
}

// Detach implements network.Driver.
func (d *Driver) Detach(ctx context.Context, instanceID string) error {
	if !network.ValidID(instanceID, "i-") {
		return fmt.Errorf("%w: instance ID %q", network.ErrInvalid, instanceID)
	}
	defer d.mu.Unlock()
	if err := d.begin(ctx, OpDetach); err != nil {
		return err
	}
	delete(d.instances, instanceID)
	delete(d.adopted, instanceID)
	return nil
}

// SetPublicIP implements network.Driver.
func (d *Driver) SetPublicIP(ctx context.Context, vpcID string, privateIP, publicIP netip.Addr) error {
	if err := d.public.Check(publicIP); err != nil {
		return err
	}
	if !privateIP.Is4() {
		return fmt.Errorf("%w: private IP %s is not IPv4", network.ErrInvalid, privateIP)
	}
	defer d.mu.Unlock()
	if err := d.begin(ctx, OpSetPublicIP); err != nil {
		return err
	}
	v, err := d.vpc(vpcID)
	if err != nil {
		return err
	}
	if !v.cidr.Contains(privateIP) {
		return fmt.Errorf("%w: private IP %s is outside VPC %s (%s)", network.ErrInvalid, privateIP, vpcID, v.cidr)
	}
	if owner, ok := d.owners[publicIP]; ok {
		delete(d.vpcs[owner].toPrivate, publicIP)
	}
	for pub, priv := range v.toPrivate {
		if priv == privateIP && pub != publicIP {
			delete(v.toPrivate, pub)
			delete(d.owners, pub)
		}
	}
	v.toPrivate[publicIP] = privateIP
	d.owners[publicIP] = vpcID
	return nil
}

// ClearPublicIP implements network.Driver.
func (d *Driver) ClearPublicIP(ctx context.Context, publicIP netip.Addr) error {
	if err := d.public.Check(publicIP); err != nil {
		return err
	}
	defer d.mu.Unlock()
	if err := d.begin(ctx, OpClearPublicIP); err != nil {
		return err
	}
	if owner, ok := d.owners[publicIP]; ok {
		delete(d.vpcs[owner].toPrivate, publicIP)
		delete(d.owners, publicIP)
	}
	return nil
}

// SetDNS implements network.Driver.
func (d *Driver) SetDNS(ctx context.Context, vpcID string, dns network.DNS) error {
	for _, r := range dns.Records {
		if !r.IP.IsValid() || r.Name == "" {
			return fmt.Errorf("%w: DNS record %q → %s", network.ErrInvalid, r.Name, r.IP)
		}
	}
	defer d.mu.Unlock()
	if err := d.begin(ctx, OpSetDNS); err != nil {
		return err
	}
	v, err := d.vpc(vpcID)
	if err != nil {
		return err
	}
	v.dns = &network.DNS{Zones: slices.Clone(dns.Zones), Records: slices.Clone(dns.Records)}
	return nil
}

// SetFirewall implements network.Driver.
func (d *Driver) SetFirewall(ctx context.Context, vpcID string, fw network.Firewall) error {
	if err := fw.Validate(); err != nil {
		return err
	}
	defer d.mu.Unlock()
	if err := d.begin(ctx, OpSetFirewall); err != nil {
		return err
	}
	v, err := d.vpc(vpcID)
	if err != nil {
		return err
	}
	cp := network.Firewall{Groups: slices.Clone(fw.Groups), Ports: slices.Clone(fw.Ports)}
	v.firewall = &cp
	return nil
}

// Firewall returns what SetFirewall last set for a VPC, if anything.
func (d *Driver) Firewall(vpcID string) (network.Firewall, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if v := d.vpcs[vpcID]; v != nil && v.firewall != nil {
		return *v.firewall, true
	}
	return network.Firewall{}, false
}

// Observe implements network.Driver.
func (d *Driver) Observe(ctx context.Context) (network.State, error) {
	defer d.mu.Unlock()
	if err := d.begin(ctx, OpObserve); err != nil {
		return network.State{}, err
	}
	st := network.State{Host: d.host}
	for id, v := range d.vpcs {
		vs := network.VPCState{VPC: network.VPC{ID: id, CIDR: v.cidr}}
		for _, s := range v.subnets {
			vs.Subnets = append(vs.Subnets, s)
		}
		slices.SortFunc(vs.Subnets, func(a, b network.Subnet) int { return a.CIDR.Addr().Compare(b.CIDR.Addr()) })
		for pub, priv := range v.toPrivate {
			vs.PublicIPs = append(vs.PublicIPs, network.PublicIP{PublicIP: pub, PrivateIP: priv, VPCID: id})
		}
		slices.SortFunc(vs.PublicIPs, func(a, b network.PublicIP) int { return a.PublicIP.Compare(b.PublicIP) })
		if v.dns != nil {
			c := network.DNS{Zones: slices.Clone(v.dns.Zones), Records: slices.Clone(v.dns.Records)}
			vs.DNS = &c
		}
		st.VPCs = append(st.VPCs, vs)
	}
	slices.SortFunc(st.VPCs, func(a, b network.VPCState) int { return strings.Compare(a.VPC.ID, b.VPC.ID) })
	for id, inst := range d.instances {
		is := network.InstanceState{InstanceID: id, NetNS: d.Path(id)}
		for _, ifc := range inst {
			ifc.MAC = append(net.HardwareAddr(nil), ifc.MAC...)
			ifc.SecondaryIPs = slices.Clone(ifc.SecondaryIPs)
			is.Interfaces = append(is.Interfaces, ifc)
		}
		slices.SortFunc(is.Interfaces, func(a, b network.Interface) int { return a.Device - b.Device })
		st.Instances = append(st.Instances, is)
	}
	slices.SortFunc(st.Instances, func(a, b network.InstanceState) int { return strings.Compare(a.InstanceID, b.InstanceID) })
	return st, nil
}
