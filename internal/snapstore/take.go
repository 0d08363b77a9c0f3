package snapstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Source is a volume to snapshot: its file as the host sees it (the
// plaintext of an encrypted volume) and its size.
type Source struct {
	File *os.File
	Size int64 // bytes, a multiple of 4096: the manifest's VolumeSize
}

// Options tune Take, Restore and Copy.
type Options struct {
	// Read, if set, is called once the source's last byte was read: the
	// volume may change from then on (the caller thaws what it froze). It is
	// not called when the operation fails first; the caller thaws then.
	Read func()
	// Progress, if set, is called now and then (never concurrently) with
	// the bytes done and the bytes to do.
	Progress func(done, total int64)
	// Labels go into the manifest (e.g. the record's account and region).
	Labels map[string]string
}

// Stats is what an operation did.
type Stats struct {
	Chunks      int           // non-zero chunks the snapshot references
	NewChunks   int           // chunks stored (the others were in the lineage already)
	ReadBytes   int64         // bytes read from the volume or the source lineage
	StoredBytes int64         // bytes added to the store
	ReadTime    time.Duration // from the start to the last read of the source
	Took        time.Duration
}

// Take stores snapshot id of src in lineage l: every chunk of the source's
// data extents is read, addressed, and stored unless the lineage holds it
// already; then the manifest is written. Holes and zero chunks are left out.
func (s *Store) Take(ctx context.Context, l Lineage, id string, src Source, opt Options) (Stats, error) {
	start := time.Now()
	if err := check(l, id); err != nil {
		return Stats{}, err
	}
	lk := s.line(l.ID)
	lk.RLock()
	defer lk.RUnlock()
	if _, err := os.Stat(s.manifestPath(l.ID, id)); err == nil {
		return Stats{}, fmt.Errorf("%s: %w", id, ErrExists)
	}
	t, err := s.taking(l, src)
	if err != nil {
		return Stats{}, err
	}
	st, err := t.run(ctx, opt)
	if err != nil {
		return st, fmt.Errorf("taking %s: %w", id, err)
	}
	m := Manifest{Snapshot: id, Lineage: l.ID, VolumeSize: src.Size, ChunkSize: ChunkSize, Encrypted: l.Key != nil,
		Created: time.Now().UTC(), Labels: opt.Labels, Chunks: []Ref{}}
	for i, k := range t.keep {
		if k {
			m.Chunks = append(m.Chunks, t.refs[i])
		}
	}
	st.Chunks = len(m.Chunks)
	// The chunks this manifest names reach the disk before it does.
	if err := syncFS(s.lineageDir(l.ID)); err != nil {
		return st, err
	}
	if crashBeforeManifest != nil {
		if err := crashBeforeManifest(); err != nil {
			return st, err
		}
	}
	if err := s.writeManifest(m); err != nil {
		return st, err
	}
	st.Took = time.Since(start)
	s.log.Info("snapshot taken", "snapshot", id, "lineage", l.ID, "chunks", st.Chunks, "new", st.NewChunks,
		"storedBytes", st.StoredBytes, "readTime", st.ReadTime, "took", st.Took)
	return st, nil
}

// Prime stores the chunks of src that lineage l lacks, and no snapshot:
// the bulk of a first snapshot, written before its instance is frozen, so
// that the Take under the freeze only reads, hashes and stores what
// changed since. What Prime stored and no Take then names is garbage for
// the next GC.
func (s *Store) Prime(ctx context.Context, l Lineage, src Source) (Stats, error) {
	start := time.Now()
	if err := check(l); err != nil {
		return Stats{}, err
	}
	lk := s.line(l.ID)
	lk.RLock()
	defer lk.RUnlock()
	t, err := s.taking(l, src)
	if err != nil {
		return Stats{}, err
	}
	st, err := t.run(ctx, Options{})
	st.Took = time.Since(start)
	return st, err
}

func (s *Store) taking(l Lineage, src Source) (*taking, error) {
	if src.Size <= 0 || src.Size%4096 != 0 {
		return nil, fmt.Errorf("volume size %d: not a positive multiple of 4096: %w", src.Size, ErrInvalid)
	}
	if err := os.MkdirAll(s.chunkDir(l.ID), 0o700); err != nil {
		return nil, err
	}
	idx, err := dataChunks(src.File, src.Size)
	if err != nil {
		return nil, fmt.Errorf("listing the data of %s: %w", src.File.Name(), err)
	}
	return &taking{Store: s, l: l, src: src, idx: idx, refs: make([]Ref, len(idx)), keep: make([]bool, len(idx)), claimed: map[Addr]bool{}}, nil
}

// crashBeforeManifest, set by tests, ends a Take between its chunks and its
// manifest as a crash would.
var crashBeforeManifest func() error

// taking is one Take in progress.
type taking struct {
	*Store
	l    Lineage
	src  Source
	idx  []int64 // chunk indexes with data, ascending
	refs []Ref   // by position in idx
	keep []bool  // refs[i] is a non-zero chunk

	mu      sync.Mutex
	claimed map[Addr]bool // written, or being written, by this Take
	stats   Stats
	done    atomic.Int64
}

type pending struct {
	a   Addr
	buf []byte
}

// run reads with s.workers goroutines into a bounded set of aligned
// buffers; new chunks go to as many writers, which seal and store them.
func (t *taking) run(ctx context.Context, opt Options) (Stats, error) {
	start := time.Now()
	nbuf := 3 * t.workers
	mem, err := unix.Mmap(-1, 0, nbuf*ChunkSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		return Stats{}, err
	}
	defer unix.Munmap(mem)
	free := make(chan []byte, nbuf)
	for i := range nbuf {
		free <- mem[i*ChunkSize : (i+1)*ChunkSize : (i+1)*ChunkSize]
	}
	g := newGroup(ctx)
	stop := t.progress(opt.Progress, int64(len(t.idx))*ChunkSize)
	defer stop()
	jobs := make(chan int)
	writes := make(chan pending, t.workers)
	var readers sync.WaitGroup
	for range t.workers {
		sl, err := newSealer(t.l.Key)
		if err != nil {
			return Stats{}, err
		}
		readers.Add(1)
		g.go_(func(ctx context.Context) error {
			defer readers.Done()
			for pos := range jobs {
				if err := t.read(ctx, sl, pos, free, writes); err != nil {
					return err
				}
			}
			return nil
		})
		wsl, _ := newSealer(t.l.Key)
		g.go_(func(ctx context.Context) error { return t.write(ctx, wsl, free, writes) })
	}
	g.go_(func(ctx context.Context) error {
		defer close(jobs)
		for pos := range t.idx {
			select {
			case jobs <- pos:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	})
	go func() {
		readers.Wait()
		close(writes)
	}()
	readers.Wait()
	if g.failed() == nil {
		t.stats.ReadTime = time.Since(start)
		if opt.Read != nil {
			opt.Read()
		}
	}
	err = g.wait()
	return t.stats, err
}

func (t *taking) read(ctx context.Context, sl *sealer, pos int, free chan []byte, writes chan<- pending) error {
	var buf []byte
	select {
	case buf = <-free:
	case <-ctx.Done():
		return ctx.Err()
	}
	off := t.idx[pos] * ChunkSize
	n, err := t.src.File.ReadAt(buf, off)
	if err != nil && !errors.Is(err, io.EOF) {
		free <- buf
		return fmt.Errorf("reading at %d: %w", off, err)
	}
	clear(buf[n:]) // past the end of the volume: zeros
	t.mu.Lock()
	t.stats.ReadBytes += int64(n)
	t.mu.Unlock()
	if isZero(buf) {
		free <- buf
		t.done.Add(ChunkSize)
		return nil
	}
	a := sl.address(buf)
	t.refs[pos], t.keep[pos] = Ref{Index: t.idx[pos], Addr: a}, true
	if !t.claim(a) || t.haveChunk(t.l.ID, a, sl.fileSize()) {
		free <- buf
		t.done.Add(ChunkSize)
		return nil
	}
	select {
	case writes <- pending{a, buf}:
		return nil
	case <-ctx.Done():
		free <- buf
		return ctx.Err()
	}
}

// claim reports whether a is this Take's to write (first seen).
func (t *taking) claim(a Addr) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.claimed[a] {
		return false
	}
	t.claimed[a] = true
	return true
}

func (t *taking) write(ctx context.Context, sl *sealer, free chan<- []byte, writes <-chan pending) error {
	var out []byte
	for w := range writes {
		out = sl.seal(out, w.a, w.buf)
		free <- w.buf
		if err := ctx.Err(); err != nil {
			continue // drain: readers may be waiting on writes
		}
		if err := t.writeChunk(t.l.ID, w.a, out); err != nil {
			return err
		}
		t.mu.Lock()
		t.stats.NewChunks++
		t.stats.StoredBytes += int64(len(out))
		t.mu.Unlock()
		t.done.Add(ChunkSize)
	}
	return ctx.Err()
}

// progress calls report every 250 ms until stopped, and once at the end.
func (t *taking) progress(report func(done, total int64), total int64) (stop func()) {
	return every(report, &t.done, total)
}

func every(report func(done, total int64), done *atomic.Int64, total int64) (stop func()) {
	if report == nil {
		return func() {}
	}
	quit, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				report(done.Load(), total)
			case <-quit:
				return
			}
		}
	}()
	return func() {
		close(quit)
		<-exited
		report(done.Load(), total)
	}
}

