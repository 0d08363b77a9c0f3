package resource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"

	"nubo/internal/apierr"
	"nubo/internal/store"
)

// MaxTags is EC2's limit of user tags per resource.
const MaxTags = 50

// Tag is one key/value pair as a request spells it.
type Tag struct {
	Key   string
	Value string
	// HasValue distinguishes an absent value from an empty one (DeleteTags).
	HasValue bool
}

// ValidateTags checks keys and values against EC2's rules; param names the
// request parameter the tags came from, for the error message.
func ValidateTags(param string, tags []Tag) error {
	for _, t := range tags {
		switch {
		case t.Key == "":
			return apierr.New(apierr.InvalidParameterValue, "Tag key in %s must not be empty.", param)
		case utf8.RuneCountInString(t.Key) > 128:
			return apierr.New(apierr.InvalidParameterValue, "Tag key exceeds the maximum length of 128 characters: %q.", t.Key)
		case utf8.RuneCountInString(t.Value) > 256:
			return apierr.New(apierr.InvalidParameterValue, "Tag value exceeds the maximum length of 256 characters (key %q).", t.Key)
		case strings.HasPrefix(strings.ToLower(t.Key), "aws:"):
			return apierr.New(apierr.InvalidParameterValue, "Tag keys starting with 'aws:' are reserved for internal use (%s).", t.Key)
		}
	}
	return nil
}

// Merge adds tags to set (nil allowed) and enforces the per-resource limit.
func Merge(id string, set map[string]string, tags []Tag) (map[string]string, error) {
	if set == nil {
		set = map[string]string{}
	}
	for _, t := range tags {
		set[t.Key] = t.Value
	}
	if len(set) > MaxTags {
		return nil, apierr.New(apierr.TagLimitExceeded, "The maximum number of tags (%d) for resource %s has been exceeded.", MaxTags, id)
	}
	return set, nil
}

// Tagger changes the tags of any stored resource. Most records carry their
// own "tags"; a security group rule is an element of its group's "rules",
// found through the rule's index entry (its group's ID).
type Tagger struct{ Store *store.Store }

// target is where one resource's tags live: a record, and in it the
// element of "rules" with the resource's ID when member is set.
type target struct {
	key, id string
	member  bool
}

func notFound(id string) error {
	k, _ := KindOf(id)
	return apierr.New(k.NotFoundCode, "The %s ID '%s' does not exist", k.Name, id)
}

// lookup resolves ids to where their tags live, failing on the first one
// that is malformed or does not exist in scope.
func (tg Tagger) lookup(ctx context.Context, s Scope, ids []string) ([]target, error) {
	ts := make([]target, len(ids))
	for i, id := range ids {
		k, ok := KindOf(id)
		if !ok || !ValidID(k, id) {
			return nil, apierr.New(apierr.InvalidID, "The ID '%s' is not valid", id)
		}
		ts[i] = target{key: Key(s, k, id), id: id}
		if k == SecurityGroupRule {
			var group string
			if _, err := tg.Store.Get(ctx, NameKey(s, k, id), &group); errors.Is(err, store.ErrNotFound) {
				return nil, notFound(id)
			} else if err != nil {
				return nil, err
			}
			ts[i] = target{key: Key(s, SecurityGroup, group), id: id, member: true}
		}
		var rec map[string]json.RawMessage
		if _, err := tg.Store.Get(ctx, ts[i].key, &rec); errors.Is(err, store.ErrNotFound) {
			return nil, notFound(id)
		} else if err != nil {
			return nil, err
		}
		if ts[i].member {
			if err := patchMember(rec, id, func(t map[string]string) (map[string]string, error) { return t, nil }); err != nil {
				return nil, err
			}
		}
	}
	return ts, nil
}

type tagChange = func(map[string]string) (map[string]string, error)

// patchTags rewrites only the "tags" member of a record (or of one of its
// rules), leaving the rest as stored.
func (tg Tagger) patchTags(ctx context.Context, t target, change tagChange) error {
	_, err := store.Update(ctx, tg.Store, t.key, func(rec *map[string]json.RawMessage) error {
		if t.member {
			return patchMember(*rec, t.id, change)
		}
		return patchObject(*rec, t.id, change)
	})
	if errors.Is(err, store.ErrNotFound) {
		return notFound(t.id)
	}
	return err
}

