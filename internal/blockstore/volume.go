package blockstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Create makes volume id of size bytes (a multiple of 4096), sparse: it takes
// pool space only as it is written. With a key (KeySize bytes, random, one
// per volume) the volume is encrypted and left unlocked; nil makes an
// unencrypted volume.
func (s *Store) Create(ctx context.Context, id string, size int64, key []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx, id); err != nil {
		return err
	}
	if size <= 0 || size%4096 != 0 {
		return fmt.Errorf("volume size %d: not a positive multiple of 4096: %w", size, ErrInvalid)
	}
	if _, err := os.Lstat(s.volDir(id)); err == nil {
		return fmt.Errorf("%s: %w", id, ErrExists)
	}
	var kid keyID
	if key != nil {
		if len(key) != KeySize {
			return fmt.Errorf("key of %d bytes, want %d: %w", len(key), KeySize, ErrInvalid)
		}
		var err error
		if kid, err = keyIdentifier(key); err != nil {
			return err
		}
		if other, err := s.keyUser(kid); err != nil {
			return err
		} else if other != "" {
			return fmt.Errorf("%s: %w", other, ErrKeyInUse)
		}
	}
	// Made under a temporary name and renamed: a crash leaves no volume
	// that is half made, or a directory that should be encrypted and is not.
	tmp := filepath.Join(s.root, ".new-"+id)
	if err := s.create(tmp, size, key, kid); err != nil {
		os.RemoveAll(tmp)
		if key != nil {
			removeKey(s.rootDir, kid)
		}
		return fmt.Errorf("creating %s: %w", id, err)
	}
	if err := os.Rename(tmp, s.volDir(id)); err != nil {
		return fmt.Errorf("creating %s: %w", id, err)
	}
	s.log.Info("created volume", "volume", id, "size", size, "encrypted", key != nil)
	return syncDir(s.root)
}

func (s *Store) create(dir string, size int64, key []byte, kid keyID) error {
	os.RemoveAll(dir)
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	if key != nil {
		got, err := addKey(s.rootDir, key)
		if err != nil {
			return err
		}
		if got != kid {
			return fmt.Errorf("the kernel names the key %x, expected %x", got, kid)
		}
		d, err := os.Open(dir)
		if err != nil {
			return err
		}
		err = setPolicy(d, kid)
		d.Close()
		if err != nil {
			return err
		}
	}
	f, err := os.OpenFile(filepath.Join(dir, "volume"), os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	err = f.Truncate(size)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = syncDir(dir)
	}
	return err
}

// Delete removes a detached volume: its file (whose blocks the pool
// discards: holes in the image again) and its key, which makes any
// ciphertext left anywhere unreadable. An attached volume is refused
// (ErrAttached), as EC2 refuses to delete a volume in use. Idempotent.
func (s *Store) Delete(ctx context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx, id); err != nil {
		return err
	}
	if err := s.refuseAttached(id, "deleting"); err != nil {
		return err
	}
	if _, err := os.Lstat(s.volDir(id)); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	// Renamed first: a crash half-way leaves a .del- directory, which Open
	// finishes erasing, rather than a volume with its file gone.
	tmp := filepath.Join(s.root, ".del-"+id)
	if err := os.Rename(s.volDir(id), tmp); err != nil {
		return fmt.Errorf("deleting %s: %w", id, err)
	}
	encrypted, err := s.erase(tmp)
	if err != nil {
		return fmt.Errorf("deleting %s: %w", id, err)
	}
	if err := syncDir(s.root); err != nil {
		return err
	}
	if err := s.trim(); err != nil {
		s.log.Warn("volume deleted, its space not yet returned to the host", "volume", id, "err", err)
	}
	s.log.Info("deleted volume", "volume", id, "cryptoErased", encrypted)
	return nil
}

// erase removes a volume directory and then its key, if it has one: no
// other volume shares it (Create sees to that).
func (s *Store) erase(dir string) (encrypted bool, err error) {
	d, err := os.Open(dir)
	if err != nil {
		return false, err
	}
	kid, encrypted, err := policyKey(d)
	d.Close()
	if err != nil {
		return false, err
	}
	if err := os.RemoveAll(dir); err != nil {
		return encrypted, err
	}
	if encrypted {
		if busy, err := removeKey(s.rootDir, kid); err != nil {
			return true, err
		} else if busy {
			s.log.Warn("a deleted volume's key is still used by an open file", "dir", dir)
		}
	}
	return encrypted, nil
}

// anyFile returns the path of the volume's file, also when the volume is
// locked: its name is then shown encrypted, and "volume" finds nothing.
func (s *Store) anyFile(id string) (string, error) {
	if _, err := os.Lstat(s.volFile(id)); err == nil {
		return s.volFile(id), nil
	}
	entries, err := os.ReadDir(s.volDir(id))
	if err != nil {
		return "", fmt.Errorf("%s: %w", id, err)
	}
	if len(entries) != 1 || !entries[0].Type().IsRegular() {
		return "", fmt.Errorf("%s: %d entries in its directory, want its one file", id, len(entries))
	}
	return filepath.Join(s.volDir(id), entries[0].Name()), nil
}

// list returns the IDs of the pool's volumes.
func (s *Store) list() ([]string, error) {
	entries, err := os.ReadDir(s.root)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, e := range entries {
		if e.IsDir() && ValidID(e.Name()) {
			ids = append(ids, e.Name())
		}
	}
	return ids, nil
}

// refuseAttached returns ErrAttached when a loop device uses the volume.
func (s *Store) refuseAttached(id, doing string) error {
	_, attached, err := loopFind(s.volFile(id))
	if err != nil {
		return err
	}
	if attached {
		return fmt.Errorf("%s %s: %w", doing, id, ErrAttached)
	}
	return nil
}
