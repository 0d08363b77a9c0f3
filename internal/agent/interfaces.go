package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"nubo/internal/eni"
	"nubo/internal/instance"
	"nubo/internal/network"
	"nubo/internal/resource"
	"nubo/internal/store"
	"nubo/internal/vpc"
)

// The agent makes interface records real for the instances of its host:
// an attachment to a running instance becomes eth<device index> inside it
// (attaching → attached), a detachment takes the card out (detaching →
// available), and a change of an attached interface's addresses or groups
// is applied to the card and the VPC's firewall. A stopped instance's
// interfaces are attached at its next boot.

func isInterfaceKey(k string) bool { return strings.Contains(k, "/"+eni.Kind.Name+"/") }

func (a *Agent) reconcileInterface(ctx context.Context, key string) error {
	var n eni.Interface
	rev, err := a.Store.Get(ctx, key, &n)
	if errors.Is(err, store.ErrNotFound) {
		a.setApplied(key, 0)
		return nil
	} else if err != nil {
		return err
	}
	att := n.Attachment
	if att == nil {
		return nil
	}
	sc := scopeOf(key)
	var in instance.Instance
	_, err = a.Store.Get(ctx, instance.Key(sc.Account, sc.Region, att.InstanceID), &in)
	if errors.Is(err, store.ErrNotFound) {
		if att.Status == eni.Detaching { // the instance went: nothing to take out
			return a.endInterfaceAttachment(ctx, key, att.ID)
		}
		return nil
	}
	if err != nil || in.MachineName() != a.Host {
		return err
	}
	// A booting instance gets its cards from its boot (attachNetwork):
	// doing it here too would only race the boot for the same locks.
	live := in.Desired == instance.Running && in.State == instance.Running
	if att.Status == eni.Detaching {
		if att.DeviceIndex > 0 {
			if err := a.Network.DetachInterface(ctx, in.ID, att.DeviceIndex); err != nil {
				return fmt.Errorf("detaching %s from %s: %w", n.ID, in.ID, err)
			}
		}
		if err := a.endInterfaceAttachment(ctx, key, att.ID); err != nil {
			return err
		}
		a.queue.add(fwKey(sc.Account, sc.Region, n.VPCID))
		return a.syncInterfaceDNS(ctx, sc, n.VPCID)
	}
	// Applied already (the resync comes back to every interface): a card
	// that went away since, with its instance's namespace, came back with
	// it at the boot (attachNetwork).
	if live && a.applied(key) != rev {
		// The firewall first: a port it does not name passes nothing, so
		// the card would drop its first packets until the next sync.
		if err := a.syncFirewall(ctx, sc.Account, sc.Region, n.VPCID); err != nil {
			return err
		}
		if _, err := a.attachInterface(ctx, in, n); err != nil {
			return err
		}
		if err := a.syncInterfaceDNS(ctx, sc, n.VPCID); err != nil {
			return err
		}
		a.setApplied(key, rev)
	}
	if att.Status != eni.Attaching {
		return nil
	}
	_, err = store.Update(ctx, a.Store, key, func(x *eni.Interface) error {
		if x.Attachment == nil || x.Attachment.ID != att.ID || x.Attachment.Status != eni.Attaching {
			return errSkip
		}
		x.Attachment.Status = eni.Attached
		return nil
	})
	if errors.Is(err, errSkip) {
		return nil
	}
	return err
}

// endInterfaceAttachment makes a detached interface available.
func (a *Agent) endInterfaceAttachment(ctx context.Context, key, attachmentID string) error {
	_, err := store.Update(ctx, a.Store, key, func(x *eni.Interface) error {
		if x.Attachment == nil || x.Attachment.ID != attachmentID {
			return errSkip
		}
		x.Attachment, x.Status = nil, eni.Available
		return nil
	})
	if errors.Is(err, errSkip) || errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}

// attachInterface puts interface n into the instance's namespace (or
// updates its addresses) and returns the namespace's path.
func (a *Agent) attachInterface(ctx context.Context, in instance.Instance, n eni.Interface) (string, error) {
	sn, err := a.VPCs.GetSubnet(ctx, in.Account, n.SubnetID)
	if err != nil {
		return "", fmt.Errorf("subnet of %s: %w", n.ID, err)
	}
	v, err := a.VPCs.GetVPC(ctx, in.Account, n.VPCID)
	if err != nil {
		return "", fmt.Errorf("vpc of %s: %w", n.ID, err)
	}
	if err := a.ensureSubnetOnce(ctx, in.Account, v, sn); err != nil {
		return "", err
	}
	ifc, err := dataInterface(in.ID, n, sn)
	if err != nil {
		return "", err
	}
	path, err := a.Network.Attach(ctx, ifc)
	if err != nil {
		return "", fmt.Errorf("attaching %s to %s as eth%d: %w", n.ID, in.ID, ifc.Device, err)
	}
	return path, nil
}

