package snapstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// GCStats is what a sweep of a lineage found.
type GCStats struct {
	Snapshots    int   // manifests left
	Kept         int   // chunks they reference
	Removed      int   // chunk files removed (temporary ones included)
	RemovedBytes int64 // their size
}

// Delete removes snapshot id of lineage, then sweeps the lineage: the
// chunks no remaining snapshot references go, the others stay. The
// manifest goes first, so a crash half-way leaves only garbage for the
// next GC. A lineage left without snapshots is removed. Idempotent.
func (s *Store) Delete(ctx context.Context, lineage, id string) (GCStats, error) {
	if err := check(Lineage{ID: lineage}, id); err != nil {
		return GCStats{}, err
	}
	lk := s.line(lineage)
	lk.Lock()
	defer lk.Unlock()
	err := os.Remove(s.manifestPath(lineage, id))
	switch {
	case err == nil:
		if err := syncDir(s.manifestDir(lineage)); err != nil {
			return GCStats{}, err
		}
	case !errors.Is(err, fs.ErrNotExist):
		return GCStats{}, fmt.Errorf("deleting %s: %w", id, err)
	}
	st, err := s.sweep(ctx, lineage)
	if err == nil {
		s.log.Info("snapshot deleted", "snapshot", id, "lineage", lineage, "chunksRemoved", st.Removed,
			"bytesRemoved", st.RemovedBytes, "chunksKept", st.Kept)
	}
	return st, err
}

// GC sweeps a lineage: what a crashed or failed Take, Copy or Delete left.
func (s *Store) GC(ctx context.Context, lineage string) (GCStats, error) {
	if !ValidLineage(lineage) {
		return GCStats{}, fmt.Errorf("lineage %q: %w", lineage, ErrInvalid)
	}
	lk := s.line(lineage)
	lk.Lock()
	defer lk.Unlock()
	return s.sweep(ctx, lineage)
}

// GCAll sweeps every lineage.
func (s *Store) GCAll(ctx context.Context) (GCStats, error) {
	ls, err := s.Lineages()
	if err != nil {
		return GCStats{}, err
	}
	var all GCStats
	var errs []error
	for _, l := range ls {
		st, err := s.GC(ctx, l)
		errs = append(errs, err)
		all.Snapshots += st.Snapshots
		all.Kept += st.Kept
		all.Removed += st.Removed
		all.RemovedBytes += st.RemovedBytes
	}
	return all, errors.Join(errs...)
}

// sweep marks the chunks of every manifest of lineage and removes the rest.
// A manifest that cannot be read stops it before anything is removed.
func (s *Store) sweep(ctx context.Context, lineage string) (GCStats, error) {
	var st GCStats
	ids, err := s.snapshots(lineage)
	if err != nil {
		return st, err
	}
	marked := map[Addr]bool{}
	for _, id := range ids {
		m, err := s.readManifest(lineage, id)
		if err != nil {
			return st, fmt.Errorf("sweeping lineage %s: %w", lineage, err)
		}
		for _, r := range m.Chunks {
			marked[r.Addr] = true
		}
	}
	st.Snapshots, st.Kept = len(ids), len(marked)
	err = filepath.WalkDir(s.lineageDir(lineage), func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		var a Addr
		name := d.Name()
		inChunks := filepath.Dir(filepath.Dir(path)) == s.chunkDir(lineage)
		tmp := strings.HasPrefix(name, ".tmp-")
		if !tmp && (!inChunks || a.UnmarshalText([]byte(name)) != nil || marked[a]) {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil // gone meanwhile
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		st.Removed++
		st.RemovedBytes += fi.Size()
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("sweeping lineage %s: %w", lineage, err)
	}
	if len(ids) == 0 {
		if err := os.RemoveAll(s.lineageDir(lineage)); err != nil {
			return st, err
		}
	}
	return st, nil
}

// Usage returns the bytes and the number of chunk files a lineage holds.
func (s *Store) Usage(lineage string) (bytes int64, chunks int, err error) {
	if !ValidLineage(lineage) {
		return 0, 0, fmt.Errorf("lineage %q: %w", lineage, ErrInvalid)
	}
	err = filepath.WalkDir(s.chunkDir(lineage), func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil || d.IsDir() {
			return err
		}
		if fi, err := d.Info(); err == nil {
			bytes += fi.Size()
			chunks++
		}
		return nil
	})
	return bytes, chunks, err
}
