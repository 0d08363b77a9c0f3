package vpc

import (
	"context"
	"errors"
	"fmt"
	"time"

	"nubo/internal/apierr"
	"nubo/internal/resource"
	"nubo/internal/secgroup"
	"nubo/internal/store"
)

// Every VPC has a default security group, made and deleted in the same
// transaction as the VPC. Package secgroup owns the groups' API; the reads
// here are what VPCs and instances need of them.

// defaultGroupOps writes a new VPC's default security group with its name
// and rule index entries, none of which may exist yet.
func (s *Service) defaultGroupOps(account, vpcID string, now time.Time) []store.Op {
	return secgroup.CreateOps(s.scope(account), secgroup.NewDefault(vpcID, account, now))
}

// groupDeleteOps delete a group, as read at revision rev, with its index
// entries.
func (s *Service) groupDeleteOps(account string, g secgroup.Group, rev int64) []store.Op {
	ops := secgroup.DeleteOps(s.scope(account), g)
	ops[0].ModRev = rev // the record: a rule added meanwhile would leave its index entry
	return ops
}

// SecurityGroup reads one security group and its mod revision.
func (s *Service) SecurityGroup(ctx context.Context, account, id string) (secgroup.Group, int64, error) {
	var g secgroup.Group
	if !resource.ValidID(secgroup.Kind, id) {
		return g, 0, apierr.New("InvalidGroupId.Malformed", "Invalid id: \"%s\" (expecting \"sg-...\")", id)
	}
	rev, err := s.Store.Get(ctx, s.key(account, secgroup.Kind, id), &g)
	if errors.Is(err, store.ErrNotFound) {
		return g, 0, apierr.New(secgroup.Kind.NotFoundCode, "The security group '%s' does not exist", id)
	}
	return g, rev, err
}

// SecurityGroupByName reads the group called name in a VPC, or returns
// store.ErrNotFound.
func (s *Service) SecurityGroupByName(ctx context.Context, account, vpcID, name string) (secgroup.Group, int64, error) {
	var id string
	if _, err := s.Store.Get(ctx, secgroup.NameKey(s.scope(account), vpcID, name), &id); err != nil {
		return secgroup.Group{}, 0, err
	}
	var g secgroup.Group
	rev, err := s.Store.Get(ctx, s.key(account, secgroup.Kind, id), &g)
	return g, rev, err
}

// DefaultSecurityGroup reads a VPC's default group. A VPC made before nubo
// had security groups gets its default group now.
func (s *Service) DefaultSecurityGroup(ctx context.Context, account, vpcID string) (secgroup.Group, int64, error) {
	for attempt := 0; attempt < 5; attempt++ {
		g, rev, err := s.SecurityGroupByName(ctx, account, vpcID, secgroup.DefaultName)
		if !errors.Is(err, store.ErrNotFound) {
			return g, rev, err
		}
		_, vrev, err := get[VPC](ctx, s, account, resource.VPC, vpcID)
		if err != nil {
			return secgroup.Group{}, 0, err
		}
		ops := append([]store.Op{{Key: s.key(account, resource.VPC, vpcID), ModRev: vrev, Check: true}},
			s.defaultGroupOps(account, vpcID, s.now())...)
		if err := s.Store.Apply(ctx, ops...); err != nil && !errors.Is(err, store.ErrConflict) {
			return secgroup.Group{}, 0, err
		} // made, or made by a racing request, or the VPC changed: read again
	}
	return secgroup.Group{}, 0, fmt.Errorf("making the default security group of %s: %w", vpcID, store.ErrConflict)
}

// SecurityGroups lists the account's security groups, ordered by ID.
func (s *Service) SecurityGroups(ctx context.Context, account string) ([]secgroup.Group, error) {
	return list[secgroup.Group](ctx, s, account, secgroup.Kind)
}
