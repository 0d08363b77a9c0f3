package snapstore

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Restore writes snapshot id of lineage l into dst, a new volume's file (as
// the host sees it; all zeros, at least the snapshot's size): each chunk at
// its offset, checked against its address. Chunks the manifest does not
// name stay holes. Eager: the volume is whole when Restore returns, which
// fsyncs dst.
func (s *Store) Restore(ctx context.Context, l Lineage, id string, dst *os.File, opt Options) (Stats, error) {
	start := time.Now()
	if err := check(l, id); err != nil {
		return Stats{}, err
	}
	lk := s.line(l.ID)
	lk.RLock()
	defer lk.RUnlock()
	m, err := s.readManifest(l.ID, id)
	if err != nil {
		return Stats{}, err
	}
	if m.Encrypted != (l.Key != nil) {
		return Stats{}, fmt.Errorf("%s: encrypted=%v, the key says %v: %w", id, m.Encrypted, l.Key != nil, ErrInvalid)
	}
	fi, err := dst.Stat()
	if err != nil {
		return Stats{}, err
	}
	if fi.Size() < m.VolumeSize {
		return Stats{}, fmt.Errorf("restoring %s (%d bytes) into %s of %d bytes: %w", id, m.VolumeSize, dst.Name(), fi.Size(), ErrInvalid)
	}
	var done atomic.Int64
	stop := every(opt.Progress, &done, int64(len(m.Chunks))*ChunkSize)
	defer stop()
	nbuf := s.workers
	mem, err := unix.Mmap(-1, 0, nbuf*ChunkSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		return Stats{}, err
	}
	defer unix.Munmap(mem)
	g := newGroup(ctx)
	jobs := make(chan Ref)
	var read atomic.Int64
	for w := range nbuf {
		sl, err := newSealer(l.Key)
		if err != nil {
			return Stats{}, err
		}
		plain := mem[w*ChunkSize : (w+1)*ChunkSize : (w+1)*ChunkSize]
		g.go_(func(ctx context.Context) error {
			var file []byte
			for r := range jobs {
				if err := ctx.Err(); err != nil {
					return err
				}
				var err error
				if file, err = s.readChunk(l.ID, r.Addr, file); err != nil {
					return err
				}
				read.Add(int64(len(file)))
				if err := sl.open(plain, r.Addr, file); err != nil {
					return err
				}
				off := r.Index * ChunkSize
				n := min(int64(ChunkSize), m.VolumeSize-off)
				if _, err := dst.WriteAt(plain[:n], off); err != nil {
					return fmt.Errorf("writing at %d: %w", off, err)
				}
				done.Add(ChunkSize)
			}
			return nil
		})
	}
	g.go_(func(ctx context.Context) error {
		defer close(jobs)
		for _, r := range m.Chunks {
			select {
			case jobs <- r:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	})
	if err := g.wait(); err != nil {
		return Stats{}, fmt.Errorf("restoring %s: %w", id, err)
	}
	if err := dst.Sync(); err != nil {
		return Stats{}, fmt.Errorf("restoring %s: %w", id, err)
	}
	st := Stats{Chunks: len(m.Chunks), ReadBytes: read.Load(), Took: time.Since(start)}
	st.ReadTime = st.Took
	s.log.Info("snapshot restored", "snapshot", id, "lineage", l.ID, "into", dst.Name(), "chunks", st.Chunks, "took", st.Took)
	return st, nil
}
