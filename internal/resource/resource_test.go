package resource

import (
	"regexp"
	"strings"
	"testing"

	"nubo/internal/apierr"
)

func TestIDs(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		id := NewID(KeyPair)
		if !regexp.MustCompile(`^key-[0-9a-f]{17}$`).MatchString(id) || !ValidID(KeyPair, id) || seen[id] {
			t.Fatalf("bad or repeated id %q", id)
		}
		seen[id] = true
		if k, ok := KindOf(id); !ok || k != KeyPair {
			t.Fatalf("KindOf(%s) = %+v", id, k)
		}
	}
	for _, id := range []string{"key-", "key-0123456789ABCDEF0", "key-0123456789abcdef", "i-0123456789abcdef0", "key-0123456g", "key0123456789abcdef0"} {
		if ValidID(KeyPair, id) {
			t.Errorf("%q accepted", id)
		}
	}
	if !ValidID(KeyPair, "key-0123abcd") { // AWS's short form
		t.Error("8-digit id rejected")
	}
	if _, ok := KindOf("nope"); ok {
		t.Error("KindOf of an unprefixed id")
	}
}

func TestValidateTags(t *testing.T) {
	ok := []Tag{{Key: "Name", Value: "web"}, {Key: "empty-value"}, {Key: strings.Repeat("k", 128), Value: strings.Repeat("v", 256)}, {Key: "ünï", Value: "çödé"}}
	if err := ValidateTags("Tag", ok); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []Tag{{Key: ""}, {Key: strings.Repeat("k", 129)}, {Key: "k", Value: strings.Repeat("v", 257)}, {Key: "aws:reserved"}, {Key: "AWS:Reserved"}} {
		err := ValidateTags("Tag", []Tag{bad})
		if e, isAPI := apierr.As(err); !isAPI || e.Code != apierr.InvalidParameterValue {
			t.Errorf("%+v: %v", bad, err)
		}
	}
}

func TestMergeLimit(t *testing.T) {
	set := map[string]string{}
	var tags []Tag
	for i := 0; i < MaxTags; i++ {
		tags = append(tags, Tag{Key: string(rune('A'+i%26)) + strings.Repeat("x", i/26), Value: "v"})
	}
	set, err := Merge("key-1", set, tags)
	if err != nil || len(set) != MaxTags {
		t.Fatalf("%d tags: %v", len(set), err)
	}
	// Overwriting an existing key stays within the limit.
	if _, err := Merge("key-1", set, []Tag{{Key: "A", Value: "w"}}); err != nil {
		t.Fatal(err)
	}
	_, err = Merge("key-1", set, []Tag{{Key: "one-more"}})
	if e, ok := apierr.As(err); !ok || e.Code != apierr.TagLimitExceeded {
		t.Fatalf("51st tag: %v", err)
	}
}
