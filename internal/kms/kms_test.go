package kms

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"nubo/internal/resource"
	"nubo/internal/store/storetest"
)

var scope = resource.Scope{Account: "123456789012", Region: "us-east-1"}

func TestDefaultKeyIsMadeOnceAndResolves(t *testing.T) {
	s := &Service{Store: storetest.New(t)}
	ctx := context.Background()
	// Racing first uses agree on one key.
	arns := make([]string, 8)
	var wg sync.WaitGroup
	for i := range arns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, err := s.DefaultKey(ctx, scope)
			if err != nil {
				t.Error(err)
			}
			arns[i] = a
		}()
	}
	wg.Wait()
	for _, a := range arns[1:] {
		if a != arns[0] {
			t.Fatalf("default keys differ: %v", arns)
		}
	}
	arn := arns[0]
	if !strings.HasPrefix(arn, "arn:aws:kms:us-east-1:123456789012:key/") || !validUUID(strings.TrimPrefix(arn, KeyARN(scope, ""))) {
		t.Fatalf("ARN %q", arn)
	}
	id := strings.TrimPrefix(arn, KeyARN(scope, ""))
	for _, ref := range []string{id, arn, DefaultAlias, AliasARN(scope, DefaultAlias)} {
		got, err := s.Resolve(ctx, scope, ref)
		if err != nil || got != arn {
			t.Errorf("Resolve(%q) = %q, %v; want %q", ref, got, err, arn)
		}
	}
	other := resource.Scope{Account: "210987654321", Region: "us-east-1"}
	for _, ref := range []string{"", "nope", "alias/mine", "1234abcd-12ab-34cd-56ef-1234567890ab",
		"arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
		"arn:aws:kms:eu-west-1:123456789012:key/" + id, "arn:aws:kms:us-east-1:123456789012:bogus/" + id} {
		if _, err := s.Resolve(ctx, scope, ref); !errors.Is(err, ErrNotFound) {
			t.Errorf("Resolve(%q): %v, want ErrNotFound", ref, err)
		}
	}
	// Another account's key is not this one's, even by ARN.
	if _, err := s.Resolve(ctx, other, arn); !errors.Is(err, ErrNotFound) {
		t.Errorf("other account resolved %s: %v", arn, err)
	}
}

func TestWrapRoundTripAndTampering(t *testing.T) {
	st := storetest.New(t)
	s := &Service{Store: st}
	ctx := context.Background()
	arn, err := s.DefaultKey(ctx, scope)
	if err != nil {
		t.Fatal(err)
	}
	plain, wrapped, err := s.GenerateDataKey(ctx, scope, arn, 64)
	if err != nil {
		t.Fatal(err)
	}
	if len(plain) != 64 || bytes.Contains(wrapped, plain) || bytes.Equal(plain, make([]byte, 64)) {
		t.Fatalf("plain %d bytes, wrapped %d", len(plain), len(wrapped))
	}
	// A fresh service (no cache) reads the key from the store.
	got, err := (&Service{Store: st}).Decrypt(ctx, scope, arn, wrapped)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("round trip: %v", err)
	}

	// Another key cannot unwrap it.
	otherScope := resource.Scope{Account: "210987654321", Region: "us-east-1"}
	otherARN, err := s.DefaultKey(ctx, otherScope)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Decrypt(ctx, otherScope, otherARN, wrapped); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("other key: %v", err)
	}
	// Nor the right key asked for by another account (the AAD differs).
	if _, err := s.Decrypt(ctx, otherScope, arn, wrapped); err == nil {
		t.Fatal("decrypted under another account")
	}
	// Any changed byte fails: nonce, ciphertext, tag.
	for _, i := range []int{0, 12, len(wrapped) - 1} {
		bad := bytes.Clone(wrapped)
		bad[i] ^= 1
		if _, err := s.Decrypt(ctx, scope, arn, bad); !errors.Is(err, ErrDecrypt) {
			t.Fatalf("byte %d flipped: %v", i, err)
		}
	}
	if _, err := s.Decrypt(ctx, scope, arn, wrapped[:10]); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("truncated: %v", err)
	}
	if _, _, err := s.GenerateDataKey(ctx, scope, arn, 0); err == nil {
		t.Fatal("0-byte data key")
	}
	if _, _, err := s.GenerateDataKey(ctx, scope, "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab", 32); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown key: %v", err)
	}
}
