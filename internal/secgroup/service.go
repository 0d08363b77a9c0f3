package secgroup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"nubo/internal/apierr"
	"nubo/internal/resource"
	"nubo/internal/store"
)

// Service keeps security group records.
type Service struct {
	Store *store.Store
	// DefaultVPC returns the ID of the account's default VPC (making it on
	// first use), or an *apierr.Error with code VPCIdNotSpecified when
	// the account deleted it. A function, not package vpc, because vpc
	// imports this package for the default group.
	DefaultVPC func(ctx context.Context, account string) (string, error)
	Now        func() time.Time
	// MaxGroups is the quota of groups per region; 0 means
	// MaxGroupsPerRegion (tests lower it).
	MaxGroups int
}

// noDefaultVPC is the code DefaultVPC answers when there is none.
const noDefaultVPC = "VPCIdNotSpecified"

// maxAttempts bounds the retries of a compare-and-swap that keeps losing.
const maxAttempts = 50

// GroupRef names a group by ID, or by name in the default VPC (as EC2's
// GroupName parameters do).
type GroupRef struct{ ID, Name string }

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

func notFound(id string) error {
	return apierr.New(Kind.NotFoundCode, "The security group '%s' does not exist", id)
}

// checkID rejects a malformed group ID as EC2 does.
func checkID(id string) error {
	if !resource.ValidID(Kind, id) {
		return apierr.New("InvalidGroupId.Malformed", "Invalid id: \"%s\" (expecting \"sg-...\")", id)
	}
	return nil
}

// get reads one group and its mod revision.
func (s *Service) get(ctx context.Context, sc resource.Scope, id string) (Group, int64, error) {
	if err := checkID(id); err != nil {
		return Group{}, 0, err
	}
	var g Group
	rev, err := s.Store.Get(ctx, resource.Key(sc, Kind, id), &g)
	if errors.Is(err, store.ErrNotFound) {
		return Group{}, 0, notFound(id)
	}
	return g, rev, err
}

// Get reads one group by ID.
func (s *Service) Get(ctx context.Context, sc resource.Scope, id string) (Group, error) {
	g, _, err := s.get(ctx, sc, id)
	return g, err
}

// ByName finds a group by its name in a VPC.
func (s *Service) ByName(ctx context.Context, sc resource.Scope, vpcID, name string) (Group, error) {
	var id string
	if _, err := s.Store.Get(ctx, NameKey(sc, vpcID, name), &id); errors.Is(err, store.ErrNotFound) {
		return Group{}, apierr.New(Kind.NotFoundCode, "The security group '%s' does not exist in VPC '%s'", name, vpcID)
	} else if err != nil {
		return Group{}, err
	}
	g, _, err := s.get(ctx, sc, id)
	return g, err
}

// Resolve returns the ID of the group ref names; a name is looked up in the
// default VPC.
func (s *Service) Resolve(ctx context.Context, sc resource.Scope, ref GroupRef) (string, error) {
	if ref.ID != "" {
		if _, _, err := s.get(ctx, sc, ref.ID); err != nil {
			return "", err
		}
		return ref.ID, nil
	}
	if ref.Name == "" {
		return "", apierr.New(apierr.MissingParameter, "The request must contain the parameter groupName or groupId")
	}
	vpcID, err := s.DefaultVPC(ctx, sc.Account)
	if err != nil {
		return "", err
	}
	var id string
	if _, err := s.Store.Get(ctx, NameKey(sc, vpcID, ref.Name), &id); errors.Is(err, store.ErrNotFound) {
		return "", apierr.New(Kind.NotFoundCode, "The security group '%s' does not exist in default VPC '%s'", ref.Name, vpcID)
	} else if err != nil {
		return "", err
	}
	return id, nil
}

// Groups lists every group in scope, ordered by ID. The default VPC (and
// with it its default group) is made first if the account has none yet,
// as DescribeSecurityGroups shows it on first use.
func (s *Service) Groups(ctx context.Context, sc resource.Scope) ([]Group, error) {
	if _, err := s.DefaultVPC(ctx, sc.Account); err != nil {
		if e, ok := apierr.As(err); !ok || e.Code != noDefaultVPC {
			return nil, err
		}
	}
	all, err := listGroups(ctx, s.Store, sc)
	if err != nil {
		return nil, err
	}
	out := make([]Group, len(all))
	for i, g := range all {
		out[i] = g.Group
	}
	return out, nil
}

// vpcRecord is what this package reads of a VPC record.
type vpcRecord struct {
	ID        string `json:"id"`
	IsDefault bool   `json:"isDefault"`
}

// readVPC reads a VPC and its mod revision (for a transaction to check it
// is still there).
func (s *Service) readVPC(ctx context.Context, sc resource.Scope, id string) (vpcRecord, int64, error) {
	var v vpcRecord
	if !resource.ValidID(resource.VPC, id) {
		return v, 0, apierr.New("InvalidVpcID.Malformed", "Invalid id: \"%s\" (expecting \"vpc-...\")", id)
	}
	rev, err := s.Store.Get(ctx, resource.Key(sc, resource.VPC, id), &v)
	if errors.Is(err, store.ErrNotFound) {
		return v, 0, apierr.New(resource.VPC.NotFoundCode, "The vpc ID '%s' does not exist", id)
	}
	return v, rev, err
}

