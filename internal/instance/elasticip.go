package instance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"

	"nubo/internal/apierr"
	"nubo/internal/eni"
	"nubo/internal/resource"
	"nubo/internal/store"
	"nubo/internal/vpc"
)

// MaxElasticIPs is EC2's default quota of Elastic IPs per region.
const MaxElasticIPs = 5

func (s *Service) eipKey(account, id string) string {
	return resource.Key(s.scope(account), resource.ElasticIP, id)
}

// AllocateAddress takes an Elastic IP from the public pool.
func (s *Service) AllocateAddress(ctx context.Context, account string, tags []resource.Tag) (vpc.ElasticIP, error) {
	set, err := resource.Merge("", nil, tags)
	if err != nil {
		return vpc.ElasticIP{}, err
	}
	for attempt := 0; attempt < 20; attempt++ {
		all, err := s.Addresses(ctx, account)
		if err != nil {
			return vpc.ElasticIP{}, err
		}
		if len(all) >= MaxElasticIPs {
			return vpc.ElasticIP{}, apierr.New("AddressLimitExceeded", "The maximum number of addresses (%d) has been reached.", MaxElasticIPs)
		}
		e := vpc.ElasticIP{Meta: resource.Meta{ID: resource.NewID(resource.ElasticIP), Tags: set, CreateTime: s.now()}, Owner: account}
		ips, claims, err := s.Public.Allocate(ctx, account, []string{e.ID})
		if err != nil {
			return vpc.ElasticIP{}, err
		}
		e.PublicIP = ips[0].String()
		err = s.Store.Apply(ctx, append(claims, store.Op{Key: s.eipKey(account, e.ID), Value: e})...)
		if errors.Is(err, store.ErrConflict) {
			continue // another allocation took the address
		}
		return e, err
	}
	return vpc.ElasticIP{}, apierr.New("RequestLimitExceeded", "Too many concurrent allocations; retry.")
}

// Addresses lists the account's Elastic IPs.
func (s *Service) Addresses(ctx context.Context, account string) ([]vpc.ElasticIP, error) {
	kvs, err := s.Store.List(ctx, resource.Prefix(s.scope(account), resource.ElasticIP))
	if err != nil {
		return nil, err
	}
	out := make([]vpc.ElasticIP, len(kvs))
	for i, kv := range kvs {
		if err := json.Unmarshal(kv.Value, &out[i]); err != nil {
			return nil, fmt.Errorf("decoding %s: %w", kv.Key, err)
		}
	}
	return out, nil
}

// Address finds an Elastic IP by allocation ID or by address.
func (s *Service) Address(ctx context.Context, account, allocID, publicIP string) (vpc.ElasticIP, error) {
	all, err := s.Addresses(ctx, account)
	if err != nil {
		return vpc.ElasticIP{}, err
	}
	for _, e := range all {
		if (allocID != "" && e.ID == allocID) || (allocID == "" && e.PublicIP == publicIP) {
			return e, nil
		}
	}
	if allocID != "" {
		return vpc.ElasticIP{}, apierr.New("InvalidAllocationID.NotFound", "The allocation ID '%s' does not exist", allocID)
	}
	return vpc.ElasticIP{}, apierr.New("InvalidAddress.NotFound", "Address '%s' not found.", publicIP)
}

