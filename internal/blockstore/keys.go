package blockstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// Unlock gives the kernel an encrypted volume's key again, as needed after
// the pool was mounted anew (a host restart) or the volume was locked.
// Idempotent. A key that is not the volume's is refused (ErrWrongKey)
// before it reaches the kernel.
func (s *Store) Unlock(ctx context.Context, id string, key []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx, id); err != nil {
		return err
	}
	want, encrypted, err := s.keyOf(id)
	if err != nil {
		return err
	}
	if !encrypted {
		return fmt.Errorf("%s: %w", id, ErrNotEncrypted)
	}
	if kid, err := keyIdentifier(key); err != nil || len(key) != KeySize || kid != want {
		return fmt.Errorf("%s: %w", id, ErrWrongKey)
	}
	if _, err := addKey(s.rootDir, key); err != nil {
		return fmt.Errorf("unlocking %s: %w", id, err)
	}
	return nil
}

// Lock removes a detached encrypted volume's key from the kernel, and with
// it the plaintext cached for it. Idempotent; unencrypted volumes are left.
func (s *Store) Lock(ctx context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx, id); err != nil {
		return err
	}
	if err := s.refuseAttached(id, "locking"); err != nil {
		return err
	}
	return s.lockVolume(id)
}

func (s *Store) lockVolume(id string) error {
	kid, encrypted, err := s.keyOf(id)
	if err != nil || !encrypted {
		return err
	}
	busy, err := removeKey(s.rootDir, kid)
	if err != nil {
		return fmt.Errorf("locking %s: %w", id, err)
	}
	if busy {
		s.log.Warn("volume locked while its file is still open: it stays readable until closed", "volume", id)
	}
	return nil
}

// lockDetached locks every encrypted volume that no loop device uses.
func (s *Store) lockDetached() error {
	ids, err := s.list()
	if err != nil {
		return err
	}
	var errs []error
	for _, id := range ids {
		if err := s.refuseAttached(id, "locking"); errors.Is(err, ErrAttached) {
			continue
		} else if err != nil {
			errs = append(errs, err)
			continue
		}
		errs = append(errs, s.lockVolume(id))
	}
	return errors.Join(errs...)
}

// keyOf returns the identifier of the volume's key; encrypted is false for
// an unencrypted volume. ErrNotFound if there is no such volume.
func (s *Store) keyOf(id string) (kid keyID, encrypted bool, err error) {
	d, err := os.Open(s.volDir(id))
	if errors.Is(err, fs.ErrNotExist) {
		return kid, false, fmt.Errorf("%s: %w", id, ErrNotFound)
	}
	if err != nil {
		return kid, false, err
	}
	defer d.Close()
	return policyKey(d)
}

// unlocked checks that the volume exists and, if encrypted, has its key.
func (s *Store) unlocked(id string) error {
	kid, encrypted, err := s.keyOf(id)
	if err != nil || !encrypted {
		return err
	}
	ok, err := keyPresent(s.rootDir, kid)
	if err == nil && !ok {
		err = fmt.Errorf("%s: %w", id, ErrLocked)
	}
	return err
}

// keyUser returns the volume whose policy names kid, or "".
func (s *Store) keyUser(kid keyID) (string, error) {
	ids, err := s.list()
	if err != nil {
		return "", err
	}
	for _, id := range ids {
		k, encrypted, err := s.keyOf(id)
		if err != nil {
			return "", err
		}
		if encrypted && k == kid {
			return id, nil
		}
	}
	return "", nil
}
