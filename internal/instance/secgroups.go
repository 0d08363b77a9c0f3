package instance

import (
	"context"
	"errors"
	"fmt"

	"nubo/internal/apierr"
	"nubo/internal/resource"
	"nubo/internal/secgroup"
	"nubo/internal/store"
	"nubo/internal/vpc"
)

// groups resolves the security groups of an instance in subnet sn, as EC2
// does: the IDs given, then the names given (only in the default VPC), or
// else the VPC's default group. It returns the IDs in that order without
// duplicates, and Check ops that keep the write from landing if a group
// changed or went meanwhile.
func (s *Service) groups(ctx context.Context, account string, sn vpc.Subnet, ids, names []string) ([]string, []store.Op, error) {
	var out []string
	var checks []store.Op
	seen := map[string]bool{}
	add := func(g secgroup.Group, rev int64) {
		if !seen[g.ID] {
			seen[g.ID] = true
			out = append(out, g.ID)
			checks = append(checks, store.Op{Key: resource.Key(s.scope(account), secgroup.Kind, g.ID), ModRev: rev, Check: true})
		}
	}
	if n := max(distinct(ids), distinct(names)); n > secgroup.MaxGroupsPerENI { // before reading them all
		return nil, nil, tooManyGroups(n)
	}
	for _, id := range ids {
		g, rev, err := s.VPCs.SecurityGroup(ctx, account, id)
		if e, ok := apierr.As(err); ok && e.Code == secgroup.Kind.NotFoundCode {
			return nil, nil, apierr.New(e.Code, "The security group '%s' does not exist in VPC '%s'", id, sn.VPCID)
		} else if err != nil {
			return nil, nil, err
		}
		if g.VPCID != sn.VPCID {
			return nil, nil, apierr.New(apierr.InvalidParameter, "Security group %s and subnet %s belong to different networks.", id, sn.ID)
		}
		add(g, rev)
	}
	if len(names) > 0 {
		v, err := s.VPCs.GetVPC(ctx, account, sn.VPCID)
		if err != nil {
			return nil, nil, err
		}
		if !v.IsDefault {
			return nil, nil, apierr.New(apierr.InvalidParameterCombination, "The parameter groupName cannot be used with the parameter subnet")
		}
		for _, name := range names {
			g, rev, err := s.VPCs.SecurityGroupByName(ctx, account, v.ID, name)
			if name == secgroup.DefaultName && errors.Is(err, store.ErrNotFound) {
				g, rev, err = s.VPCs.DefaultSecurityGroup(ctx, account, v.ID)
			}
			if errors.Is(err, store.ErrNotFound) {
				return nil, nil, apierr.New(secgroup.Kind.NotFoundCode, "The security group '%s' does not exist in default VPC '%s'", name, v.ID)
			} else if err != nil {
				return nil, nil, fmt.Errorf("reading security group %s: %w", name, err)
			}
			add(g, rev)
		}
	}
	if len(out) > secgroup.MaxGroupsPerENI { // an ID and a name may be one group
		return nil, nil, tooManyGroups(len(out))
	}
	if len(out) == 0 {
		g, rev, err := s.VPCs.DefaultSecurityGroup(ctx, account, sn.VPCID)
		if err != nil {
			return nil, nil, fmt.Errorf("reading the default security group of %s: %w", sn.VPCID, err)
		}
		add(g, rev)
	}
	return out, checks, nil
}

func tooManyGroups(n int) error {
	return apierr.New("SecurityGroupsPerInstanceLimitExceeded",
		"The maximum number of security groups per instance has been reached: %d given, at most %d.", n, secgroup.MaxGroupsPerENI)
}

func distinct(xs []string) int {
	seen := map[string]bool{}
	for _, x := range xs {
		seen[x] = true
	}
	return len(seen)
}

// SetSecurityGroups replaces a running or stopped instance's security
// groups (ModifyInstanceAttribute GroupId.N), validated as at launch. The
// write is compare-and-swap on the instance and checks the groups.
func (s *Service) SetSecurityGroups(ctx context.Context, account, id string, ids []string) error {
	if len(ids) == 0 {
		return apierr.Missing("GroupId")
	}
	if _, err := s.Get(ctx, account, id); err != nil {
		return err
	}
	for attempt := 0; attempt < 20; attempt++ {
		var in Instance
		rev, err := s.Store.Get(ctx, Key(account, s.Region, id), &in)
		if err != nil {
			return fmt.Errorf("reading instance %s: %w", id, err)
		}
		if in.State == Terminated || in.State == ShuttingDown {
			return apierr.New("IncorrectInstanceState", "The instance '%s' is not in a state from which its security groups can be changed.", id)
		}
		sn, err := s.VPCs.GetSubnet(ctx, account, in.SubnetID)
		if err != nil {
			return fmt.Errorf("reading the subnet of %s: %w", id, err)
		}
		groups, checks, err := s.groups(ctx, account, sn, ids, nil)
		if err != nil {
			return err
		}
		in.SecurityGroups = groups
		primary, err := s.enis().SetPrimaryGroups(ctx, s.scope(account), in.NetworkInterfaceID, groups)
		if err != nil {
			return err
		}
		checks = append(checks, primary...)
		err = s.Store.Apply(ctx, append(checks, store.Op{Key: Key(account, s.Region, id), Value: in, ModRev: rev})...)
		if !errors.Is(err, store.ErrConflict) {
			return err
		}
	}
	return apierr.New("IncorrectState", "The instance '%s' changed while its security groups were being set; retry.", id)
}