// AssociateAddress moves an Elastic IP to an instance: it replaces the
// instance's auto-assigned public address (which is released), and it leaves
// any instance it was on before (which then has no public address) — all in
// one transaction.
//
// An address of a network interface other than an instance's primary one
// (NetworkInterfaceId, or InstanceId with another PrivateIpAddress) takes
// the interface's path (associateENI): the address follows the interface.
func (s *Service) AssociateAddress(ctx context.Context, account, allocID, publicIP, instanceID, eniID, privateIP string, reassociate bool) (string, error) {
	instanceID, eniID, err := s.eipTarget(ctx, account, instanceID, eniID, privateIP)
	if err != nil {
		return "", err
	}
	if eniID != "" {
		return s.associateENI(ctx, account, allocID, publicIP, eniID, privateIP, reassociate)
	}
	for attempt := 0; attempt < 20; attempt++ {
		e, err := s.Address(ctx, account, allocID, publicIP)
		if err != nil {
			return "", err
		}
		erev, err := s.Store.Get(ctx, s.eipKey(account, e.ID), &e)
		if err != nil {
			return "", err
		}
		var in Instance
		irev, err := s.Store.Get(ctx, Key(account, s.Region, instanceID), &in)
		if errors.Is(err, store.ErrNotFound) {
			return "", apierr.New("InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", instanceID)
		} else if err != nil {
			return "", err
		}
		switch {
		case in.State == Terminated || in.State == ShuttingDown:
			return "", apierr.New("IncorrectInstanceState", "The instance '%s' is not in a valid state for this operation.", instanceID)
		case privateIP != "" && privateIP != in.PrivateIP:
			return "", apierr.New(apierr.InvalidParameterValue, "The private IP address %s is not assigned to instance %s.", privateIP, instanceID)
		case e.InstanceID == instanceID:
			return e.AssociationID, nil
		case e.Associated() && !reassociate:
			return "", apierr.New("Resource.AlreadyAssociated", "resource %s is already associated with associate-id %s", e.ID, e.AssociationID)
		}
		var ops []store.Op
		if e.InstanceID != "" { // leaving another instance
			prevOps, err := s.detachEIP(ctx, account, e.InstanceID)
			if err != nil {
				return "", err
			}
			ops = append(ops, prevOps...)
		}
		if in.ElasticIP != "" { // the instance's old Elastic IP comes off
			var old vpc.ElasticIP
			orev, err := s.Store.Get(ctx, s.eipKey(account, in.ElasticIP), &old)
			if err == nil {
				old.Disassociate()
				ops = append(ops, store.Op{Key: s.eipKey(account, old.ID), Value: old, ModRev: orev})
			}
		} else if ip, err := netip.ParseAddr(in.PublicIP); err == nil { // its auto-assigned address is released
			ops = append(ops, store.Op{Key: vpc.PublicKey(ip), ModRev: -1, Delete: true})
		}
		e.Disassociate()
		e.AssociationID, e.InstanceID, e.PrivateIP = resource.NewID(resource.AddressAssoc), instanceID, in.PrivateIP
		in.ElasticIP, in.PublicIP = e.ID, e.PublicIP
		ops = append(ops,
			store.Op{Key: s.eipKey(account, e.ID), Value: e, ModRev: erev},
			store.Op{Key: Key(account, s.Region, instanceID), Value: in, ModRev: irev})
		if err := s.Store.Apply(ctx, ops...); errors.Is(err, store.ErrConflict) {
			continue
		} else if err != nil {
			return "", err
		}
		return e.AssociationID, nil
	}
	return "", apierr.New("RequestLimitExceeded", "Too many concurrent changes to %s; retry.", allocID)
}

// detachEIP returns the writes that take an instance's Elastic IP off it
// (the instance is left with no public address until its next start).
func (s *Service) detachEIP(ctx context.Context, account, instanceID string) ([]store.Op, error) {
	var in Instance
	rev, err := s.Store.Get(ctx, Key(account, s.Region, instanceID), &in)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	in.ElasticIP, in.PublicIP = "", ""
	return []store.Op{{Key: Key(account, s.Region, instanceID), Value: in, ModRev: rev}}, nil
}

// DisassociateAddress takes an Elastic IP off its instance.
func (s *Service) DisassociateAddress(ctx context.Context, account, assocID, publicIP string) error {
	for attempt := 0; attempt < 20; attempt++ {
		all, err := s.Addresses(ctx, account)
		if err != nil {
			return err
		}
		var e *vpc.ElasticIP
		for i := range all {
			if (assocID != "" && all[i].AssociationID == assocID) || (assocID == "" && all[i].PublicIP == publicIP) {
				e = &all[i]
			}
		}
		if e == nil || !e.Associated() {
			if assocID != "" {
				return apierr.New("InvalidAssociationID.NotFound", "The association ID '%s' does not exist", assocID)
			}
			return apierr.New("InvalidAddress.NotFound", "Address '%s' is not associated.", publicIP)
		}
		erev, err := s.Store.Get(ctx, s.eipKey(account, e.ID), e)
		if err != nil {
			return err
		}
		var ops []store.Op
		if e.InstanceID != "" {
			if ops, err = s.detachEIP(ctx, account, e.InstanceID); err != nil {
				return err
			}
		}
		e.Disassociate()
		ops = append(ops, store.Op{Key: s.eipKey(account, e.ID), Value: *e, ModRev: erev})
		if err := s.Store.Apply(ctx, ops...); errors.Is(err, store.ErrConflict) {
			continue
		} else if err != nil {
			return err
		}
		return nil
	}
	return apierr.New("RequestLimitExceeded", "Too many concurrent changes; retry.")
}

// ReleaseAddress returns an unassociated Elastic IP to the pool.
func (s *Service) ReleaseAddress(ctx context.Context, account, allocID, publicIP string) error {
	e, err := s.Address(ctx, account, allocID, publicIP)
	if err != nil {
		return err
	}
	var cur vpc.ElasticIP
	rev, err := s.Store.Get(ctx, s.eipKey(account, e.ID), &cur)
	if err != nil {
		return err
	}
	if cur.Associated() {
		return apierr.New("InvalidIPAddress.InUse", "Address %s is in use: associated with %s%s (%s).", cur.PublicIP, cur.InstanceID, cur.NetworkInterfaceID, cur.AssociationID)
	}
	err = s.Store.Apply(ctx,
		store.Op{Key: s.eipKey(account, e.ID), ModRev: rev, Delete: true},
		store.Op{Key: vpc.PublicKey(netip.MustParseAddr(cur.PublicIP)), ModRev: -1, Delete: true})
	if errors.Is(err, store.ErrConflict) {
		return apierr.New("IncorrectState", "Address %s changed while being released; retry.", cur.PublicIP)
	}
	return err
}

