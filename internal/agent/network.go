package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"

	"nubo/internal/eni"
	"nubo/internal/instance"
	"nubo/internal/network"
	"nubo/internal/resource"
	"nubo/internal/vpc"
)

// attachNetwork gives a booting instance its network: its VPC's router and
// its subnet (public or not, from the route tables), its interface in a
// namespace of its own, its public address, the VPC's DNS records, and a
// resolv.conf pointing at the VPC's resolver. It returns the namespace for
// the runtime to join.
func (a *Agent) attachNetwork(ctx context.Context, in instance.Instance) (string, error) {
	if in.VPCID == "" {
		return "", nil // launched before nubo had VPCs: loopback only
	}
	v, err := a.VPCs.GetVPC(ctx, in.Account, in.VPCID)
	if err != nil {
		return "", fmt.Errorf("vpc of %s: %w", in.ID, err)
	}
	sn, err := a.VPCs.GetSubnet(ctx, in.Account, in.SubnetID)
	if err != nil {
		return "", fmt.Errorf("subnet of %s: %w", in.ID, err)
	}
	if err := a.ensureSubnetOnce(ctx, in.Account, v, sn); err != nil {
		return "", err
	}
	mac, err := net.ParseMAC(in.MAC)
	if err != nil {
		return "", fmt.Errorf("mac of %s: %w", in.ID, err)
	}
	ifcs, revs, err := a.interfacesOf(ctx, in)
	if err != nil {
		return "", err
	}
	p := vpc.Prefix(sn.CIDR)
	eth0 := network.Interface{
		InstanceID: in.ID, VPCID: v.ID, SubnetID: sn.ID, Device: 0, MAC: mac,
		PrivateIP: netip.MustParseAddr(in.PrivateIP), PrefixLen: p.Bits(), Gateway: vpc.Gateway(sn),
	}
	for _, n := range ifcs {
		if n.Attachment.DeviceIndex == 0 { // its secondary addresses
			if eth0, err = dataInterface(in.ID, n, sn); err != nil {
				return "", err
			}
		}
	}
	path, err := a.Network.Attach(ctx, eth0)
	if err != nil {
		return "", fmt.Errorf("attaching %s to %s: %w", in.ID, sn.ID, err)
	}
	for _, n := range ifcs { // eth1 and up
		if n.Attachment.DeviceIndex > 0 && n.Attachment.Status != eni.Detaching {
			if _, err := a.attachInterface(ctx, in, n); err != nil {
				return "", err
			}
		}
	}
	// The interfaces' reconciles need not do it again (interfaces.go).
	for key, rev := range revs {
		a.setApplied(key, rev)
	}
	if err := a.syncFirewall(ctx, in.Account, in.Region, v.ID); err != nil {
		return "", err
	}
	if err := a.syncPublic(ctx, in); err != nil {
		return "", err
	}
	if err := a.syncDNS(ctx, in.Account, in.Region, v); err != nil {
		return "", err
	}
	return path, a.writeResolvConf(in, v)
}

// ensureSubnet makes the VPC's router and the subnet exist, with the
// subnet's reachability as its route tables say today.
func (a *Agent) ensureSubnet(ctx context.Context, account string, v vpc.VPC, sn vpc.Subnet) error {
	public, err := a.VPCs.IsPublic(ctx, account, sn)
	if err != nil {
		return err
	}
	if err := a.Network.EnsureVPC(ctx, network.VPC{ID: v.ID, CIDR: vpc.Prefix(v.CIDR)}); err != nil {
		return fmt.Errorf("vpc %s: %w", v.ID, err)
	}
	if err := a.Network.EnsureSubnet(ctx, v.ID, network.Subnet{ID: sn.ID, CIDR: vpc.Prefix(sn.CIDR), Public: public}); err != nil {
		return fmt.Errorf("subnet %s: %w", sn.ID, err)
	}
	a.mu.Lock()
	if a.subnets == nil {
		a.subnets = map[string]bool{}
	}
	a.subnets[sn.ID] = public
	a.mu.Unlock()
	return nil
}

// ensureSubnetOnce is ensureSubnet unless this process already made the
// subnet as it is now: rewriting a VPC's router at every boot would cost
// each launch tens of milliseconds.
func (a *Agent) ensureSubnetOnce(ctx context.Context, account string, v vpc.VPC, sn vpc.Subnet) error {
	public, err := a.VPCs.IsPublic(ctx, account, sn)
	if err != nil {
		return err
	}
	a.mu.Lock()
	applied, known := a.subnets[sn.ID]
	a.mu.Unlock()
	if known && applied == public {
		return nil
	}
	return a.ensureSubnet(ctx, account, v, sn)
}

