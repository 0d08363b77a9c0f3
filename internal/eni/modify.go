package eni

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"nubo/internal/apierr"
	"nubo/internal/resource"
	"nubo/internal/store"
	"nubo/internal/vpc"
)

// ModifySpec is a ModifyNetworkInterfaceAttribute request: one attribute.
type ModifySpec struct {
	Groups          []string
	Description     *string
	SourceDestCheck *bool
	// AttachmentID with DeleteOnTermination changes an attachment's flag.
	AttachmentID        string
	DeleteOnTermination *bool
}

// Modify changes an interface's attribute. New groups of a primary
// interface are also its instance's (the instance record keeps them for
// the firewall), written in the same transaction.
func (s *Service) Modify(ctx context.Context, sc resource.Scope, id string, spec ModifySpec) error {
	for attempt := 0; attempt < maxAttempts; attempt++ {
		n, rev, err := s.get(ctx, sc, id)
		if err != nil {
			return err
		}
		var ops []store.Op
		switch {
		case spec.Groups != nil:
			groups, checks, err := s.Groups(ctx, sc.Account, n.VPCID, spec.Groups)
			if err != nil {
				return err
			}
			n.Groups, ops = groups, checks
			if a := n.Attachment; a != nil && a.DeviceIndex == 0 {
				op, err := s.instanceGroups(ctx, sc, a.InstanceID, groups)
				if err != nil {
					return err
				}
				ops = append(ops, op)
			}
		case spec.Description != nil:
			n.Description = *spec.Description
		case spec.SourceDestCheck != nil:
			n.SourceDestCheck = *spec.SourceDestCheck
		case spec.DeleteOnTermination != nil:
			if n.Attachment == nil || n.Attachment.ID != spec.AttachmentID {
				return apierr.New("InvalidAttachmentID.NotFound", "The attachment ID '%s' does not exist for interface %s", spec.AttachmentID, id)
			}
			n.Attachment.DeleteOnTermination = *spec.DeleteOnTermination
		default:
			return apierr.New(apierr.MissingParameter, "One attribute must be given: SecurityGroupId, Description, SourceDestCheck or Attachment.")
		}
		err = s.Store.Apply(ctx, append(ops, store.Op{Key: Key(sc, id), Value: n, ModRev: rev})...)
		if !errors.Is(err, store.ErrConflict) {
			return err
		}
	}
	return fmt.Errorf("modifying %s: %w", id, store.ErrConflict)
}

func (s *Service) instanceGroups(ctx context.Context, sc resource.Scope, instanceID string, groups []string) (store.Op, error) {
	key := resource.Key(sc, resource.Instance, instanceID)
	var raw map[string]json.RawMessage
	rev, err := s.Store.Get(ctx, key, &raw)
	if err != nil {
		return store.Op{}, fmt.Errorf("reading instance %s: %w", instanceID, err)
	}
	return instanceGroupsOp(key, raw, rev, groups)
}

// SetPrimaryGroups is ModifyInstanceAttribute GroupId's half for the
// primary interface: the op to write in the instance's transaction, or
// none for an instance whose interface is no record.
func (s *Service) SetPrimaryGroups(ctx context.Context, sc resource.Scope, id string, groups []string) ([]store.Op, error) {
	if id == "" {
		return nil, nil
	}
	n, rev, err := s.get(ctx, sc, id)
	if err != nil {
		return nil, err
	}
	n.Groups = groups
	return []store.Op{{Key: Key(sc, id), Value: n, ModRev: rev}}, nil
}

// AssignSpec is an AssignPrivateIpAddresses request.
type AssignSpec struct {
	Addresses         []string
	Count             int
	AllowReassignment bool
}

// Assign adds secondary private addresses to an interface and returns
// them. With AllowReassignment an address another interface holds as a
// secondary moves here (both records and the claim in one transaction);
// the agents then move it in the data plane.
func (s *Service) Assign(ctx context.Context, sc resource.Scope, id string, spec AssignSpec) ([]string, error) {
	if len(spec.Addresses) == 0 && spec.Count == 0 {
		return nil, apierr.New(apierr.MissingParameter, "Either PrivateIpAddress.N or SecondaryPrivateIpAddressCount must be given.")
	}
	if len(spec.Addresses) > 0 && spec.Count > 0 {
		return nil, apierr.New(apierr.InvalidParameterCombination, "PrivateIpAddress.N and SecondaryPrivateIpAddressCount cannot both be given.")
	}
	for attempt := 0; attempt < maxAttempts; attempt++ {
		n, rev, err := s.get(ctx, sc, id)
		if err != nil {
			return nil, err
		}
		limit, what := MaxIPsPerInterface, "an interface"
		if n.Attachment != nil {
			in, _, err := s.instance(ctx, sc, n.Attachment.InstanceID)
			if err != nil {
				return nil, err
			}
			_, limit = limits(in.InstanceType)
			what = "an interface of " + in.InstanceType
		}
		if total := len(n.PrivateIPs) + len(spec.Addresses) + spec.Count; total > limit {
			return nil, ipLimit(total, limit, what)
		}
		sn, err := s.VPCs.GetSubnet(ctx, sc.Account, n.SubnetID)
		if err != nil {
			return nil, err
		}
		var claims []vpc.Claim
		var ops []store.Op
		var added []string
		for _, a := range spec.Addresses {
			ip, err := netip.ParseAddr(a)
			if err != nil || !ip.Is4() {
				return nil, apierr.InvalidValue("PrivateIpAddress", a, "It is not an IPv4 address.")
			}
			if n.Has(ip.String()) || slices.Contains(added, ip.String()) {
				continue
			}
			moved, err := s.takeOver(ctx, sc, n, ip, spec.AllowReassignment)
			if err != nil {
				return nil, err
			}
			if moved != nil {
				ops = append(ops, moved...)
			} else {
				claims = append(claims, vpc.Claim{Holder: n.ID, Want: ip.String()})
			}
			added = append(added, ip.String())
		}
		for range spec.Count {
			claims = append(claims, vpc.Claim{Holder: n.ID})
		}
		if len(claims) > 0 {
			ips, claimOps, err := s.VPCs.ClaimPrivate(ctx, sc.Account, sn, claims, nil)
			if err != nil {
				return nil, err
			}
			ops = append(ops, claimOps...)
			for i, c := range claims {
				if c.Want == "" {
					added = append(added, ips[i].String())
				}
			}
		}
		for _, a := range added {
			n.PrivateIPs = append(n.PrivateIPs, PrivateIP{Address: a})
		}
		err = s.Store.Apply(ctx, append(ops, store.Op{Key: Key(sc, id), Value: n, ModRev: rev})...)
		if err == nil {
			return added, nil
		}
		if !errors.Is(err, store.ErrConflict) {
			return nil, err
		}
	}
	return nil, fmt.Errorf("assigning addresses to %s: %w", id, store.ErrConflict)
}

