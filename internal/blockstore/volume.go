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

// Attach binds the volume to a loop device and returns it; a volume already
// attached returns its device.
func (s *Store) Attach(ctx context.Context, id string) (Device, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx, id); err != nil {
		return Device{}, err
	}
	if err := s.unlocked(id); err != nil {
		return Device{}, err
	}
	d, attached, err := loopFind(s.volFile(id))
	switch {
	case err != nil:
		return Device{}, err
	case attached && d.autoclear:
		return Device{}, fmt.Errorf("%s: %s is still detaching: %w", id, d.Path, ErrBusy)
	case attached:
		return d.Device, nil
	}
	dev, err := loopAttach(ctx, s.volFile(id), s.directIO)
	if err != nil {
		return Device{}, fmt.Errorf("attaching %s: %w", id, err)
	}
	s.log.Info("attached volume", "volume", id, "device", dev.String(), "directIO", loopDirectIO(dev, s.volFile(id)))
	return dev, nil
}

// Detach flushes the volume's device to the pool and unbinds it. Idempotent.
// ErrBusy: something still has the device open; the kernel unbinds it at
// the last close.
func (s *Store) Detach(ctx context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx, id); err != nil {
		return err
	}
	return s.detach(ctx, id)
}

func (s *Store) detach(ctx context.Context, id string) error {
	d, attached, err := loopFind(s.volFile(id))
	if err != nil || !attached {
		return err
	}
	if err := loopDetach(ctx, d.Device); err != nil {
		return fmt.Errorf("detaching %s: %w", id, err)
	}
	s.log.Info("detached volume", "volume", id, "device", d.Path)
	return nil
}

// Resize grows the volume to size bytes (a multiple of 4096). An attached
// volume's device sees the new size at once; growing the filesystem on it
// is the instance's business, as on EC2.
func (s *Store) Resize(ctx context.Context, id string, size int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx, id); err != nil {
		return err
	}
	if size <= 0 || size%4096 != 0 {
		return fmt.Errorf("volume size %d: not a positive multiple of 4096: %w", size, ErrInvalid)
	}
	if err := s.unlocked(id); err != nil {
		return err
	}
	f, err := os.OpenFile(s.volFile(id), os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("resizing %s: %w", id, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if size < fi.Size() {
		return fmt.Errorf("%s from %d to %d bytes: %w", id, fi.Size(), size, ErrShrink)
	}
	if size == fi.Size() {
		return nil
	}
	if err := f.Truncate(size); err != nil {
		return fmt.Errorf("resizing %s: %w", id, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("resizing %s: %w", id, err)
	}
	if d, attached, err := loopFind(s.volFile(id)); err != nil {
		return err
	} else if attached {
		if err := loopSetCapacity(d.Device); err != nil {
			return fmt.Errorf("resizing %s: %w", id, err)
		}
	}
	s.log.Info("resized volume", "volume", id, "from", fi.Size(), "to", size)
	return nil
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
	kid, encrypted, err := s.keyOf(id)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	// Renamed first: a crash half-way leaves a .new- directory, which Open
	// removes, rather than a volume with its file gone.
	tmp := filepath.Join(s.root, ".new-"+id)
	if err := os.Rename(s.volDir(id), tmp); err != nil {
		return fmt.Errorf("deleting %s: %w", id, err)
	}
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("deleting %s: %w", id, err)
	}
	if encrypted {
		if busy, err := removeKey(s.rootDir, kid); err != nil {
			return fmt.Errorf("deleting %s: %w", id, err)
		} else if busy {
			s.log.Warn("deleted volume's key still used by an open file", "volume", id)
		}
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