// Create makes a security group in vpcID ("" = the default VPC) with one
// rule, all traffic out.
func (s *Service) Create(ctx context.Context, sc resource.Scope, name, description, vpcID string, tags []resource.Tag) (Group, error) {
	if err := ValidateGroup(name, description); err != nil {
		return Group{}, err
	}
	set, err := resource.Merge("", nil, tags)
	if err != nil {
		return Group{}, err
	}
	if vpcID == "" {
		if vpcID, err = s.DefaultVPC(ctx, sc.Account); err != nil {
			return Group{}, err
		}
	}
	count, err := s.Store.Client().Get(ctx, resource.Prefix(sc, Kind), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return Group{}, fmt.Errorf("counting security groups: %w", err)
	}
	limit := s.MaxGroups
	if limit == 0 {
		limit = MaxGroupsPerRegion
	}
	if count.Count >= int64(limit) {
		return Group{}, apierr.New("SecurityGroupLimitExceeded", "The maximum number of security groups (%d) for the region has been reached.", limit)
	}
	for attempt := 0; attempt < maxAttempts; attempt++ {
		_, vpcRev, err := s.readVPC(ctx, sc, vpcID)
		if err != nil {
			return Group{}, err
		}
		g := Group{
			Meta: resource.Meta{ID: resource.NewID(Kind), Tags: set, CreateTime: s.now()},
			Name: name, Description: description, VPCID: vpcID, Owner: sc.Account,
			Rules: []Rule{AllEgress()},
		}
		// The VPC must still be there when the group is written.
		ops := append(CreateOps(sc, g), store.Op{Key: resource.Key(sc, resource.VPC, vpcID), ModRev: vpcRev, Check: true})
		err = s.Store.Apply(ctx, ops...)
		if err == nil {
			return g, nil
		}
		if !errors.Is(err, store.ErrConflict) {
			return Group{}, fmt.Errorf("creating security group %s: %w", name, err)
		}
		var owner string
		if _, err := s.Store.Get(ctx, NameKey(sc, vpcID, name), &owner); err == nil {
			return Group{}, apierr.New("InvalidGroup.Duplicate", "The security group '%s' already exists for VPC '%s'", name, vpcID)
		}
	}
	return Group{}, fmt.Errorf("creating security group %s: %w", name, store.ErrConflict)
}

// instanceRecord is what this package reads of an instance record.
type instanceRecord struct {
	ID             string   `json:"id"`
	State          string   `json:"state"`
	SecurityGroups []string `json:"securityGroups"`
}

// Delete removes a group that no instance uses and no other group's rule
// references; a VPC's default group goes only with its VPC.
func (s *Service) Delete(ctx context.Context, sc resource.Scope, ref GroupRef) (string, error) {
	id, err := s.Resolve(ctx, sc, ref)
	if err != nil {
		return "", err
	}
	for attempt := 0; attempt < maxAttempts; attempt++ {
		g, rev, err := s.get(ctx, sc, id)
		if err != nil {
			return "", err
		}
		if g.Name == DefaultName {
			return "", apierr.New("CannotDelete", "the specified group: \"%s\" name: \"%s\" cannot be deleted by a user", g.ID, g.Name)
		}
		inUse := apierr.New("DependencyViolation", "resource %s has a dependent object", id)
		kvs, err := s.Store.List(ctx, resource.Prefix(sc, resource.Instance))
		if err != nil {
			return "", err
		}
		var newest int64
		for _, kv := range kvs {
			var in instanceRecord
			if err := json.Unmarshal(kv.Value, &in); err != nil {
				return "", fmt.Errorf("decoding %s: %w", kv.Key, err)
			}
			if in.State != "terminated" && slices.Contains(in.SecurityGroups, id) {
				return "", inUse
			}
			newest = max(newest, kv.ModRev)
		}
		ops := DeleteOps(sc, g)
		ops[0].ModRev = rev
		// No instance may join the group meanwhile (a launch or a change
		// of groups writes its instance's record).
		ops = append(ops, store.Op{Key: resource.Prefix(sc, resource.Instance), ModRev: newest, Check: true, Prefix: true})
		others, err := listGroups(ctx, s.Store, sc)
		if err != nil {
			return "", err
		}
		for _, o := range others {
			if o.ID == id || o.VPCID != g.VPCID { // references stay within a VPC
				continue
			}
			for _, r := range o.Rules {
				if r.GroupID == id {
					return "", inUse
				}
			}
			// A rule referencing g may not appear meanwhile.
			ops = append(ops, store.Op{Key: resource.Key(sc, Kind, o.ID), ModRev: o.rev, Check: true})
		}
		err = s.Store.Apply(ctx, ops...)
		if err == nil {
			return id, nil
		}
		if !errors.Is(err, store.ErrConflict) {
			return "", fmt.Errorf("deleting security group %s: %w", id, err)
		}
	}
	return "", fmt.Errorf("deleting security group %s: %w", id, store.ErrConflict)
}
