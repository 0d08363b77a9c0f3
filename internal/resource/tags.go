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

// Tagger changes the tags of any stored resource.
type Tagger struct{ Store *store.Store }

// lookup resolves ids to their record keys, failing on the first one that is
// malformed or does not exist in scope.
func (tg Tagger) lookup(ctx context.Context, s Scope, ids []string) ([]string, error) {
	keys := make([]string, len(ids))
	for i, id := range ids {
		k, ok := KindOf(id)
		if !ok || !ValidID(k, id) {
			return nil, apierr.New(apierr.InvalidID, "The ID '%s' is not valid", id)
		}
		keys[i] = Key(s, k, id)
		var m Meta
		if _, err := tg.Store.Get(ctx, keys[i], &m); errors.Is(err, store.ErrNotFound) {
			return nil, apierr.New(k.NotFoundCode, "The %s ID '%s' does not exist", k.Name, id)
		} else if err != nil {
			return nil, err
		}
	}
	return keys, nil
}

// patchTags rewrites only the "tags" member of a record, leaving the rest as stored.
func (tg Tagger) patchTags(ctx context.Context, key, id string, change func(map[string]string) (map[string]string, error)) error {
	_, err := store.Update(ctx, tg.Store, key, func(rec *map[string]json.RawMessage) error {
		tags := map[string]string{}
		if raw, ok := (*rec)["tags"]; ok {
			if err := json.Unmarshal(raw, &tags); err != nil {
				return fmt.Errorf("decoding tags of %s: %w", id, err)
			}
		}
		tags, err := change(tags)
		if err != nil {
			return err
		}
		if len(tags) == 0 {
			delete(*rec, "tags")
			return nil
		}
		raw, err := json.Marshal(tags)
		(*rec)["tags"] = raw
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		k, _ := KindOf(id)
		return apierr.New(k.NotFoundCode, "The %s ID '%s' does not exist", k.Name, id)
	}
	return err
}

// Create adds or overwrites tags on every resource in ids.
func (tg Tagger) Create(ctx context.Context, s Scope, ids []string, tags []Tag) error {
	keys, err := tg.lookup(ctx, s, ids)
	if err != nil {
		return err
	}
	for i, key := range keys {
		id := ids[i]
		if err := tg.patchTags(ctx, key, id, func(set map[string]string) (map[string]string, error) {
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
	keys, err := tg.lookup(ctx, s, ids)
	if err != nil {
		return err
	}
	for i, key := range keys {
		if err := tg.patchTags(ctx, key, ids[i], func(set map[string]string) (map[string]string, error) {
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
			return fmt.Errorf("untagging %s: %w", ids[i], err)
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
	for _, kv := range kvs {
		var m Meta
		if err := json.Unmarshal(kv.Value, &m); err != nil {
			return nil, fmt.Errorf("decoding %s: %w", kv.Key, err)
		}
		k, _ := KindOf(m.ID)
		for key, val := range m.Tags {
			out = append(out, TagDescription{ResourceID: m.ID, ResourceType: k.Name, Key: key, Value: val})
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