// syncSubnet keeps a running instance's VPC and subnet as the records say:
// after a nubo restart it brings the VPC's resolver back (it runs in this
// process), and when route tables change it updates whether the subnet is
// public. It costs store reads only, unless something changed.
func (a *Agent) syncSubnet(ctx context.Context, in instance.Instance) error {
	if in.VPCID == "" {
		return nil
	}
	sn, err := a.VPCs.GetSubnet(ctx, in.Account, in.SubnetID)
	if err != nil {
		return err
	}
	public, err := a.VPCs.IsPublic(ctx, in.Account, sn)
	if err != nil {
		return err
	}
	a.mu.Lock()
	applied, known := a.subnets[sn.ID]
	_, fwKnown := a.firewalls[fwKey(in.Account, in.Region, in.VPCID)]
	a.mu.Unlock()
	if !fwKnown { // adopted after a restart: this process has not set it yet
		a.queue.add(fwKey(in.Account, in.Region, in.VPCID))
	}
	if known && applied == public {
		return nil
	}
	v, err := a.VPCs.GetVPC(ctx, in.Account, in.VPCID)
	if err != nil {
		return err
	}
	if err := a.ensureSubnet(ctx, in.Account, v, sn); err != nil {
		return err
	}
	return a.syncDNS(ctx, in.Account, in.Region, v)
}

// syncPublic makes the data plane map the instance's public address, as its
// record says now (an Elastic IP may have arrived or left).
func (a *Agent) syncPublic(ctx context.Context, in instance.Instance) error {
	a.mu.Lock()
	applied, known := a.public[in.ID]
	a.mu.Unlock()
	if known && applied == in.PublicIP {
		return nil
	}
	if known && applied != "" && applied != in.PublicIP {
		if err := a.clearPublicIfOurs(ctx, in, applied); err != nil {
			return err
		}
	}
	if ip, err := netip.ParseAddr(in.PublicIP); err == nil {
		if err := a.Network.SetPublicIP(ctx, in.VPCID, netip.MustParseAddr(in.PrivateIP), ip); err != nil {
			return fmt.Errorf("public address %s of %s: %w", ip, in.ID, err)
		}
	}
	a.mu.Lock()
	if a.public == nil {
		a.public = map[string]string{}
	}
	a.public[in.ID] = in.PublicIP
	a.mu.Unlock()
	if known { // its public DNS name changed with it
		if v, err := a.VPCs.GetVPC(ctx, in.Account, in.VPCID); err == nil {
			return a.syncDNS(ctx, in.Account, in.Region, v)
		}
	}
	return nil
}

// clearPublicIfOurs unmaps a public address the instance no longer has,
// unless it already went to another holder (whose SetPublicIP moved it).
func (a *Agent) clearPublicIfOurs(ctx context.Context, in instance.Instance, addr string) error {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return nil
	}
	var held vpc.Address
	rev, err := a.Store.GetRev(ctx, vpc.PublicKey(ip), &held)
	if err != nil {
		return err
	}
	// Held by someone else now (another instance's auto-assigned address,
	// or an Elastic IP gone to another instance): its holder maps it.
	if rev != 0 && held.Holder != in.ID && held.Holder != in.ElasticIP {
		if elsewhere, err := a.elasticIPElsewhere(ctx, in, held.Holder); err != nil || elsewhere {
			return err
		}
	}
	if err := a.Network.ClearPublicIP(ctx, ip); err != nil {
		return fmt.Errorf("unmapping %s from %s: %w", ip, in.ID, err)
	}
	return nil
}

// elasticIPElsewhere reports whether holder is an Elastic IP now associated
// with an instance other than in, or with a network interface's address.
func (a *Agent) elasticIPElsewhere(ctx context.Context, in instance.Instance, holder string) (bool, error) {
	if !resource.ValidID(resource.ElasticIP, holder) {
		return true, nil // an instance's auto-assigned address now
	}
	var e vpc.ElasticIP
	key := resource.Key(resource.Scope{Account: in.Account, Region: in.Region}, resource.ElasticIP, holder)
	if rev, err := a.Store.GetRev(ctx, key, &e); err != nil || rev == 0 {
		return false, err
	}
	return (e.InstanceID != "" && e.InstanceID != in.ID) || e.NetworkInterfaceID != "", nil
}