// patchObject applies change to the "tags" member of one JSON object.
func patchObject(obj map[string]json.RawMessage, id string, change tagChange) error {
	tags := map[string]string{}
	if raw, ok := obj["tags"]; ok {
		if err := json.Unmarshal(raw, &tags); err != nil {
			return fmt.Errorf("decoding tags of %s: %w", id, err)
		}
	}
	tags, err := change(tags)
	if err != nil {
		return err
	}
	if len(tags) == 0 {
		delete(obj, "tags")
		return nil
	}
	raw, err := json.Marshal(tags)
	obj["tags"] = raw
	return err
}

// patchMember applies change to the tags of the element of rec's "rules"
// whose "id" is id.
func patchMember(rec map[string]json.RawMessage, id string, change tagChange) error {
	var rules []map[string]json.RawMessage
	if raw, ok := rec["rules"]; ok {
		if err := json.Unmarshal(raw, &rules); err != nil {
			return fmt.Errorf("decoding the rules holding %s: %w", id, err)
		}
	}
	for _, r := range rules {
		var rid string
		if err := json.Unmarshal(r["id"], &rid); err != nil || rid != id {
			continue
		}
		if err := patchObject(r, id, change); err != nil {
			return err
		}
		raw, err := json.Marshal(rules)
		rec["rules"] = raw
		return err
	}
	return notFound(id)
}

// Create adds or overwrites tags on every resource in ids.
func (tg Tagger) Create(ctx context.Context, s Scope, ids []string, tags []Tag) error {
	ts, err := tg.lookup(ctx, s, ids)
	if err != nil {
		return err
	}
	for _, t := range ts {
		id := t.id
		if err := tg.patchTags(ctx, t, func(set map[string]string) (map[string]string, error) {
			return Merge(id, set, tags)
		}); err != nil {
			return fmt.Errorf("tagging %s: %w", id, err)
		}
	}
	return nil
}

// Delete removes tags from every resource in ids: a tag given with a value is
// removed only if the value matches; no tags at all removes every tag.
func (tg Tagger) Delete(ctx context.Context, s Scope, ids []string, tags []Tag) error {
	ts, err := tg.lookup(ctx, s, ids)
	if err != nil {
		return err
	}
	for _, t := range ts {
		if err := tg.patchTags(ctx, t, func(set map[string]string) (map[string]string, error) {
			if len(tags) == 0 {
				return nil, nil
			}
			for _, t := range tags {
				if v, ok := set[t.Key]; ok && (!t.HasValue || v == t.Value) {
					delete(set, t.Key)
				}
			}
			return set, nil
		}); err != nil {
			return fmt.Errorf("untagging %s: %w", t.id, err)
		}
	}
	return nil
}

// TagDescription is one tag of one resource, as DescribeTags lists it.
type TagDescription struct {
	ResourceID   string
	ResourceType string
	Key, Value   string
}

// List returns every tag of every resource in scope, ordered by resource ID then key.
func (tg Tagger) List(ctx context.Context, s Scope) ([]TagDescription, error) {
	kvs, err := tg.Store.List(ctx, ScopePrefix(s))
	if err != nil {
		return nil, err
	}
	var out []TagDescription
	add := func(id string, tags map[string]string) {
		k, _ := KindOf(id)
		for key, val := range tags {
			out = append(out, TagDescription{ResourceID: id, ResourceType: k.Name, Key: key, Value: val})
		}
	}
	for _, kv := range kvs {
		var m struct {
			Meta
			Rules []Meta `json:"rules"` // a security group's rules, tagged one by one
		}
		if err := json.Unmarshal(kv.Value, &m); err != nil {
			return nil, fmt.Errorf("decoding %s: %w", kv.Key, err)
		}
		add(m.ID, m.Tags)
		for _, r := range m.Rules {
			add(r.ID, r.Tags)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].ResourceID != out[j].ResourceID {
			return out[i].ResourceID < out[j].ResourceID
		}
		return out[i].Key < out[j].Key
	})
	return out, nil
}