// eipTarget decides where an association goes: an instance's primary
// address (instanceID), or a network interface's address (eniID).
func (s *Service) eipTarget(ctx context.Context, account, instanceID, eniID, privateIP string) (string, string, error) {
	sc := s.scope(account)
	if eniID != "" {
		n, err := s.enis().Get(ctx, sc, eniID)
		if err != nil {
			return "", "", err
		}
		if privateIP == "" {
			privateIP = n.PrimaryIP()
		}
		if !n.Has(privateIP) {
			return "", "", apierr.New(apierr.InvalidParameterValue, "The private IP address %s is not assigned to network interface %s.", privateIP, eniID)
		}
		if a := n.Attachment; a != nil && a.DeviceIndex == 0 && privateIP == n.PrimaryIP() {
			return a.InstanceID, "", nil // an instance's primary address: its public IP
		}
		return "", eniID, nil
	}
	if instanceID == "" {
		return "", "", apierr.Missing("InstanceId")
	}
	in, err := s.Get(ctx, account, instanceID)
	if err != nil || privateIP == "" || privateIP == in.PrivateIP {
		return instanceID, "", err
	}
	ifcs, err := s.enis().Attached(ctx, sc, instanceID)
	if err != nil {
		return "", "", err
	}
	for _, n := range ifcs {
		if n.Has(privateIP) {
			return "", n.ID, nil
		}
	}
	return "", "", apierr.New(apierr.InvalidParameterValue, "The private IP address %s is not assigned to instance %s.", privateIP, instanceID)
}

// associateENI associates an Elastic IP with a private address of a
// network interface, replacing the Elastic IP that address had, and taking
// this one off wherever it was.
func (s *Service) associateENI(ctx context.Context, account, allocID, publicIP, eniID, privateIP string, reassociate bool) (string, error) {
	sc := s.scope(account)
	for attempt := 0; attempt < 20; attempt++ {
		e, err := s.Address(ctx, account, allocID, publicIP)
		if err != nil {
			return "", err
		}
		erev, err := s.Store.Get(ctx, s.eipKey(account, e.ID), &e)
		if err != nil {
			return "", err
		}
		var n eni.Interface
		nrev, err := s.Store.Get(ctx, eni.Key(sc, eniID), &n)
		if errors.Is(err, store.ErrNotFound) {
			return "", apierr.New(eni.Kind.NotFoundCode, "The networkInterface ID '%s' does not exist", eniID)
		} else if err != nil {
			return "", err
		}
		if privateIP == "" {
			privateIP = n.PrimaryIP()
		}
		switch {
		case !n.Has(privateIP):
			return "", apierr.New(apierr.InvalidParameterValue, "The private IP address %s is not assigned to network interface %s.", privateIP, eniID)
		case e.NetworkInterfaceID == eniID && e.PrivateIP == privateIP:
			return e.AssociationID, nil
		case e.Associated() && !reassociate:
			return "", apierr.New("Resource.AlreadyAssociated", "resource %s is already associated with associate-id %s", e.ID, e.AssociationID)
		}
		// The interface must still have the address when this lands.
		ops := []store.Op{{Key: eni.Key(sc, eniID), ModRev: nrev, Check: true}}
		if e.InstanceID != "" { // leaving an instance's primary address
			prev, err := s.detachEIP(ctx, account, e.InstanceID)
			if err != nil {
				return "", err
			}
			ops = append(ops, prev...)
		}
		all, err := s.Addresses(ctx, account)
		if err != nil {
			return "", err
		}
		for _, o := range all { // the address's Elastic IP before this one comes off
			if o.ID != e.ID && o.NetworkInterfaceID == eniID && o.PrivateIP == privateIP {
				orev, err := s.Store.Get(ctx, s.eipKey(account, o.ID), &o)
				if err != nil {
					return "", err
				}
				o.Disassociate()
				ops = append(ops, store.Op{Key: s.eipKey(account, o.ID), Value: o, ModRev: orev})
			}
		}
		e.Disassociate()
		e.AssociationID, e.NetworkInterfaceID, e.PrivateIP = resource.NewID(resource.AddressAssoc), eniID, privateIP
		ops = append(ops, store.Op{Key: s.eipKey(account, e.ID), Value: e, ModRev: erev})
		if err := s.Store.Apply(ctx, ops...); errors.Is(err, store.ErrConflict) {
			continue
		} else if err != nil {
			return "", err
		}
		return e.AssociationID, nil
	}
	return "", apierr.New("RequestLimitExceeded", "Too many concurrent changes to %s; retry.", allocID)
}