// detachNetwork takes an instance off the network (idempotent).
func (a *Agent) detachNetwork(ctx context.Context, in instance.Instance) error {
	if in.PublicIP != "" {
		if err := a.clearPublicIfOurs(ctx, in, in.PublicIP); err != nil {
			return err
		}
	}
	a.mu.Lock()
	delete(a.public, in.ID)
	a.mu.Unlock()
	if err := a.Network.Detach(ctx, in.ID); err != nil {
		return fmt.Errorf("detaching %s: %w", in.ID, err)
	}
	if in.VPCID == "" {
		return nil
	}
	v, err := a.VPCs.GetVPC(ctx, in.Account, in.VPCID)
	if err != nil {
		return nil // the VPC is gone: so are its names
	}
	return a.syncDNS(ctx, in.Account, in.Region, v)
}

// syncDNS gives the VPC's resolver the names of its instances that run:
// private names to private addresses, public names to public addresses.
func (a *Agent) syncDNS(ctx context.Context, account, region string, v vpc.VPC) error {
	kvs, err := a.Store.List(ctx, resource.Prefix(resource.Scope{Account: account, Region: region}, resource.Instance))
	if err != nil {
		return err
	}
	dns := network.DNS{Zones: []string{vpc.PrivateDomain(region), vpc.PublicDomain(region)}}
	named := map[netip.Addr]bool{}
	private := func(ip netip.Addr) {
		if !named[ip] {
			named[ip] = true
			dns.Records = append(dns.Records, network.DNSRecord{Name: vpc.PrivateDNSName(region, ip), IP: ip})
		}
	}
	running := map[string]bool{}
	for _, kv := range kvs {
		var in instance.Instance
		if err := json.Unmarshal(kv.Value, &in); err != nil {
			return fmt.Errorf("decoding %s: %w", kv.Key, err)
		}
		if in.VPCID != v.ID || in.Desired != instance.Running {
			continue
		}
		running[in.ID] = true
		if ip, err := netip.ParseAddr(in.PrivateIP); err == nil {
			private(ip)
		}
		if ip, err := netip.ParseAddr(in.PublicIP); err == nil && v.DNSHostnames {
			dns.Records = append(dns.Records, network.DNSRecord{Name: vpc.PublicDNSName(region, ip), IP: ip})
		}
	}
	// Every address of the interfaces of those instances has its name too.
	prefix := resource.Prefix(resource.Scope{Account: account, Region: region}, eni.Kind)
	if kvs, err = a.Store.List(ctx, prefix); err != nil {
		return err
	}
	ifcs, err := a.enis.list(kvs, prefix)
	if err != nil {
		return err
	}
	for _, n := range ifcs {
		if n.VPCID != v.ID || n.Attachment == nil || !running[n.Attachment.InstanceID] {
			continue
		}
		for _, p := range n.PrivateIPs {
			if ip, err := netip.ParseAddr(p.Address); err == nil {
				private(ip)
			}
		}
	}
	err = a.Network.SetDNS(ctx, v.ID, dns)
	if errors.Is(err, network.ErrNotFound) {
		return nil // no router here (no instance of the VPC has booted on this host): nothing to answer
	}
	if err != nil {
		return fmt.Errorf("dns of %s: %w", v.ID, err)
	}
	return nil
}

// writeResolvConf points the instance at its VPC's resolver, as EC2's DHCP
// does, replacing whatever the image had (a file or a symlink).
func (a *Agent) writeResolvConf(in instance.Instance, v vpc.VPC) error {
	etc := filepath.Join(a.rootfs(in.ID), "etc")
	if _, err := os.Stat(etc); err != nil {
		return nil // an image without /etc: nothing to tell it
	}
	path := filepath.Join(etc, "resolv.conf")
	body := fmt.Sprintf("# written by nubo at boot: the VPC's resolver\nnameserver %s\nsearch %s\n", vpc.Resolver(v), vpc.PrivateDomain(in.Region))
	if cur, err := os.ReadFile(path); err == nil && string(cur) == body {
		return nil
	}
	_ = os.Remove(path)
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		return fmt.Errorf("writing resolv.conf of %s: %w", in.ID, err)
	}
	im, err := a.Images.Get(context.Background(), in.Account, in.ImageID)
	if err != nil {
		return err
	}
	return os.Lchown(path, int(im.UIDBase), int(im.UIDBase))
}
