// Package kms is a small KMS for EBS encryption: symmetric keys kept per
// account and region, the AWS managed key alias/aws/ebs made on first use,
// and data keys wrapped (AES-256-GCM) by them. Volume records keep only
// wrapped data keys; the agent that unlocks a volume asks Decrypt.
//
// Store layout (<scope> is <account>/<region>):
//
//	/nubo/v1/kms/<scope>/key/<uuid>          a key: its ARN and 32 random bytes
//	/nubo/v1/kms/<scope>/alias/<name>        the key ID an alias names
package kms

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"nubo/internal/resource"
	"nubo/internal/store"
)

// DefaultAlias is the AWS managed key EBS encrypts with unless told otherwise.
const DefaultAlias = "alias/aws/ebs"

var (
	// ErrNotFound: no key answers to the identifier (or it is malformed,
	// or it belongs to another account or region).
	ErrNotFound = errors.New("KMS key not found")
	// ErrDecrypt: the wrapped key was not made by this key, or was altered.
	ErrDecrypt = errors.New("KMS ciphertext does not decrypt with this key")
)

// Key is a stored key.
type Key struct {
	ID          string    `json:"id"` // a UUID
	ARN         string    `json:"arn"`
	Material    []byte    `json:"material"` // 32 bytes, AES-256
	Description string    `json:"description"`
	Manager     string    `json:"manager"` // AWS | CUSTOMER
	CreateTime  time.Time `json:"createTime"`
}

// Service keeps keys and wraps data keys with them.
type Service struct {
	Store *store.Store
	Now   func() time.Time

	// Keys never change once stored: material read once is kept.
	cache sync.Map // ARN → []byte
}

func prefix(sc resource.Scope) string {
	return store.Root + "kms/" + sc.Account + "/" + sc.Region + "/"
}

// KeyKey is where key id lives.
func KeyKey(sc resource.Scope, id string) string { return prefix(sc) + "key/" + id }

// AliasKey is where alias (e.g. alias/aws/ebs) lives.
func AliasKey(sc resource.Scope, alias string) string { return prefix(sc) + alias }

// KeyARN is the ARN of key id in scope.
func KeyARN(sc resource.Scope, id string) string {
	return "arn:aws:kms:" + sc.Region + ":" + sc.Account + ":key/" + id
}

