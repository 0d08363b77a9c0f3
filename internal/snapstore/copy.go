package snapstore

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Copy stores snapshot dstID in lineage to as a copy of srcID of lineage
// from. Within one lineage only a manifest is written: the copy shares
// every chunk. Into another lineage (another key, or encryption added)
// each chunk is opened with from's key and stored under to's, addressed
// anew.
func (s *Store) Copy(ctx context.Context, from Lineage, srcID string, to Lineage, dstID string, opt Options) (Stats, error) {
	start := time.Now()
	if err := check(from, srcID); err != nil {
		return Stats{}, err
	}
	if err := check(to, dstID); err != nil {
		return Stats{}, err
	}
	// Shared locks taken in ID order: a sweep waiting on one of them never
	// waits on a Copy that waits on it.
	locks := []*sync.RWMutex{s.line(from.ID)}
	if to.ID != from.ID {
		if to.ID < from.ID {
			locks = []*sync.RWMutex{s.line(to.ID), s.line(from.ID)}
		} else {
			locks = append(locks, s.line(to.ID))
		}
	}
	for _, l := range locks {
		l.RLock()
		defer l.RUnlock()
	}
	m, err := s.readManifest(from.ID, srcID)
	if err != nil {
		return Stats{}, err
	}
	if m.Encrypted != (from.Key != nil) {
		return Stats{}, fmt.Errorf("%s: encrypted=%v, the key says %v: %w", srcID, m.Encrypted, from.Key != nil, ErrInvalid)
	}
	if _, err := os.Stat(s.manifestPath(to.ID, dstID)); err == nil {
		return Stats{}, fmt.Errorf("%s: %w", dstID, ErrExists)
	}
	st := Stats{Chunks: len(m.Chunks)}
	if to.ID != from.ID {
		if st, err = s.reseal(ctx, from, to, &m, opt); err != nil {
			return st, fmt.Errorf("copying %s to %s: %w", srcID, dstID, err)
		}
		if err := syncFS(s.lineageDir(to.ID)); err != nil {
			return st, err
		}
	} else if opt.Read != nil {
		opt.Read()
	}
	m.Snapshot, m.Lineage, m.Encrypted, m.Created, m.Labels = dstID, to.ID, to.Key != nil, time.Now().UTC(), opt.Labels
	if err := s.writeManifest(m); err != nil {
		return st, err
	}
	st.Took = time.Since(start)
	s.log.Info("snapshot copied", "from", srcID, "to", dstID, "lineage", to.ID, "sameLineage", to.ID == from.ID,
		"chunks", st.Chunks, "new", st.NewChunks, "took", st.Took)
	return st, nil
}

// reseal stores m's chunks in lineage to and points m's references at them.
func (s *Store) reseal(ctx context.Context, from, to Lineage, m *Manifest, opt Options) (Stats, error) {
	if err := os.MkdirAll(s.chunkDir(to.ID), 0o700); err != nil {
		return Stats{}, err
	}
	var (
		mu      sync.Mutex
		st      = Stats{Chunks: len(m.Chunks)}
		claimed = map[Addr]bool{}
		done    atomic.Int64
	)
	stop := every(opt.Progress, &done, int64(len(m.Chunks))*ChunkSize)
	defer stop()
	g := newGroup(ctx)
	jobs := make(chan int)
	for range s.workers {
		src, err := newSealer(from.Key)
		if err != nil {
			return st, err
		}
		dst, err := newSealer(to.Key)
		if err != nil {
			return st, err
		}
		g.go_(func(ctx context.Context) error {
			var file, out []byte
			plain := make([]byte, ChunkSize)
			for i := range jobs {
				if err := ctx.Err(); err != nil {
					return err
				}
				r := m.Chunks[i]
				var err error
				if file, err = s.readChunk(from.ID, r.Addr, file); err != nil {
					return err
				}
				if err := src.open(plain, r.Addr, file); err != nil {
					return err
				}
				a := dst.address(plain)
				m.Chunks[i].Addr = a
				mu.Lock()
				st.ReadBytes += int64(len(file))
				first := !claimed[a]
				claimed[a] = true
				mu.Unlock()
				if first && !s.haveChunk(to.ID, a, dst.fileSize()) {
					out = dst.seal(out, a, plain)
					if err := s.writeChunk(to.ID, a, out); err != nil {
						return err
					}
					mu.Lock()
					st.NewChunks++
					st.StoredBytes += int64(len(out))
					mu.Unlock()
				}
				done.Add(ChunkSize)
			}
			return nil
		})
	}
	g.go_(func(ctx context.Context) error {
		defer close(jobs)
		for i := range m.Chunks {
			select {
			case jobs <- i:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	})
	err := g.wait()
	if err == nil && opt.Read != nil {
		opt.Read()
	}
	return st, err
}
