package snapshot

import (
	"context"
	"errors"
	"slices"

	"nubo/internal/apierr"
	"nubo/internal/resource"
	"nubo/internal/store"
)

// CheckPermission validates a createVolumePermission: a 12-digit account
// ID, or the group "all".
func CheckPermission(p Permission) error {
	switch {
	case p.UserID != "" && p.Group != "":
		return apierr.New(apierr.InvalidParameterCombination, "A createVolumePermission names a user or a group, not both.")
	case p.Group != "" && p.Group != "all":
		return apierr.InvalidValue("Group", p.Group, "The only group is 'all'.")
	case p.Group == "" && !validAccount(p.UserID):
		return apierr.InvalidValue("UserId", p.UserID, "An account ID is 12 digits.")
	}
	return nil
}

func validAccount(id string) bool {
	if len(id) != 12 {
		return false
	}
	for _, c := range id {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// ModifyPermissions adds and removes createVolumePermissions. As in EC2,
// encrypted snapshots are never public, and those encrypted under the AWS
// managed key (alias/aws/ebs) are not shared at all.
//
// nubo records the permissions and shows them; another account cannot
// find the snapshot yet (its records stay in the owner's scope).
func (s *Service) ModifyPermissions(ctx context.Context, sc resource.Scope, id string, add, remove []Permission) error {
	if err := CheckID(id); err != nil {
		return err
	}
	for _, p := range append(slices.Clone(add), remove...) {
		if err := CheckPermission(p); err != nil {
			return err
		}
	}
	x, _, err := s.get(ctx, sc, id)
	if err != nil {
		return err
	}
	if x.Encrypted && len(add) > 0 {
		if slices.ContainsFunc(add, func(p Permission) bool { return p.Group == "all" }) {
			return apierr.New(codeNotPermitted, "Encrypted snapshots cannot be made public (snapshot %s).", id)
		}
		if def, err := s.KMS.DefaultKey(ctx, sc); err != nil {
			return err
		} else if x.KmsKeyID == def {
			return apierr.New(codeNotPermitted, "Encrypted snapshots with EBS default key cannot be shared (snapshot %s): copy it under a customer managed key first.", id)
		}
	}
	return s.setPermissions(ctx, sc, id, func(ps []Permission) []Permission {
		for _, p := range add {
			if !slices.Contains(ps, p) {
				ps = append(ps, p)
			}
		}
		return slices.DeleteFunc(ps, func(p Permission) bool { return slices.Contains(remove, p) })
	})
}

// ResetPermissions removes every createVolumePermission.
func (s *Service) ResetPermissions(ctx context.Context, sc resource.Scope, id string) error {
	if err := CheckID(id); err != nil {
		return err
	}
	return s.setPermissions(ctx, sc, id, func([]Permission) []Permission { return nil })
}

func (s *Service) setPermissions(ctx context.Context, sc resource.Scope, id string, change func([]Permission) []Permission) error {
	_, err := store.Update(ctx, s.Store, Key(sc, id), func(x *Snapshot) error {
		if x.State == Deleting {
			return notFound(id)
		}
		x.CreateVolumePermissions = change(x.CreateVolumePermissions)
		return nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return notFound(id)
	}
	return err
}
