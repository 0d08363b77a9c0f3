package snapstore

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Manifest is a snapshot: the volume's size and its non-zero chunks.
type Manifest struct {
	Snapshot   string    `json:"snapshot"`
	Lineage    string    `json:"lineage"`
	VolumeSize int64     `json:"volumeSize"` // bytes
	ChunkSize  int       `json:"chunkSize"`
	Encrypted  bool      `json:"encrypted"`
	Created    time.Time `json:"created"`
	// Labels are the caller's (e.g. the record's account and region).
	Labels map[string]string `json:"labels,omitempty"`
	Chunks []Ref             `json:"chunks"` // ascending Index; absent chunks are zeros
}

// Ref is one chunk of a snapshot: the bytes [Index×ChunkSize, +ChunkSize).
type Ref struct {
	Index int64 `json:"i"`
	Addr  Addr  `json:"a"`
}

// Manifest reads snapshot id of lineage.
func (s *Store) Manifest(lineage, id string) (Manifest, error) {
	if err := check(Lineage{ID: lineage}, id); err != nil {
		return Manifest{}, err
	}
	return s.readManifest(lineage, id)
}

func (s *Store) readManifest(lineage, id string) (Manifest, error) {
	var m Manifest
	b, err := os.ReadFile(s.manifestPath(lineage, id))
	if errors.Is(err, fs.ErrNotExist) {
		return m, fmt.Errorf("%s in lineage %s: %w", id, lineage, ErrNotFound)
	}
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("manifest %s: %w", id, err)
	}
	if m.ChunkSize != ChunkSize || m.Snapshot != id || m.Lineage != lineage {
		return m, fmt.Errorf("manifest %s names %s of lineage %s, chunks of %d bytes: %w", id, m.Snapshot, m.Lineage, m.ChunkSize, ErrCorrupt)
	}
	return m, nil
}

// writeManifest writes m durably: a temporary file, fsync, rename, fsync
// of the directory. The chunks it names must be durable already.
func (s *Store) writeManifest(m Manifest) error {
	dir := s.manifestDir(m.Lineage)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, ".tmp-"+m.Snapshot)
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, s.manifestPath(m.Lineage, m.Snapshot))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing manifest %s: %w", m.Snapshot, err)
	}
	return syncDir(dir)
}

// Snapshots lists the snapshots of a lineage.
func (s *Store) Snapshots(lineage string) ([]string, error) {
	if !ValidLineage(lineage) {
		return nil, fmt.Errorf("lineage %q: %w", lineage, ErrInvalid)
	}
	return s.snapshots(lineage)
}

func (s *Store) snapshots(lineage string) ([]string, error) {
	entries, err := os.ReadDir(s.manifestDir(lineage))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), ".") && ValidSnapshot(e.Name()) {
			out = append(out, e.Name())
		}
	}
	return out, nil
}
