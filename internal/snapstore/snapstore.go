// Package snapstore is the storage layer of EBS snapshots: a snapshot of a
// block volume is a manifest (the volume's size and, by offset, the chunks
// holding its data) and chunks of ChunkSize bytes, EBS's block size, kept
// under Dir (DATA/ebs/snapshots) on the host that holds the volume.
//
//	Dir/<lineage>/manifests/<snap-id>      JSON, written last (tmp, fsync, rename)
//	Dir/<lineage>/chunks/<ab>/<address>    one chunk, named by its address
//
// A lineage is every snapshot of one volume, of the volumes restored from
// them and of their copies under the same key: chunks are content-addressed
// within it, so a snapshot stores only the chunks no other snapshot of the
// lineage holds (incremental, as EBS's), and two lineages never share one.
// An encrypted lineage has a data key (KeySize bytes, kept wrapped by the
// caller): half of it keys AES-256-GCM over each chunk, the other half the
// HMAC-SHA-256 that is a chunk's address, so equal content is visible only
// within its lineage. Unencrypted lineages address chunks by SHA-256 and
// store them as they are, as EC2 does with unencrypted volumes.
//
// Chunks that are all zeros are not stored: holes of the volume's file are
// skipped (SEEK_DATA/SEEK_HOLE) and zero chunks left out of the manifest.
// Nothing here references a chunk before the chunk is durable (one syncfs
// before the manifest is written), and deleting a snapshot removes its
// manifest first and then sweeps the lineage (mark from the manifests that
// remain, remove the rest): a crash anywhere leaves at most garbage, which
// the next GC of the lineage removes. Snapshots being taken, copied or
// restored hold their lineage shared; sweeps hold it exclusively.
package snapstore

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sync"

	"golang.org/x/sys/unix"
)

const (
	// ChunkSize is the unit of snapshots: EBS's snapshot block size.
	ChunkSize = 512 << 10
	// KeySize is an encrypted lineage's data key: 32 bytes for AES-256-GCM,
	// 32 for the HMAC that addresses chunks.
	KeySize = 64
)

var (
	ErrNotFound = errors.New("no such snapshot")
	ErrExists   = errors.New("snapshot exists")
	ErrInvalid  = errors.New("invalid argument")
	// ErrCorrupt: a chunk is missing, or does not hold what its address says.
	ErrCorrupt = errors.New("snapshot data is damaged")
)

// Config says where a Store lives.
type Config struct {
	Dir string // e.g. DATA/ebs/snapshots
	// Workers is how many chunks are read, hashed, sealed and written at
	// once (default 4).
	Workers int
	Log     *slog.Logger
}

// Store is an open snapshot directory. One process at a time (a lock file).
type Store struct {
	dir     string
	workers int
	log     *slog.Logger
	lock    *os.File

	mu       sync.Mutex
	lineages map[string]*sync.RWMutex
}

// Lineage names a lineage and holds its data key (nil: unencrypted).
type Lineage struct {
	ID  string // a UUID; EC2's DataEncryptionKeyId of an encrypted lineage
	Key []byte
}

// Open opens (making it if needed) the store in cfg.Dir.
func Open(cfg Config) (*Store, error) {
	if cfg.Dir == "" {
		return nil, fmt.Errorf("snapstore: no directory: %w", ErrInvalid)
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("snapstore: %w", err)
	}
	s := &Store{dir: cfg.Dir, workers: cfg.Workers, log: cfg.Log.With("component", "snapstore"), lineages: map[string]*sync.RWMutex{}}
	var err error
	if s.lock, err = os.OpenFile(filepath.Join(cfg.Dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600); err != nil {
		return nil, fmt.Errorf("snapstore: %w", err)
	}
	if err := unix.Flock(int(s.lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		s.lock.Close()
		return nil, fmt.Errorf("snapstore: %s is in use by another store: %w", cfg.Dir, err)
	}
	return s, nil
}

// Close releases the store.
func (s *Store) Close() error { return s.lock.Close() }

var (
	lineageRE  = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	snapshotRE = regexp.MustCompile(`^snap-([0-9a-f]{8}|[0-9a-f]{17})$`)
)

// ValidLineage reports whether id is a lineage ID (a lowercase UUID).
func ValidLineage(id string) bool { return lineageRE.MatchString(id) }

// ValidSnapshot reports whether id is a snapshot ID: nothing else becomes a path.
func ValidSnapshot(id string) bool { return snapshotRE.MatchString(id) }

func (s *Store) lineageDir(id string) string      { return filepath.Join(s.dir, id) }
func (s *Store) manifestDir(id string) string     { return filepath.Join(s.dir, id, "manifests") }
func (s *Store) chunkDir(id string) string        { return filepath.Join(s.dir, id, "chunks") }
func (s *Store) manifestPath(l, id string) string { return filepath.Join(s.manifestDir(l), id) }

// line returns the lock of lineage id.
func (s *Store) line(id string) *sync.RWMutex {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.lineages[id]
	if l == nil {
		l = &sync.RWMutex{}
		s.lineages[id] = l
	}
	return l
}

func check(l Lineage, ids ...string) error {
	if !ValidLineage(l.ID) {
		return fmt.Errorf("lineage %q: %w", l.ID, ErrInvalid)
	}
	if l.Key != nil && len(l.Key) != KeySize {
		return fmt.Errorf("lineage key of %d bytes, want %d: %w", len(l.Key), KeySize, ErrInvalid)
	}
	for _, id := range ids {
		if !ValidSnapshot(id) {
			return fmt.Errorf("snapshot ID %q: %w", id, ErrInvalid)
		}
	}
	return nil
}

// Lineages lists the lineages that have a directory.
func (s *Store) Lineages() ([]string, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() && ValidLineage(e.Name()) {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
