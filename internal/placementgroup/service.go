package placementgroup

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"nubo/internal/apierr"
	"nubo/internal/instance"
	"nubo/internal/resource"
	"nubo/internal/store"
)

// Error codes, all from the EC2 API reference's "Error codes" table.
const (
	CodeUnknown       = "InvalidPlacementGroup.Unknown"
	CodeDuplicate     = "InvalidPlacementGroup.Duplicate"
	CodeInUse         = "InvalidPlacementGroup.InUse"
	CodeMalformed     = "InvalidPlacementGroupId.Malformed"
	CodeLimitExceeded = "PlacementGroupLimitExceeded"
)

const maxAttempts = 50

// Service keeps placement group records.
type Service struct {
	Store  *store.Store
	Region string
	// InUse reports whether any instance of account is in group groupID
	// (nil: never). Delete asks it before, and again after every conflict.
	InUse func(ctx context.Context, account, groupID string) (bool, error)
	Now   func() time.Time
}

func (s *Service) scope(account string) resource.Scope {
	return resource.Scope{Account: account, Region: s.Region}
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

func unknown(nameOrID string) error {
	return apierr.New(CodeUnknown, "The Placement Group '%s' is unknown.", nameOrID)
}

// CheckID rejects a malformed group ID.
func CheckID(id string) error {
	if !resource.ValidID(Kind, id) {
		return apierr.New(CodeMalformed, "Invalid id: \"%s\" (expecting \"pg-...\")", id)
	}
	return nil
}

// Create makes a group. The count of the scope's groups and the new keys
// are checked in one transaction, so racing creates cannot pass the quota.
func (s *Service) Create(ctx context.Context, account string, spec Spec) (Group, error) {
	if err := spec.Validate(); err != nil {
		return Group{}, err
	}
	sc := s.scope(account)
	g := spec.group(sc)
	g.ID = resource.NewID(Kind)
	g.CreateTime = s.now()
	tags, err := resource.Merge(g.ID, nil, spec.Tags)
	if err != nil {
		return Group{}, err
	}
	if len(tags) > 0 {
		g.Tags = tags
	}
	prefix := resource.Prefix(sc, Kind)
	for attempt := 0; attempt < maxAttempts; attempt++ {
		count, err := s.Store.Client().Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			return Group{}, fmt.Errorf("counting placement groups: %w", err)
		}
		if count.Count >= MaxPerRegion {
			return Group{}, apierr.New(CodeLimitExceeded, "You have reached the maximum of %d placement groups per region.", MaxPerRegion)
		}
		err = s.Store.Apply(ctx,
			store.Op{Key: prefix, ModRev: count.Header.Revision, Check: true, Prefix: true},
			store.Op{Key: Key(sc, g.ID), Value: g},
			store.Op{Key: NameKey(sc, g.Name), Value: g.ID},
		)
		if !errors.Is(err, store.ErrConflict) {
			if err != nil {
				return Group{}, fmt.Errorf("storing placement group %s: %w", g.Name, err)
			}
			return g, nil
		}
		var id string
		if _, err := s.Store.Get(ctx, NameKey(sc, g.Name), &id); err == nil {
			return Group{}, apierr.New(CodeDuplicate, "The placement group '%s' already exists.", g.Name)
		} else if !errors.Is(err, store.ErrNotFound) {
			return Group{}, err
		}
		// Another group of the scope was written meanwhile: count again.
	}
	return Group{}, fmt.Errorf("storing placement group %s: %w", g.Name, store.ErrConflict)
}

// Get returns the group with ID id.
func (s *Service) Get(ctx context.Context, account, id string) (Group, error) {
	g, _, err := s.Resolve(ctx, account, "", id)
	return g, err
}

// ByName returns the group called name.
func (s *Service) ByName(ctx context.Context, account, name string) (Group, error) {
	g, _, err := s.Resolve(ctx, account, name, "")
	return g, err
}

// Resolve returns the group named by name or by id (one of them is set)
// and its record's mod revision: a caller that puts the record back under
// that revision in its own transaction serialises with every other writer.
func (s *Service) Resolve(ctx context.Context, account, name, id string) (Group, int64, error) {
	sc := s.scope(account)
	switch {
	case name != "" && id != "":
		return Group{}, 0, apierr.New(apierr.InvalidParameterCombination, "Specify a placement group by name or by ID, not both.")
	case name != "":
		if _, err := s.Store.Get(ctx, NameKey(sc, name), &id); errors.Is(err, store.ErrNotFound) {
			return Group{}, 0, unknown(name)
		} else if err != nil {
			return Group{}, 0, err
		}
	case id == "":
		return Group{}, 0, apierr.Missing("GroupName")
	default:
		if err := CheckID(id); err != nil {
			return Group{}, 0, err
		}
	}
	var g Group
	rev, err := s.Store.Get(ctx, Key(sc, id), &g)
	if errors.Is(err, store.ErrNotFound) {
		return Group{}, 0, unknown(cmp.Or(name, id))
	}
	return g, rev, err
}

// List returns the scope's groups, ordered by ID.
func (s *Service) List(ctx context.Context, account string) ([]Group, error) {
	kvs, err := s.Store.List(ctx, resource.Prefix(s.scope(account), Kind))
	if err != nil {
		return nil, err
	}
	out := make([]Group, len(kvs))
	for i, kv := range kvs {
		if err := json.Unmarshal(kv.Value, &out[i]); err != nil {
			return nil, fmt.Errorf("decoding %s: %w", kv.Key, err)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Delete removes a group no instance is in. The record's mod revision is
// checked: a launch into the group meanwhile rewrites the record, which
// sends Delete back to ask InUse again.
func (s *Service) Delete(ctx context.Context, account, name, id string) error {
	sc := s.scope(account)
	for attempt := 0; attempt < maxAttempts; attempt++ {
		g, rev, err := s.Resolve(ctx, account, name, id)
		if err != nil {
			return err
		}
		if s.InUse != nil {
			busy, err := s.InUse(ctx, account, g.ID)
			if err != nil {
				return fmt.Errorf("checking placement group %s for instances: %w", g.ID, err)
			}
			if busy {
				return apierr.New(CodeInUse, "The placement group '%s' is in use and may not be deleted.", g.Name)
			}
		}
		err = s.Store.Apply(ctx,
			store.Op{Key: Key(sc, g.ID), ModRev: rev, Delete: true},
			store.Op{Key: NameKey(sc, g.Name), ModRev: -1, Delete: true},
		)
		if !errors.Is(err, store.ErrConflict) {
			if err != nil {
				return fmt.Errorf("deleting placement group %s: %w", g.ID, err)
			}
			return nil
		}
	}
	return fmt.Errorf("deleting placement group %s%s: %w", name, id, store.ErrConflict)
}

// Lookup is Resolve as instance placement needs it: the group's rules and
// the key of its record.
func (s *Service) Lookup(ctx context.Context, account, name, id string) (instance.PlacementGroup, error) {
	g, _, err := s.Resolve(ctx, account, name, id)
	if err != nil {
		return instance.PlacementGroup{}, err
	}
	return instance.PlacementGroup{Group: g.Scheduling(), Key: Key(s.scope(account), g.ID)}, nil
}
