// Package keypair is EC2's key pairs: SSH keys whose public half nubo keeps
// (to install in instances) and whose private half, when nubo makes it, the
// caller receives once.
package keypair

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"
	"unicode"

	clientv3 "go.etcd.io/etcd/client/v3"

	"nubo/internal/apierr"
	"nubo/internal/resource"
	"nubo/internal/store"
)

// MaxPerRegion is EC2's quota of key pairs per account and region.
const MaxPerRegion = 5000

// KeyPair is the stored record.
type KeyPair struct {
	resource.Meta
	Name        string `json:"name"`
	Type        string `json:"type"` // rsa | ed25519
	Fingerprint string `json:"fingerprint"`
	PublicKey   string `json:"publicKey"`
}

// Service creates, lists and deletes key pairs.
type Service struct {
	Store *store.Store
	Now   func() time.Time
}

func notFound(name string) error {
	return apierr.New("InvalidKeyPair.NotFound", "The key pair '%s' does not exist", name)
}

// ValidateName checks EC2's key name rule: 1–255 ASCII characters.
func ValidateName(name string) error {
	if name == "" {
		return apierr.Missing("KeyName")
	}
	if len(name) > 255 {
		return apierr.InvalidValue("KeyName", name, "Key pair names can be up to 255 characters long.")
	}
	for _, r := range name {
		if r > unicode.MaxASCII || !unicode.IsPrint(r) {
			return apierr.InvalidValue("KeyName", name, "Key pair names must contain only printable ASCII characters.")
		}
	}
	return nil
}

// Create makes a key pair of keyType and returns it with its private key.
func (s *Service) Create(ctx context.Context, sc resource.Scope, name, keyType string, tags []resource.Tag) (KeyPair, string, error) {
	m, err := Generate(keyType)
	if err != nil {
		return KeyPair{}, "", err
	}
	kp, err := s.put(ctx, sc, name, keyType, m, tags)
	return kp, m.PrivatePEM, err
}

// Import stores the public key a caller brings.
func (s *Service) Import(ctx context.Context, sc resource.Scope, name string, material []byte, tags []resource.Tag) (KeyPair, error) {
	keyType, m, err := ParsePublic(material)
	if err != nil {
		return KeyPair{}, apierr.New(apierr.InvalidParameterValue, "Value for parameter PublicKeyMaterial is invalid: %v", err)
	}
	return s.put(ctx, sc, name, keyType, m, tags)
}

func (s *Service) put(ctx context.Context, sc resource.Scope, name, keyType string, m Material, tags []resource.Tag) (KeyPair, error) {
	set, err := resource.Merge(name, nil, tags)
	if err != nil {
		return KeyPair{}, err
	}
	count, err := s.Store.Client().Get(ctx, resource.Prefix(sc, resource.KeyPair), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return KeyPair{}, fmt.Errorf("counting key pairs: %w", err)
	}
	if count.Count >= MaxPerRegion {
		return KeyPair{}, apierr.New("KeyPairLimitExceeded", "Maximum of %d key pairs per region reached.", MaxPerRegion)
	}
	kp := KeyPair{
		Meta:        resource.Meta{ID: resource.NewID(resource.KeyPair), Tags: set, CreateTime: s.now()},
		Name:        name,
		Type:        keyType,
		Fingerprint: m.Fingerprint,
		PublicKey:   m.PublicKey,
	}
	err = s.Store.Create(ctx, map[string]any{
		resource.Key(sc, resource.KeyPair, kp.ID):    kp,
		resource.NameKey(sc, resource.KeyPair, name): kp.ID,
	})
	if errors.Is(err, store.ErrExists) {
		return KeyPair{}, apierr.New("InvalidKeyPair.Duplicate", "The keypair '%s' already exists.", name)
	}
	if err != nil {
		return KeyPair{}, fmt.Errorf("storing key pair %s: %w", name, err)
	}
	return kp, nil
}

// List returns every key pair in scope, ordered by ID.
func (s *Service) List(ctx context.Context, sc resource.Scope) ([]KeyPair, error) {
	kvs, err := s.Store.List(ctx, resource.Prefix(sc, resource.KeyPair))
	if err != nil {
		return nil, err
	}
	out := make([]KeyPair, len(kvs))
	for i, kv := range kvs {
		if err := json.Unmarshal(kv.Value, &out[i]); err != nil {
			return nil, fmt.Errorf("decoding %s: %w", kv.Key, err)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Get finds a key pair by name.
func (s *Service) Get(ctx context.Context, sc resource.Scope, name string) (KeyPair, error) {
	var id string
	if _, err := s.Store.Get(ctx, resource.NameKey(sc, resource.KeyPair, name), &id); errors.Is(err, store.ErrNotFound) {
		return KeyPair{}, notFound(name)
	} else if err != nil {
		return KeyPair{}, err
	}
	var kp KeyPair
	if _, err := s.Store.Get(ctx, resource.Key(sc, resource.KeyPair, id), &kp); errors.Is(err, store.ErrNotFound) {
		return KeyPair{}, notFound(name)
	} else if err != nil {
		return KeyPair{}, err
	}
	return kp, nil
}

// GetByID finds a key pair by ID.
func (s *Service) GetByID(ctx context.Context, sc resource.Scope, id string) (KeyPair, error) {
	var kp KeyPair
	if _, err := s.Store.Get(ctx, resource.Key(sc, resource.KeyPair, id), &kp); errors.Is(err, store.ErrNotFound) {
		return KeyPair{}, apierr.New("InvalidKeyPair.NotFound", "The key pair ID '%s' does not exist", id)
	} else if err != nil {
		return KeyPair{}, err
	}
	return kp, nil
}

// Delete removes a key pair by name or by ID. As in EC2, deleting a name that
// does not exist succeeds; an ID that does not exist is an error.
func (s *Service) Delete(ctx context.Context, sc resource.Scope, name, id string) (deletedID string, err error) {
	var kp KeyPair
	if id != "" {
		if !resource.ValidID(resource.KeyPair, id) {
			return "", apierr.New("InvalidKeyPairId.Malformed", "Invalid id: \"%s\" (expecting \"key-...\")", id)
		}
		if kp, err = s.GetByID(ctx, sc, id); err != nil {
			return "", err
		}
	} else {
		kp, err = s.Get(ctx, sc, name)
		if _, ok := apierr.As(err); ok {
			return "", nil
		} else if err != nil {
			return "", err
		}
	}
	err = s.Store.Delete(ctx, resource.Key(sc, resource.KeyPair, kp.ID), resource.NameKey(sc, resource.KeyPair, kp.Name))
	if err != nil && !errors.Is(err, store.ErrNotFound) { // gone already: a concurrent delete won
		return "", fmt.Errorf("deleting key pair %s: %w", kp.ID, err)
	}
	return kp.ID, nil
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}
