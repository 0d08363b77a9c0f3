package secgroup

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"nubo/internal/apierr"
	"nubo/internal/resource"
	"nubo/internal/store"
)

// errUnchanged: a mutation found nothing to write.
var errUnchanged = errors.New("unchanged")

// change reads group id, lets mutate change it and return the other writes
// of the same transaction (rule index entries, checks on referenced
// groups), and writes them all at once if the group did not change
// meanwhile; otherwise it starts again from a fresh read.
func (s *Service) change(ctx context.Context, sc resource.Scope, id string, mutate func(g *Group) ([]store.Op, error)) error {
	for attempt := 0; attempt < maxAttempts; attempt++ {
		g, rev, err := s.get(ctx, sc, id)
		if err != nil {
			return err
		}
		extra, err := mutate(&g)
		if errors.Is(err, errUnchanged) {
			return nil
		} else if err != nil {
			return err
		}
		ops := append([]store.Op{{Key: resource.Key(sc, Kind, id), Value: g, ModRev: rev}}, extra...)
		if err := s.Store.Apply(ctx, ops...); err == nil {
			return nil
		} else if !errors.Is(err, store.ErrConflict) {
			return fmt.Errorf("updating security group %s: %w", id, err)
		}
	}
	return fmt.Errorf("updating security group %s: %w", id, store.ErrConflict)
}

func ruleNotFound(id string) error {
	if !resource.ValidID(RuleKind, id) {
		return apierr.New("InvalidSecurityGroupRuleId.Malformed", "Invalid id: \"%s\" (expecting \"sgr-...\")", id)
	}
	return apierr.New(RuleKind.NotFoundCode, "The security group rule ID '%s' does not exist", id)
}

// peerGroup resolves a referenced group for a rule of target: it must be
// the account's and in target's VPC. The check keeps it from being deleted
// before the rule is written.
func (s *Service) peerGroup(ctx context.Context, sc resource.Scope, target Group, id, name, userID string) (string, []store.Op, error) {
	if userID != "" && userID != sc.Account {
		return "", nil, apierr.New(Kind.NotFoundCode, "The security group '%s%s' of account %s does not exist: only the account's own groups can be referenced.", id, name, userID)
	}
	if id == "" {
		var err error
		if id, err = s.Resolve(ctx, sc, GroupRef{Name: name}); err != nil {
			return "", nil, err
		}
	}
	if id == target.ID {
		return id, nil, nil
	}
	g, rev, err := s.get(ctx, sc, id)
	if err != nil {
		return "", nil, err
	}
	if g.VPCID != target.VPCID {
		return "", nil, apierr.New(Kind.NotFoundCode, "You have specified two resources that belong to different networks.")
	}
	return id, []store.Op{{Key: resource.Key(sc, Kind, id), ModRev: rev, Check: true}}, nil
}

// expand turns permissions into rules of target (without IDs), resolving
// referenced groups.
func (s *Service) expand(ctx context.Context, sc resource.Scope, target Group, egress bool, perms []Permission) ([]Rule, []store.Op, error) {
	var rules []Rule
	var checks []store.Op
	for _, p := range perms {
		rs, err := p.cidrRules(egress)
		if err != nil {
			return nil, nil, err
		}
		rules = append(rules, rs...)
		t, _ := p.template() // checked by cidrRules
		t.Egress = egress
		for _, gp := range p.Groups {
			if err := ValidateRuleDescription(gp.Description); err != nil {
				return nil, nil, err
			}
			id, check, err := s.peerGroup(ctx, sc, target, gp.GroupID, gp.GroupName, gp.UserID)
			if err != nil {
				return nil, nil, err
			}
			r := t
			r.GroupID, r.GroupOwner, r.Description = id, sc.Account, gp.Description
			rules = append(rules, r)
			checks = append(checks, check...)
		}
	}
	return rules, checks, nil
}

func indexSame(rules []Rule, r Rule) int {
	return slices.IndexFunc(rules, func(o Rule) bool { return o.Same(r) })
}

func indexID(rules []Rule, id string, egress bool) int {
	return slices.IndexFunc(rules, func(o Rule) bool { return o.ID == id && o.Egress == egress })
}

// Authorize adds a rule per peer of perms to the group and returns them.
func (s *Service) Authorize(ctx context.Context, sc resource.Scope, ref GroupRef, egress bool, perms []Permission, tags []resource.Tag) ([]Rule, error) {
	if err := Validate(perms); err != nil {
		return nil, err
	}
	set, err := resource.Merge("", nil, tags)
	if err != nil {
		return nil, err
	}
	id, err := s.Resolve(ctx, sc, ref)
	if err != nil {
		return nil, err
	}
	var added []Rule
	err = s.change(ctx, sc, id, func(g *Group) ([]store.Op, error) {
		rules, ops, err := s.expand(ctx, sc, *g, egress, perms)
		if err != nil {
			return nil, err
		}
		added = nil
		for _, r := range rules {
			if indexSame(g.Rules, r) >= 0 || indexSame(added, r) >= 0 {
				return nil, duplicate(r)
			}
			r.ID = resource.NewID(RuleKind)
			if len(set) > 0 {
				r.Tags = maps.Clone(set)
			}
			added = append(added, r)
			ops = append(ops, store.Op{Key: RuleKey(sc, r.ID), Value: g.ID})
		}
		g.Rules = append(g.Rules, added...)
		return ops, checkLimits(g.Rules)
	})
	if err != nil {
		return nil, err
	}
	return added, nil
}

