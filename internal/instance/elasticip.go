package instance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"

	"nubo/internal/apierr"
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
func (s *Service) AssociateAddress(ctx context.Context, account, allocID, publicIP, instanceID, privateIP string, reassociate bool) (string, error) {
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
		case e.InstanceID != "" && !reassociate:
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
				old.AssociationID, old.InstanceID, old.PrivateIP = "", "", ""
				ops = append(ops, store.Op{Key: s.eipKey(account, old.ID), Value: old, ModRev: orev})
			}
		} else if ip, err := netip.ParseAddr(in.PublicIP); err == nil { // its auto-assigned address is released
			ops = append(ops, store.Op{Key: vpc.PublicKey(ip), ModRev: -1, Delete: true})
		}
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
		if e == nil || e.InstanceID == "" {
			if assocID != "" {
				return apierr.New("InvalidAssociationID.NotFound", "The association ID '%s' does not exist", assocID)
			}
			return apierr.New("InvalidAddress.NotFound", "Address '%s' is not associated.", publicIP)
		}
		erev, err := s.Store.Get(ctx, s.eipKey(account, e.ID), e)
		if err != nil {
			return err
		}
		ops, err := s.detachEIP(ctx, account, e.InstanceID)
		if err != nil {
			return err
		}
		e.AssociationID, e.InstanceID, e.PrivateIP = "", "", ""
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
	if cur.InstanceID != "" {
		return apierr.New("InvalidIPAddress.InUse", "Address %s is in use: associated with %s (%s).", cur.PublicIP, cur.InstanceID, cur.AssociationID)
	}
	err = s.Store.Apply(ctx,
		store.Op{Key: s.eipKey(account, e.ID), ModRev: rev, Delete: true},
		store.Op{Key: vpc.PublicKey(netip.MustParseAddr(cur.PublicIP)), ModRev: -1, Delete: true})
	if errors.Is(err, store.ErrConflict) {
		return apierr.New("IncorrectState", "Address %s changed while being released; retry.", cur.PublicIP)
	}
	return err
}
