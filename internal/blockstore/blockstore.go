// Package blockstore is the storage layer of EBS volumes: block devices
// encrypted at rest on a host that has loop devices but no device-mapper.
//
// A pool is one sparse image file, Dir/pool.img, formatted ext4 with the
// encrypt feature, attached to a loop device and mounted at Dir/pool. A
// volume is a directory of the pool, Dir/pool/<vol-id>, holding one sparse
// file of the volume's size, Dir/pool/<vol-id>/volume. An encrypted volume's
// directory has an fscrypt v2 policy keyed by the volume's own 512-bit key,
// so its blocks reach the pool image only as AES-256-XTS ciphertext.
// Attaching a volume binds its file to a loop device: the device an instance
// gets. Deleting an encrypted volume removes its key from the kernel: the
// caller, which alone keeps the key (wrapped), discards its copy, and what
// ciphertext the pool may still hold is unreadable (crypto-erase).
//
// Keys are never stored here. After Open, encrypted volumes must be unlocked
// (Unlock) before they are attached or resized. Attachments outlive the
// Store and the process: Close leaves them, and Open adopts them.
package blockstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sync"

	"golang.org/x/sys/unix"
)

// DefaultPoolSize is the pool image's size when Config leaves it out. The
// image is sparse: the host's free space, not this, is what volumes can
// really fill (Observe reports both).
const DefaultPoolSize = 1 << 40

var (
	ErrNotFound     = errors.New("no such volume")
	ErrExists       = errors.New("volume exists")
	ErrAttached     = errors.New("volume is attached")
	ErrLocked       = errors.New("volume is locked: Unlock it with its key")
	ErrWrongKey     = errors.New("not the volume's key")
	ErrKeyInUse     = errors.New("key belongs to another volume")
	ErrNotEncrypted = errors.New("volume is not encrypted")
	ErrShrink       = errors.New("volumes only grow")
	ErrBusy         = errors.New("device busy")
	ErrInvalid      = errors.New("invalid argument")
)

// Config says where a Store lives.
type Config struct {
	Dir      string // e.g. DATA/ebs: pool.img, the pool's mount point, the lock
	PoolSize int64  // bytes; used when the pool is made; DefaultPoolSize if 0
	// BufferedIO attaches volumes without direct I/O on their loop devices
	// (for measurements; direct I/O is the default, see docs/ARCHITECTURE.md).
	BufferedIO bool
	Log        *slog.Logger
}

// Store is an open pool.
type Store struct {
	dir, img, root string
	pool           Device
	rootDir        *os.File // the pool's root: target of the keyring ioctls
	lock           *os.File // flock: one Store per Dir at a time
	directIO       bool
	log            *slog.Logger

	mu sync.Mutex
}

// Open opens the pool in cfg.Dir, making, attaching and mounting it as
// needed; an attached image and a mount already there are adopted.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Dir == "" {
		return nil, fmt.Errorf("blockstore: no directory: %w", ErrInvalid)
	}
	if cfg.PoolSize == 0 {
		cfg.PoolSize = DefaultPoolSize
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("blockstore: %w", err)
	}
	// Loop devices show their backing file's real path: resolve symlinks once.
	dir, err := filepath.EvalSymlinks(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("blockstore: %w", err)
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return nil, fmt.Errorf("blockstore: %w", err)
	}
	s := &Store{
		dir: dir, img: filepath.Join(dir, "pool.img"), root: filepath.Join(dir, "pool"),
		directIO: !cfg.BufferedIO, log: cfg.Log.With("component", "blockstore"),
	}
	if s.lock, err = os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600); err != nil {
		return nil, fmt.Errorf("blockstore: %w", err)
	}
	if err := unix.Flock(int(s.lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		s.lock.Close()
		return nil, fmt.Errorf("blockstore: %s is in use by another store: %w", dir, err)
	}
	if err := s.openPool(ctx, cfg.PoolSize); err != nil {
		s.lock.Close()
		return nil, fmt.Errorf("blockstore: %w", err)
	}
	return s, nil
}

// Pool returns the pool's loop device.
func (s *Store) Pool() Device { return s.pool }

// Close locks the encrypted volumes that are not attached (their plaintext
// leaves the kernel's caches) and releases the store. Attached volumes keep
// their keys and loop devices, and the pool stays mounted: instances go on.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rootDir == nil {
		return nil
	}
	err := s.lockDetached()
	s.release()
	return err
}

func (s *Store) release() {
	s.rootDir.Close()
	s.rootDir = nil
	s.lock.Close() // drops the flock
}

var idRE = regexp.MustCompile(`^vol-([0-9a-f]{8}|[0-9a-f]{17})$`)

// ValidID reports whether id is a volume ID (vol- and 8 or 17 hex digits):
// nothing else ever becomes a path.
func ValidID(id string) bool { return idRE.MatchString(id) }

func (s *Store) volDir(id string) string  { return filepath.Join(s.root, id) }
func (s *Store) volFile(id string) string { return filepath.Join(s.root, id, "volume") }

// check validates id and that the store is open.
func (s *Store) check(ctx context.Context, id string) error {
	if s.rootDir == nil {
		return errors.New("blockstore: store is closed")
	}
	if !ValidID(id) {
		return fmt.Errorf("volume ID %q: %w", id, ErrInvalid)
	}
	return ctx.Err()
}