// Revoke removes rules given by ID or by their values. Values that match
// no rule are returned as unknown in the default VPC, as EC2 does; in any
// other VPC they are an error and nothing is revoked.
func (s *Service) Revoke(ctx context.Context, sc resource.Scope, ref GroupRef, egress bool, perms []Permission, ruleIDs []string) (revoked, unknown []Rule, err error) {
	if len(perms) == 0 && len(ruleIDs) == 0 {
		return nil, nil, apierr.New(apierr.MissingParameter, "The request must contain the parameter IpPermissions or SecurityGroupRuleId")
	}
	if len(perms) > 0 {
		if err := Validate(perms); err != nil {
			return nil, nil, err
		}
	}
	id, err := s.Resolve(ctx, sc, ref)
	if err != nil {
		return nil, nil, err
	}
	err = s.change(ctx, sc, id, func(g *Group) ([]store.Op, error) {
		revoked, unknown = nil, nil
		rules, _, err := s.expand(ctx, sc, *g, egress, perms)
		if err != nil {
			return nil, err
		}
		for _, rid := range ruleIDs {
			i := indexID(g.Rules, rid, egress)
			if i < 0 {
				return nil, ruleNotFound(rid)
			}
			revoked = append(revoked, g.Rules[i])
			g.Rules = slices.Delete(g.Rules, i, i+1)
		}
		for _, r := range rules {
			i := indexSame(g.Rules, r)
			if i < 0 {
				unknown = append(unknown, r)
				continue
			}
			revoked = append(revoked, g.Rules[i])
			g.Rules = slices.Delete(g.Rules, i, i+1)
		}
		if len(unknown) > 0 {
			v, _, err := s.readVPC(ctx, sc, g.VPCID)
			if _, ok := apierr.As(err); err != nil && !ok {
				return nil, err
			}
			if !v.IsDefault {
				return nil, apierr.New("InvalidPermission.NotFound", "The specified rule does not exist in this security group.")
			}
		}
		if len(revoked) == 0 {
			return nil, errUnchanged
		}
		var ops []store.Op
		for _, r := range revoked {
			ops = append(ops, store.Op{Key: RuleKey(sc, r.ID), ModRev: -1, Delete: true})
		}
		return ops, nil
	})
	if err != nil {
		return nil, nil, err
	}
	return revoked, unknown, nil
}

// Modify replaces rules in place: each keeps its ID, direction and tags.
func (s *Service) Modify(ctx context.Context, sc resource.Scope, groupID string, updates []RuleUpdate) error {
	if err := ValidateSpecs(updates); err != nil {
		return err
	}
	if err := checkID(groupID); err != nil {
		return err
	}
	return s.change(ctx, sc, groupID, func(g *Group) ([]store.Op, error) {
		var ops []store.Op
		for _, u := range updates {
			i := slices.IndexFunc(g.Rules, func(r Rule) bool { return r.ID == u.RuleID })
			if i < 0 {
				return nil, ruleNotFound(u.RuleID)
			}
			r, _ := specRule(u.Rule) // checked by ValidateSpecs
			old := g.Rules[i]
			r.ID, r.Egress, r.Tags = old.ID, old.Egress, old.Tags
			if r.GroupID != "" {
				id, check, err := s.peerGroup(ctx, sc, *g, r.GroupID, "", "")
				if err != nil {
					return nil, err
				}
				r.GroupID, r.GroupOwner = id, sc.Account
				ops = append(ops, check...)
			}
			g.Rules[i] = r
		}
		for i, r := range g.Rules {
			if indexSame(g.Rules[:i], r) >= 0 {
				return nil, duplicate(r)
			}
		}
		return ops, checkLimits(g.Rules)
	})
}

// UpdateDescriptions sets the descriptions of existing rules, found by
// their values (the description given with each peer) or by ID.
func (s *Service) UpdateDescriptions(ctx context.Context, sc resource.Scope, ref GroupRef, egress bool, perms []Permission, descs []RuleDescription) error {
	if len(perms) == 0 && len(descs) == 0 {
		return apierr.New(apierr.MissingParameter, "The request must contain the parameter IpPermissions or SecurityGroupRuleDescription")
	}
	if len(perms) > 0 {
		if err := Validate(perms); err != nil {
			return err
		}
	}
	for _, d := range descs {
		if d.RuleID == "" {
			return apierr.Missing("SecurityGroupRuleDescription.N.SecurityGroupRuleId")
		}
		if err := ValidateRuleDescription(d.Description); err != nil {
			return err
		}
	}
	id, err := s.Resolve(ctx, sc, ref)
	if err != nil {
		return err
	}
	return s.change(ctx, sc, id, func(g *Group) ([]store.Op, error) {
		rules, _, err := s.expand(ctx, sc, *g, egress, perms)
		if err != nil {
			return nil, err
		}
		for _, r := range rules {
			i := indexSame(g.Rules, r)
			if i < 0 {
				return nil, apierr.New("InvalidPermission.NotFound", "The specified rule %q does not exist in this security group.", r.String())
			}
			g.Rules[i].Description = r.Description
		}
		for _, d := range descs {
			i := indexID(g.Rules, d.RuleID, egress)
			if i < 0 {
				return nil, ruleNotFound(d.RuleID)
			}
			g.Rules[i].Description = d.Description
		}
		return nil, nil
	})
}
