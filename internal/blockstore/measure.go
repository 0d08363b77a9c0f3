package blockstore

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Throughput is sequential MiB/s with O_DIRECT, 1 MiB at a time.
type Throughput struct{ WriteMiBs, ReadMiBs float64 }

// Pair compares an unencrypted and an encrypted volume attached the same way.
type Pair struct {
	Plain, Encrypted       Throughput
	PlainDIO, EncryptedDIO bool // whether the kernel really did direct I/O on each file
}

// Ratio is encrypted over unencrypted throughput.
func (p Pair) Ratio() (write, read float64) {
	return p.Encrypted.WriteMiBs / p.Plain.WriteMiBs, p.Encrypted.ReadMiBs / p.Plain.ReadMiBs
}

// Result is what Measure found.
type Result struct {
	Size     int64
	Host     Throughput // a file on the host filesystem under Dir: the disk's own figure
	DirectIO Pair       // volumes attached with direct I/O (the default)
	Buffered Pair       // volumes attached without
}

func (r Result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "sequential O_DIRECT, 1 MiB blocks, %d MiB\n", r.Size>>20)
	fmt.Fprintf(&b, "  host file             write %7.1f MiB/s  read %7.1f MiB/s\n", r.Host.WriteMiBs, r.Host.ReadMiBs)
	for _, m := range []struct {
		name string
		p    Pair
	}{{"loop direct I/O", r.DirectIO}, {"loop buffered", r.Buffered}} {
		w, rd := m.p.Ratio()
		fmt.Fprintf(&b, "  %-16s plain write %7.1f MiB/s  read %7.1f MiB/s  (dio %v)\n", m.name, m.p.Plain.WriteMiBs, m.p.Plain.ReadMiBs, m.p.PlainDIO)
		fmt.Fprintf(&b, "  %-16s enc   write %7.1f MiB/s  read %7.1f MiB/s  (dio %v)\n", "", m.p.Encrypted.WriteMiBs, m.p.Encrypted.ReadMiBs, m.p.EncryptedDIO)
		fmt.Fprintf(&b, "  %-16s enc/plain write %.2f  read %.2f\n", "", w, rd)
	}
	return b.String()
}

// Measure makes a store in dir (which it tears down and removes before
// returning) and measures sequential writes then reads through volume
// devices of size bytes: unencrypted and encrypted, attached with and without
// direct I/O. Needs root and about 2×size free on the host.
func Measure(ctx context.Context, dir string, size int64) (Result, error) {
	r := Result{Size: size}
	size = size &^ (1<<20 - 1)
	if size <= 0 {
		return r, fmt.Errorf("measure: size under 1 MiB: %w", ErrInvalid)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return r, err
	}
	defer os.RemoveAll(dir)
	var err error
	if r.Host, err = measureHost(ctx, filepath.Join(dir, "host.bin"), size); err != nil {
		return r, err
	}
	s, err := Open(ctx, Config{Dir: filepath.Join(dir, "store"), PoolSize: 2*size + 1<<30})
	if err != nil {
		return r, err
	}
	defer s.Teardown(context.WithoutCancel(ctx))
	for _, m := range []struct {
		directIO bool
		p        *Pair
	}{{true, &r.DirectIO}, {false, &r.Buffered}} {
		s.directIO = m.directIO
		if m.p.Plain, m.p.PlainDIO, err = measureVolume(ctx, s, "vol-00000001", size, nil); err != nil {
			return r, err
		}
		key := make([]byte, KeySize)
		rand.Read(key)
		if m.p.Encrypted, m.p.EncryptedDIO, err = measureVolume(ctx, s, "vol-00000002", size, key); err != nil {
			return r, err
		}
	}
	return r, nil
}

func measureVolume(ctx context.Context, s *Store, id string, size int64, key []byte) (Throughput, bool, error) {
	if err := s.Create(ctx, id, size, key); err != nil {
		return Throughput{}, false, err
	}
	defer s.Delete(context.WithoutCancel(ctx), id)
	dev, err := s.Attach(ctx, id)
	if err != nil {
		return Throughput{}, false, err
	}
	defer s.Detach(context.WithoutCancel(ctx), id)
	// Evict the volume file's cached pages before reading, so that reads come
	// from the pool (and are decrypted) rather than from memory.
	evict := func() error { return dropCache(s.volFile(id)) }
	t, err := sequential(ctx, dev.Path, size, evict)
	return t, loopDirectIO(dev, s.volFile(id)), err
}

func measureHost(ctx context.Context, path string, size int64) (Throughput, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return Throughput{}, err
	}
	f.Close()
	defer os.Remove(path)
	return sequential(ctx, path, size, func() error { return nil })
}

// sequential writes size bytes to path with O_DIRECT, flushes, calls
// between, then reads them back with O_DIRECT.
func sequential(ctx context.Context, path string, size int64, between func() error) (Throughput, error) {
	const block = 1 << 20
	buf, err := unix.Mmap(-1, 0, block, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		return Throughput{}, err
	}
	defer unix.Munmap(buf)
	rand.Read(buf) // incompressible, and never all zeros
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_DIRECT, 0)
	if err != nil {
		return Throughput{}, err
	}
	defer f.Close()
	var t Throughput
	mibs := func(d time.Duration) float64 { return float64(size) / (1 << 20) / d.Seconds() }
	start := time.Now()
	for off := int64(0); off < size; off += block {
		if err := ctx.Err(); err != nil {
			return t, err
		}
		if _, err := f.WriteAt(buf, off); err != nil {
			return t, fmt.Errorf("writing %s: %w", path, err)
		}
	}
	if err := f.Sync(); err != nil {
		return t, fmt.Errorf("flushing %s: %w", path, err)
	}
	t.WriteMiBs = mibs(time.Since(start))
	if err := between(); err != nil {
		return t, err
	}
	start = time.Now()
	for off := int64(0); off < size; off += block {
		if err := ctx.Err(); err != nil {
			return t, err
		}
		if _, err := f.ReadAt(buf, off); err != nil {
			return t, fmt.Errorf("reading %s: %w", path, err)
		}
	}
	t.ReadMiBs = mibs(time.Since(start))
	return t, nil
}

// dropCache evicts a file's clean cached pages.
func dropCache(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
}