// takeOver returns the writes that move ip to n when another interface
// holds it as a secondary address and reassignment is allowed; nil when
// nobody holds it (a plain claim then).
func (s *Service) takeOver(ctx context.Context, sc resource.Scope, n Interface, ip netip.Addr, allow bool) ([]store.Op, error) {
	key := vpc.PrivateKey(sc.Account, sc.Region, n.VPCID, ip)
	var claim vpc.Address
	crev, err := s.Store.GetRev(ctx, key, &claim)
	if err != nil || crev == 0 {
		return nil, err
	}
	inUse := apierr.New("InvalidIPAddress.InUse", "Address %s is in use (by %s); AllowReassignment moves a secondary address of another interface.", ip, claim.Holder)
	if !allow || !resource.ValidID(Kind, claim.Holder) {
		return nil, inUse
	}
	other, orev, err := s.get(ctx, sc, claim.Holder)
	if err != nil {
		return nil, inUse
	}
	if other.PrimaryIP() == ip.String() {
		return nil, apierr.New(apierr.InvalidParameterValue, "Address %s is the primary address of %s and cannot be reassigned.", ip, other.ID)
	}
	if other.SubnetID != n.SubnetID {
		return nil, apierr.New(apierr.InvalidParameterValue, "Address %s of %s does not fall within the address range of %s's subnet %s.", ip, other.ID, n.ID, n.SubnetID)
	}
	other.PrivateIPs = slices.DeleteFunc(other.PrivateIPs, func(p PrivateIP) bool { return p.Address == ip.String() })
	claim.Holder, claim.SubnetID = n.ID, n.SubnetID
	// Its Elastic IP comes along.
	eips, err := s.eipOps(ctx, sc, other.ID, func(a string) bool { return a == ip.String() }, n.ID)
	if err != nil {
		return nil, err
	}
	return append(eips,
		store.Op{Key: Key(sc, other.ID), Value: other, ModRev: orev},
		store.Op{Key: key, Value: claim, ModRev: crev}), nil
}

// Unassign removes secondary private addresses from an interface and frees them.
func (s *Service) Unassign(ctx context.Context, sc resource.Scope, id string, addresses []string) error {
	if len(addresses) == 0 {
		return apierr.Missing("PrivateIpAddress.1")
	}
	for attempt := 0; attempt < maxAttempts; attempt++ {
		n, rev, err := s.get(ctx, sc, id)
		if err != nil {
			return err
		}
		var ops []store.Op
		for _, a := range addresses {
			ip, err := netip.ParseAddr(a)
			switch {
			case err != nil || !n.Has(ip.String()):
				return apierr.New(apierr.InvalidParameterValue, "Some of the specified addresses are not assigned to interface %s: %s", id, a)
			case n.PrimaryIP() == ip.String():
				return apierr.New(apierr.InvalidParameterValue, "Primary addresses cannot be unassigned (%s of %s).", a, id)
			}
			n.PrivateIPs = slices.DeleteFunc(n.PrivateIPs, func(p PrivateIP) bool { return p.Address == ip.String() })
			key := vpc.PrivateKey(sc.Account, sc.Region, n.VPCID, ip)
			var claim vpc.Address
			if crev, err := s.Store.GetRev(ctx, key, &claim); err != nil {
				return err
			} else if crev != 0 && claim.Holder == n.ID {
				ops = append(ops, store.Op{Key: key, ModRev: crev, Delete: true})
			}
		}
		eips, err := s.eipOps(ctx, sc, id, func(ip string) bool { return !n.Has(ip) }, "")
		if err != nil {
			return err
		}
		ops = append(ops, eips...)
		err = s.Store.Apply(ctx, append(ops, store.Op{Key: Key(sc, id), Value: n, ModRev: rev})...)
		if !errors.Is(err, store.ErrConflict) {
			return err
		}
	}
	return fmt.Errorf("unassigning addresses of %s: %w", id, store.ErrConflict)
}