// dataInterface is the data plane's view of an attached interface.
func dataInterface(instanceID string, n eni.Interface, sn vpc.Subnet) (network.Interface, error) {
	mac, err := net.ParseMAC(n.MAC)
	if err != nil {
		return network.Interface{}, fmt.Errorf("mac of %s: %w", n.ID, err)
	}
	primary, err := netip.ParseAddr(n.PrimaryIP())
	if err != nil {
		return network.Interface{}, fmt.Errorf("primary address of %s: %w", n.ID, err)
	}
	ifc := network.Interface{
		InstanceID: instanceID, VPCID: n.VPCID, SubnetID: n.SubnetID, Device: n.Attachment.DeviceIndex, MAC: mac,
		PrivateIP: primary, PrefixLen: vpc.Prefix(sn.CIDR).Bits(), Gateway: vpc.Gateway(sn),
	}
	for _, s := range n.SecondaryIPs() {
		if ip, err := netip.ParseAddr(s); err == nil {
			ifc.SecondaryIPs = append(ifc.SecondaryIPs, ip)
		}
	}
	return ifc, nil
}

// interfacesOf lists the interface records attached to an instance, by
// device index (detaching ones too), and each record's revision by key.
func (a *Agent) interfacesOf(ctx context.Context, in instance.Instance) ([]eni.Interface, map[string]int64, error) {
	sc := resource.Scope{Account: in.Account, Region: in.Region}
	prefix := resource.Prefix(sc, eni.Kind)
	kvs, err := a.Store.List(ctx, prefix)
	if err != nil {
		return nil, nil, err
	}
	all, err := a.enis.list(kvs, prefix)
	if err != nil {
		return nil, nil, err
	}
	mine := eni.OfInstance(all, in.ID)
	revs := make(map[string]int64, len(mine))
	for _, n := range mine {
		revs[eni.Key(sc, n.ID)] = 0
	}
	for _, kv := range kvs {
		if _, ok := revs[kv.Key]; ok {
			revs[kv.Key] = kv.ModRev
		}
	}
	return mine, revs, nil
}

// releaseInterfaces ends a terminated instance's attachments: interfaces
// with DeleteOnTermination are deleted and their addresses freed, the
// others become available.
func (a *Agent) releaseInterfaces(ctx context.Context, in instance.Instance) error {
	ifcs, _, err := a.interfacesOf(ctx, in)
	if err != nil {
		return err
	}
	sc := resource.Scope{Account: in.Account, Region: in.Region}
	svc := eni.Service{Store: a.Store, VPCs: a.VPCs}
	for _, n := range ifcs {
		key := eni.Key(sc, n.ID)
		if !n.Attachment.DeleteOnTermination {
			if err := a.keepAddresses(ctx, sc, in, n); err != nil {
				return err
			}
			if err := a.endInterfaceAttachment(ctx, key, n.Attachment.ID); err != nil {
				return err
			}
			continue
		}
		var cur eni.Interface
		rev, err := a.Store.Get(ctx, key, &cur)
		if errors.Is(err, store.ErrNotFound) {
			continue
		} else if err != nil {
			return err
		}
		if !cur.AttachedTo(in.ID) {
			continue
		}
		ops, err := svc.ReleaseOps(ctx, sc, cur)
		if err != nil {
			return err
		}
		ops = append(ops, store.Op{Key: key, ModRev: rev, Delete: true})
		if err := a.Store.Apply(ctx, ops...); err != nil && !errors.Is(err, store.ErrConflict) {
			return err
		} else if err != nil {
			return fmt.Errorf("releasing %s: %w", n.ID, err) // retried
		}
	}
	return nil
}

// syncInterfaceDNS gives the VPC's resolver the names of an interface's
// addresses (ip-a-b-c-d for each) as they are now.
func (a *Agent) syncInterfaceDNS(ctx context.Context, sc resource.Scope, vpcID string) error {
	v, err := a.VPCs.GetVPC(ctx, sc.Account, vpcID)
	if err != nil {
		return nil // the VPC is gone: so are its names
	}
	return a.syncDNS(ctx, sc.Account, sc.Region, v)
}

// applied is the revision of an interface record this process last made
// real on a running instance (0: none).
func (a *Agent) applied(key string) int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.eniApplied[key]
}

func (a *Agent) setApplied(key string, rev int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.eniApplied == nil {
		a.eniApplied = map[string]int64{}
	}
	if rev == 0 {
		delete(a.eniApplied, key)
	} else {
		a.eniApplied[key] = rev
	}
}

// keepAddresses makes an interface that outlives its instance the holder
// of its addresses: an adopted primary interface's address is still held
// by the instance, whose termination frees what it holds.
func (a *Agent) keepAddresses(ctx context.Context, sc resource.Scope, in instance.Instance, n eni.Interface) error {
	for _, p := range n.PrivateIPs {
		ip, err := netip.ParseAddr(p.Address)
		if err != nil {
			continue
		}
		_, err = store.Update(ctx, a.Store, vpc.PrivateKey(sc.Account, sc.Region, n.VPCID, ip), func(c *vpc.Address) error {
			if c.Holder != in.ID {
				return errSkip
			}
			c.Holder = n.ID
			return nil
		})
		if err != nil && !errors.Is(err, errSkip) && !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	return nil
}