// dataChunks lists the indexes of the chunks that hold any of the file's
// data extents (SEEK_DATA/SEEK_HOLE), below size, ascending.
func dataChunks(f *os.File, size int64) ([]int64, error) {
	sc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	var idx []int64
	var serr error
	err = sc.Control(func(fd uintptr) {
		for off := int64(0); off < size; {
			data, err := unix.Seek(int(fd), off, unix.SEEK_DATA)
			if errors.Is(err, unix.ENXIO) {
				return // no data past off
			}
			if err != nil {
				serr = err
				return
			}
			hole, err := unix.Seek(int(fd), data, unix.SEEK_HOLE)
			if err != nil {
				serr = err
				return
			}
			end := min(hole, size)
			for i := data / ChunkSize; i*ChunkSize < end; i++ {
				if len(idx) == 0 || idx[len(idx)-1] < i {
					idx = append(idx, i)
				}
			}
			off = hole
		}
	})
	if err == nil {
		err = serr
	}
	return idx, err
}

// syncFS makes everything written to the filesystem of path durable.
func syncFS(path string) error {
	d, err := os.Open(path)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := unix.Syncfs(int(d.Fd())); err != nil {
		return fmt.Errorf("syncfs %s: %w", path, err)
	}
	return nil
}

// group runs goroutines; the first error cancels the others' context.
type group struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
	err    atomic.Pointer[error]
}

func newGroup(ctx context.Context) *group {
	g := &group{}
	g.ctx, g.cancel = context.WithCancel(ctx)
	return g
}

func (g *group) go_(f func(ctx context.Context) error) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		if err := f(g.ctx); err != nil {
			g.once.Do(func() {
				g.err.Store(&err)
				g.cancel()
			})
		}
	}()
}

func (g *group) failed() error {
	if p := g.err.Load(); p != nil {
		return *p
	}
	return g.ctx.Err()
}

func (g *group) wait() error {
	g.wg.Wait()
	defer g.cancel()
	if p := g.err.Load(); p != nil {
		return *p
	}
	return g.ctx.Err()
}
