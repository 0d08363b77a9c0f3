package snapstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// These tests use sparse files as volumes: the layer reads and writes a
// volume's file, whatever backs it. pool_test.go does the same on real
// blockstore volumes.

func testStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(Config{Dir: filepath.Join(t.TempDir(), "snapshots"), Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func testLog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func newLineage(t *testing.T, encrypted bool) Lineage {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := []byte(strings.ToLower(string(hexs(b[:]))))
	l := Lineage{ID: string(h[0:8]) + "-" + string(h[8:12]) + "-" + string(h[12:16]) + "-" + string(h[16:20]) + "-" + string(h[20:32])}
	if encrypted {
		l.Key = make([]byte, KeySize)
		rand.Read(l.Key)
	}
	return l
}

func hexs(b []byte) []byte {
	const digits = "0123456789abcdef"
	out := make([]byte, 2*len(b))
	for i, c := range b {
		out[2*i], out[2*i+1] = digits[c>>4], digits[c&15]
	}
	return out
}

// sparseFile makes a file of size bytes with no data.
func sparseFile(t *testing.T, size int64) *os.File {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "volume"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	return f
}

func writeAt(t *testing.T, f *os.File, off int64, p []byte) {
	t.Helper()
	if _, err := f.WriteAt(p, off); err != nil {
		t.Fatal(err)
	}
}

func random(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func fileHash(t *testing.T, f *os.File) [32]byte {
	t.Helper()
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, size(t, f))); err != nil {
		t.Fatal(err)
	}
	var sum [32]byte
	h.Sum(sum[:0])
	return sum
}

func size(t *testing.T, f *os.File) int64 {
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func take(t *testing.T, s *Store, l Lineage, id string, f *os.File) Stats {
	t.Helper()
	st, err := s.Take(context.Background(), l, id, Source{File: f, Size: size(t, f)}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func restoreHash(t *testing.T, s *Store, l Lineage, id string, size int64) [32]byte {
	t.Helper()
	dst := sparseFile(t, size)
	if _, err := s.Restore(context.Background(), l, id, dst, Options{}); err != nil {
		t.Fatal(err)
	}
	return fileHash(t, dst)
}

func usage(t *testing.T, s *Store, l Lineage) int64 {
	t.Helper()
	n, _, err := s.Usage(l.ID)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestTakeRestore(t *testing.T) {
	for _, encrypted := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "encrypted"}[encrypted], func(t *testing.T) {
			s, l := testStore(t), newLineage(t, encrypted)
			const volSize = 64 << 20
			f := sparseFile(t, volSize)
			writeAt(t, f, 0, random(3*ChunkSize))
			writeAt(t, f, 10*ChunkSize+4096, random(8192))         // within one chunk
			writeAt(t, f, 20*ChunkSize, make([]byte, 2*ChunkSize)) // written zeros: data, not stored
			writeAt(t, f, volSize-4096, random(4096))              // the last chunk
			var reads, progress int
			st, err := s.Take(context.Background(), l, "snap-00000001", Source{File: f, Size: volSize}, Options{
				Read:     func() { reads++ },
				Progress: func(done, total int64) { progress++ },
			})
			if err != nil {
				t.Fatal(err)
			}
			if st.Chunks != 5 || st.NewChunks != 5 || reads != 1 || progress == 0 {
				t.Fatalf("stats %+v, %d Read calls, %d progress reports; want 5 chunks, all new, 1 Read", st, reads, progress)
			}
			m, err := s.Manifest(l.ID, "snap-00000001")
			if err != nil {
				t.Fatal(err)
			}
			var idx []int64
			for _, r := range m.Chunks {
				idx = append(idx, r.Index)
			}
			if want := []int64{0, 1, 2, 10, 127}; !equal(idx, want) || m.VolumeSize != volSize || m.Encrypted != encrypted {
				t.Fatalf("manifest chunks %v size %d encrypted %v; want %v", idx, m.VolumeSize, m.Encrypted, want)
			}
			if restoreHash(t, s, l, "snap-00000001", volSize) != fileHash(t, f) {
				t.Fatal("the restored volume differs")
			}
			// A second snapshot of the same data stores nothing.
			if st := take(t, s, l, "snap-00000002", f); st.NewChunks != 0 || st.Chunks != 5 {
				t.Fatalf("second snapshot: %+v", st)
			}
			if _, err := s.Take(context.Background(), l, "snap-00000002", Source{File: f, Size: volSize}, Options{}); !errors.Is(err, ErrExists) {
				t.Fatalf("taking an existing snapshot: %v", err)
			}
		})
	}
}

func equal(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestRestoreSparse(t *testing.T) {
	s, l := testStore(t), newLineage(t, true)
	f := sparseFile(t, 1<<30)
	writeAt(t, f, 512<<20, random(ChunkSize))
	take(t, s, l, "snap-00000001", f)
	dst := sparseFile(t, 1<<30)
	if _, err := s.Restore(context.Background(), l, "snap-00000001", dst, Options{}); err != nil {
		t.Fatal(err)
	}
	if used := allocated(t, dst); used > 2*ChunkSize {
		t.Fatalf("the restored 1 GiB volume takes %d bytes; its data is one chunk", used)
	}
}

func TestWrongKey(t *testing.T) {
	s, l := testStore(t), newLineage(t, true)
	f := sparseFile(t, 8<<20)
	writeAt(t, f, 0, random(ChunkSize))
	take(t, s, l, "snap-00000001", f)
	bad := Lineage{ID: l.ID, Key: make([]byte, KeySize)}
	_, err := s.Restore(context.Background(), bad, "snap-00000001", sparseFile(t, 8<<20), Options{})
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("restore with another key: %v", err)
	}
	if _, err := s.Restore(context.Background(), Lineage{ID: l.ID}, "snap-00000001", sparseFile(t, 8<<20), Options{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("restore of an encrypted snapshot with no key: %v", err)
	}
	if _, err := s.Restore(context.Background(), l, "snap-00000001", sparseFile(t, 4<<20), Options{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("restore into a smaller volume: %v", err)
	}
}

// TestIncrementalAndDelete: the second snapshot stores only what changed;
// deleting the first keeps every chunk the second needs and frees the
// rest; the second restores bit for bit.
func TestIncrementalAndDelete(t *testing.T) {
	s, l := testStore(t), newLineage(t, true)
	const volSize = 64 << 20
	f := sparseFile(t, volSize)
	writeAt(t, f, 0, random(volSize))
	first := take(t, s, l, "snap-00000001", f)
	before := usage(t, s, l)
	writeAt(t, f, 3*ChunkSize+100, random(2*ChunkSize)) // spans chunks 3, 4 and 5
	second := take(t, s, l, "snap-00000002", f)
	grew := usage(t, s, l) - before
	if second.NewChunks != 3 || grew != 3*(1+ChunkSize+gcmOverhead) {
		t.Fatalf("second snapshot stored %d chunks, %d bytes; want 3 (first: %+v)", second.NewChunks, grew, first)
	}
	want := fileHash(t, f)
	gc, err := s.Delete(context.Background(), l.ID, "snap-00000001")
	if err != nil {
		t.Fatal(err)
	}
	if gc.Removed != 3 || gc.Snapshots != 1 || gc.Kept != 128 {
		t.Fatalf("deleting the first snapshot: %+v; want its 3 replaced chunks removed, 128 kept", gc)
	}
	if restoreHash(t, s, l, "snap-00000002", volSize) != want {
		t.Fatal("the second snapshot does not restore what the volume held")
	}
	if _, err := s.Delete(context.Background(), l.ID, "snap-00000001"); err != nil {
		t.Fatalf("deleting again: %v", err)
	}
	if _, err := s.Delete(context.Background(), l.ID, "snap-00000002"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.lineageDir(l.ID)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a lineage with no snapshots left is still there: %v", err)
	}
}

// TestGCRemovesUnreferencedOnly: a deleted middle snapshot's chunks that an
// earlier and a later one share stay; garbage (a stray chunk, temporary
// files) goes.
func TestGCRemovesUnreferencedOnly(t *testing.T) {
	s, l := testStore(t), newLineage(t, false)
	f := sparseFile(t, 16<<20)
	writeAt(t, f, 0, random(16<<20))
	take(t, s, l, "snap-00000001", f)
	writeAt(t, f, 0, random(ChunkSize)) // chunk 0 only in 2
	take(t, s, l, "snap-00000002", f)
	writeAt(t, f, 0, random(ChunkSize)) // chunk 0 of 3
	take(t, s, l, "snap-00000003", f)
	stray := Addr{1, 2, 3}
	if err := s.writeChunk(l.ID, stray, []byte("garbage")); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(s.chunkDir(l.ID), "00", ".tmp-0123")
	os.MkdirAll(filepath.Dir(tmp), 0o700)
	os.WriteFile(tmp, []byte("half a chunk"), 0o600)
	gc, err := s.GC(context.Background(), l.ID)
	if err != nil {
		t.Fatal(err)
	}
	if gc.Removed != 2 || gc.Kept != 34 {
		t.Fatalf("GC: %+v; want the stray chunk and the temporary file removed, 34 chunks kept", gc)
	}
	if gc, err = s.Delete(context.Background(), l.ID, "snap-00000002"); err != nil || gc.Removed != 1 || gc.Kept != 33 {
		t.Fatalf("deleting the middle snapshot: %+v, %v; want its own chunk 0 removed", gc, err)
	}
	for _, id := range []string{"snap-00000001", "snap-00000003"} {
		dst := sparseFile(t, 16<<20)
		if _, err := s.Restore(context.Background(), l, id, dst, Options{}); err != nil {
			t.Fatalf("%s after the middle one was deleted: %v", id, err)
		}
	}
}

// allocated is the disk space a file takes.
func allocated(t *testing.T, f *os.File) int64 {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512
}

// TestCrashBeforeManifest: a Take that ends between its chunks and its
// manifest (as a crash would) leaves garbage only; a chunk file that a
// crash left short is written again by the next Take, which restores
// whole; GC then removes what no manifest names.
func TestCrashBeforeManifest(t *testing.T) {
	s, l := testStore(t), newLineage(t, true)
	f := sparseFile(t, 16<<20)
	writeAt(t, f, 0, random(16<<20))
	take(t, s, l, "snap-00000001", f)
	writeAt(t, f, 0, random(4*ChunkSize))
	crashed := errors.New("crash")
	crashBeforeManifest = func() error { return crashed }
	_, err := s.Take(context.Background(), l, "snap-00000002", Source{File: f, Size: 16 << 20}, Options{})
	crashBeforeManifest = nil
	if !errors.Is(err, crashed) {
		t.Fatalf("take: %v", err)
	}
	if _, err := s.Manifest(l.ID, "snap-00000002"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the crashed snapshot has a manifest: %v", err)
	}
	// The crash also left one of those chunks empty, as a rename that
	// reached the disk before the file's data does.
	m1, _ := s.Manifest(l.ID, "snap-00000001")
	entries, _ := filepath.Glob(filepath.Join(s.chunkDir(l.ID), "*", "*"))
	var short string
	for _, e := range entries {
		var a Addr
		if a.UnmarshalText([]byte(filepath.Base(e))) == nil && !refers(m1, a) {
			short = e
			break
		}
	}
	if short == "" || os.Truncate(short, 0) != nil {
		t.Fatal("no chunk of the crashed snapshot to damage")
	}
	s.Close()
	s, err = Open(Config{Dir: s.dir, Log: testLog(t)}) // the restart
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	st := take(t, s, l, "snap-00000002", f)
	if st.NewChunks != 1 {
		t.Fatalf("the snapshot after the crash stored %d chunks; want the 1 damaged one again", st.NewChunks)
	}
	if restoreHash(t, s, l, "snap-00000002", 16<<20) != fileHash(t, f) {
		t.Fatal("the snapshot after the crash does not restore the volume")
	}
	// Garbage of a crash that no later snapshot reused.
	writeAt(t, f, 0, random(ChunkSize))
	crashBeforeManifest = func() error { return crashed }
	s.Take(context.Background(), l, "snap-00000003", Source{File: f, Size: 16 << 20}, Options{})
	crashBeforeManifest = nil
	gc, err := s.GC(context.Background(), l.ID)
	if err != nil || gc.Removed != 1 || gc.Snapshots != 2 {
		t.Fatalf("GC after a crash: %+v, %v; want the one orphan chunk removed", gc, err)
	}
	for _, id := range []string{"snap-00000001", "snap-00000002"} {
		if _, err := s.Restore(context.Background(), l, id, sparseFile(t, 16<<20), Options{}); err != nil {
			t.Fatalf("%s after GC: %v", id, err)
		}
	}
}

func refers(m Manifest, a Addr) bool {
	for _, r := range m.Chunks {
		if r.Addr == a {
			return true
		}
	}
	return false
}

// TestEncryptedChunksHidePlaintext: a marker the volume holds is nowhere
// in an encrypted lineage's files, and is in an unencrypted one's.
func TestEncryptedChunksHidePlaintext(t *testing.T) {
	marker := []byte("nubo-snapshot-marker-" + string(hexs(random(8))))
	f := sparseFile(t, 8<<20)
	for off := int64(0); off < 8<<20; off += 64 << 10 {
		writeAt(t, f, off, marker)
	}
	for _, encrypted := range []bool{true, false} {
		s, l := testStore(t), newLineage(t, encrypted)
		take(t, s, l, "snap-00000001", f)
		found := filesContaining(t, s.dir, marker)
		if encrypted && len(found) > 0 {
			t.Fatalf("encrypted lineage: plaintext marker in %v", found)
		}
		if !encrypted && len(found) == 0 {
			t.Fatal("unencrypted lineage: the marker is nowhere (the search is broken)")
		}
	}
}

func filesContaining(t *testing.T, dir string, marker []byte) []string {
	var found []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if b, _ := os.ReadFile(p); bytes.Contains(b, marker) {
				found = append(found, p)
			}
		}
		return nil
	})
	return found
}

// TestCopy: a copy within the lineage shares every chunk; a copy to
// another key re-encrypts (nothing shared), and both restore the source.
func TestCopy(t *testing.T) {
	s, l := testStore(t), newLineage(t, false)
	f := sparseFile(t, 16<<20)
	writeAt(t, f, 0, random(8<<20))
	take(t, s, l, "snap-00000001", f)
	want := fileHash(t, f)
	before := usage(t, s, l)
	st, err := s.Copy(context.Background(), l, "snap-00000001", l, "snap-00000002", Options{})
	if err != nil || st.NewChunks != 0 || usage(t, s, l) != before {
		t.Fatalf("copy in the lineage: %+v, %v; stored %d more bytes", st, err, usage(t, s, l)-before)
	}
	enc := newLineage(t, true)
	st, err = s.Copy(context.Background(), l, "snap-00000002", enc, "snap-00000003", Options{})
	if err != nil || st.NewChunks != 16 {
		t.Fatalf("copy to an encrypted lineage: %+v, %v", st, err)
	}
	m, _ := s.Manifest(enc.ID, "snap-00000003")
	if !m.Encrypted {
		t.Fatal("the encrypted copy's manifest says unencrypted")
	}
	if _, err := s.Delete(context.Background(), l.ID, "snap-00000001"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		l  Lineage
		id string
	}{{l, "snap-00000002"}, {enc, "snap-00000003"}} {
		if restoreHash(t, s, c.l, c.id, 16<<20) != want {
			t.Fatalf("%s does not restore the source", c.id)
		}
	}
}

func TestInvalid(t *testing.T) {
	s, l := testStore(t), newLineage(t, false)
	f := sparseFile(t, 1<<20)
	for _, c := range []struct {
		l  Lineage
		id string
	}{{l, "../snap-00000001"}, {l, "snap-0000000g"}, {Lineage{ID: "../x"}, "snap-00000001"}, {Lineage{ID: l.ID, Key: []byte{1}}, "snap-00000001"}} {
		if _, err := s.Take(context.Background(), c.l, c.id, Source{File: f, Size: 1 << 20}, Options{}); !errors.Is(err, ErrInvalid) {
			t.Errorf("Take(%q, %q): %v", c.l.ID, c.id, err)
		}
	}
	if _, err := Open(Config{Dir: s.dir}); err == nil {
		t.Fatal("a second store opened the same directory")
	}
}

// TestFreezerFiles drives the freezer over plain files (the kernel's
// answers are pool_test.go's): a freeze writes FROZEN and its thaw THAWED,
// an instance with no cgroup is ErrNoCgroup, ThawAll thaws what a crash
// left frozen among the instances it is given.
func TestFreezerFiles(t *testing.T) {
	root := t.TempDir()
	for id, st := range map[string]string{"i-1": "THAWED", "i-2": "FROZEN", "i-3": "FROZEN"} {
		os.Mkdir(filepath.Join(root, id), 0o700)
		os.WriteFile(filepath.Join(root, id, "freezer.state"), []byte(st), 0o600)
	}
	state := func(id string) string {
		b, _ := os.ReadFile(filepath.Join(root, id, "freezer.state"))
		return string(b)
	}
	f := &Freezer{Root: root}
	z, err := f.Freeze(context.Background(), "i-1", nil)
	if err != nil || state("i-1") != "FROZEN" {
		t.Fatalf("freeze: %v, state %q", err, state("i-1"))
	}
	if err := z.Thaw(); err != nil || state("i-1") != "THAWED" || z.Took() <= 0 {
		t.Fatalf("thaw: %v, state %q, took %v", err, state("i-1"), z.Took())
	}
	if _, err := f.Freeze(context.Background(), "i-9", nil); !errors.Is(err, ErrNoCgroup) {
		t.Fatalf("freezing an instance with no cgroup: %v", err)
	}
	if err := f.ThawAll([]string{"i-1", "i-2", "i-9"}); err != nil {
		t.Fatal(err)
	}
	if state("i-2") != "THAWED" || state("i-3") != "FROZEN" {
		t.Fatalf("after ThawAll(i-1, i-2): i-2 %q, i-3 %q (not ours to thaw)", state("i-2"), state("i-3"))
	}
}

// TestPrime: a first snapshot's chunks stored ahead leave its Take only
// what changed since; primed chunks no snapshot names are garbage.
func TestPrime(t *testing.T) {
	s, l := testStore(t), newLineage(t, true)
	f := sparseFile(t, 16<<20)
	writeAt(t, f, 0, random(16<<20))
	src := Source{File: f, Size: 16 << 20}
	if st, err := s.Prime(context.Background(), l, src); err != nil || st.NewChunks != 32 {
		t.Fatalf("prime: %+v, %v", st, err)
	}
	if _, err := s.Manifest(l.ID, "snap-00000001"); !errors.Is(err, ErrNotFound) {
		t.Fatal("Prime wrote a manifest")
	}
	writeAt(t, f, 5*ChunkSize, random(100))
	if st := take(t, s, l, "snap-00000001", f); st.NewChunks != 1 {
		t.Fatalf("take after prime stored %d chunks; want the 1 changed since", st.NewChunks)
	}
	if restoreHash(t, s, l, "snap-00000001", 16<<20) != fileHash(t, f) {
		t.Fatal("a primed snapshot does not restore")
	}
	if gc, err := s.GC(context.Background(), l.ID); err != nil || gc.Removed != 1 {
		t.Fatalf("GC after prime: %+v, %v; want the 1 replaced chunk removed", gc, err)
	}
}