// AliasARN is the ARN of alias (e.g. alias/aws/ebs) in scope.
func AliasARN(sc resource.Scope, alias string) string {
	return "arn:aws:kms:" + sc.Region + ":" + sc.Account + ":" + alias
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

// DefaultKey returns the ARN of the scope's alias/aws/ebs key, making it
// on first use; racing first uses agree on the one stored first.
func (s *Service) DefaultKey(ctx context.Context, scope resource.Scope) (arn string, err error) {
	for attempt := 0; attempt < 10; attempt++ {
		var id string
		_, err := s.Store.Get(ctx, AliasKey(scope, DefaultAlias), &id)
		if err == nil {
			return KeyARN(scope, id), nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return "", fmt.Errorf("reading %s: %w", DefaultAlias, err)
		}
		k := Key{ID: resource.NewUUID(), Material: make([]byte, 32), Manager: "AWS", CreateTime: s.now(),
			Description: "Default key that protects my EBS volumes when no other key is defined"}
		k.ARN = KeyARN(scope, k.ID)
		if _, err := rand.Read(k.Material); err != nil {
			return "", err
		}
		err = s.Store.Apply(ctx,
			store.Op{Key: KeyKey(scope, k.ID), Value: k},
			store.Op{Key: AliasKey(scope, DefaultAlias), Value: k.ID})
		if err == nil {
			return k.ARN, nil
		}
		if !errors.Is(err, store.ErrConflict) {
			return "", fmt.Errorf("making %s: %w", DefaultAlias, err)
		}
	}
	return "", fmt.Errorf("making %s: %w", DefaultAlias, store.ErrConflict)
}

// Resolve returns the key ARN that keyID names: a key ID, a key ARN, an
// alias (alias/aws/ebs) or an alias ARN, in scope. Anything else, and a
// key of another account or region, is ErrNotFound.
func (s *Service) Resolve(ctx context.Context, scope resource.Scope, keyID string) (arn string, err error) {
	ref := keyID
	if rest, ok := strings.CutPrefix(keyID, "arn:aws:kms:"); ok {
		want := scope.Region + ":" + scope.Account + ":"
		if ref, ok = strings.CutPrefix(rest, want); !ok {
			return "", fmt.Errorf("%w: %s is not a key of account %s in %s", ErrNotFound, keyID, scope.Account, scope.Region)
		}
		if id, isKey := strings.CutPrefix(ref, "key/"); isKey {
			ref = id
		} else if !strings.HasPrefix(ref, "alias/") {
			return "", fmt.Errorf("%w: %s", ErrNotFound, keyID)
		}
	}
	if strings.HasPrefix(ref, "alias/") {
		if ref == DefaultAlias {
			return s.DefaultKey(ctx, scope)
		}
		var id string
		if _, err := s.Store.Get(ctx, AliasKey(scope, ref), &id); errors.Is(err, store.ErrNotFound) {
			return "", fmt.Errorf("%w: alias %s", ErrNotFound, ref)
		} else if err != nil {
			return "", err
		}
		ref = id
	}
	if !validUUID(ref) {
		return "", fmt.Errorf("%w: %s", ErrNotFound, keyID)
	}
	k, err := s.load(ctx, scope, KeyARN(scope, ref))
	if err != nil {
		return "", err
	}
	return k.ARN, nil
}

// load reads the key whose ARN is arn.
func (s *Service) load(ctx context.Context, scope resource.Scope, arn string) (Key, error) {
	id, ok := strings.CutPrefix(arn, KeyARN(scope, ""))
	if !ok || !validUUID(id) {
		return Key{}, fmt.Errorf("%w: %s is not a key ARN of account %s in %s", ErrNotFound, arn, scope.Account, scope.Region)
	}
	if m, ok := s.cache.Load(arn); ok {
		return Key{ID: id, ARN: arn, Material: m.([]byte)}, nil
	}
	var k Key
	if _, err := s.Store.Get(ctx, KeyKey(scope, id), &k); errors.Is(err, store.ErrNotFound) {
		return Key{}, fmt.Errorf("%w: %s", ErrNotFound, arn)
	} else if err != nil {
		return Key{}, err
	}
	if len(k.Material) != 32 || k.ARN != arn {
		return Key{}, fmt.Errorf("key %s: stored record is damaged (%d bytes of material)", arn, len(k.Material))
	}
	s.cache.Store(arn, k.Material)
	return k, nil
}

// GenerateDataKey returns n random bytes and the same wrapped by the key
// arn (as KMS's GenerateDataKey: 1 to 1024 bytes).
func (s *Service) GenerateDataKey(ctx context.Context, scope resource.Scope, arn string, n int) (plaintext, wrapped []byte, err error) {
	if n < 1 || n > 1024 {
		return nil, nil, fmt.Errorf("data key of %d bytes: KMS makes 1 to 1024", n)
	}
	aead, err := s.aead(ctx, scope, arn)
	if err != nil {
		return nil, nil, err
	}
	plaintext = make([]byte, n)
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+n+aead.Overhead())
	if _, err := rand.Read(plaintext); err != nil {
		return nil, nil, err
	}
	if _, err := rand.Read(nonce); err != nil {
		return nil, nil, err
	}
	return plaintext, aead.Seal(nonce, nonce, plaintext, aad(scope, arn)), nil
}

// Decrypt unwraps what GenerateDataKey wrapped with the key arn.
func (s *Service) Decrypt(ctx context.Context, scope resource.Scope, arn string, wrapped []byte) ([]byte, error) {
	aead, err := s.aead(ctx, scope, arn)
	if err != nil {
		return nil, err
	}
	if len(wrapped) < aead.NonceSize()+aead.Overhead() {
		return nil, fmt.Errorf("%w: %d bytes is too short", ErrDecrypt, len(wrapped))
	}
	ns := aead.NonceSize()
	out, err := aead.Open(nil, wrapped[:ns], wrapped[ns:], aad(scope, arn))
	if err != nil {
		return nil, fmt.Errorf("%w (%s)", ErrDecrypt, arn)
	}
	return out, nil
}

func (s *Service) aead(ctx context.Context, scope resource.Scope, arn string) (cipher.AEAD, error) {
	k, err := s.load(ctx, scope, arn)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(k.Material)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// aad binds a wrapped key to its key and account. (The volume's ID cannot
// be bound: the data key is made before the ID is final.)
func aad(scope resource.Scope, arn string) []byte {
	return []byte(arn + "\x00" + scope.Account)
}

// validUUID accepts the 8-4-4-4-12 lower-case hex form.
func validUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
				return false
			}
		}
	}
	return true
}
