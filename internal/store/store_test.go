package store

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// open starts an embedded etcd in dir and connects to it.
func open(t *testing.T, dir string) (*Store, func()) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	e, err := StartEmbedded(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Connect(ctx, []string{e.Endpoint})
	if err != nil {
		e.Close()
		t.Fatal(err)
	}
	return s, func() { s.Close(); e.Close() }
}

type rec struct {
	N    int               `json:"n"`
	Tags map[string]string `json:"tags,omitempty"`
}

func TestCreateIsAllOrNothing(t *testing.T) {
	s, done := open(t, t.TempDir())
	defer done()
	ctx := context.Background()
	if err := s.Create(ctx, map[string]any{Root + "a": rec{N: 1}, Root + "name/a": "a"}); err != nil {
		t.Fatal(err)
	}
	// One key exists: nothing of the second create may be written.
	err := s.Create(ctx, map[string]any{Root + "b": rec{N: 2}, Root + "name/a": "b"})
	if !errors.Is(err, ErrExists) {
		t.Fatalf("want ErrExists, got %v", err)
	}
	var r rec
	if _, err := s.Get(ctx, Root+"b", &r); !errors.Is(err, ErrNotFound) {
		t.Fatalf("half a failed create was written: %v %+v", err, r)
	}
	var owner string
	if _, err := s.Get(ctx, Root+"name/a", &owner); err != nil || owner != "a" {
		t.Fatalf("name index %q %v", owner, err)
	}
}

func TestUpdateIsCompareAndSwap(t *testing.T) {
	s, done := open(t, t.TempDir())
	defer done()
	ctx := context.Background()
	key := Root + "counter"
	if err := s.Create(ctx, map[string]any{key: rec{Tags: map[string]string{"a": "1"}}}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				if _, err := Update(ctx, s, key, func(r *rec) error { r.N++; return nil }); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	var r rec
	if _, err := s.Get(ctx, key, &r); err != nil || r.N != 80 {
		t.Fatalf("lost updates: n=%d (%v)", r.N, err)
	}
	// Each attempt starts from a fresh value: a deleted map entry stays deleted.
	if _, err := Update(ctx, s, key, func(r *rec) error { delete(r.Tags, "a"); return nil }); err != nil {
		t.Fatal(err)
	}
	r = rec{}
	if _, err := s.Get(ctx, key, &r); err != nil || len(r.Tags) != 0 {
		t.Fatalf("tags %v (%v)", r.Tags, err)
	}
	// An aborted update writes nothing.
	boom := errors.New("boom")
	if _, err := Update(ctx, s, key, func(r *rec) error { r.N = -1; return boom }); !errors.Is(err, boom) {
		t.Fatalf("want boom, got %v", err)
	}
	if _, err := s.Get(ctx, key, &r); err != nil || r.N != 80 {
		t.Fatalf("aborted update wrote: %+v", r)
	}
	if _, err := Update(ctx, s, Root+"missing", func(r *rec) error { return nil }); !errors.Is(err, ErrNotFound) {
		t.Fatalf("update of a missing key: %v", err)
	}
}

func TestListAndDelete(t *testing.T) {
	s, done := open(t, t.TempDir())
	defer done()
	ctx := context.Background()
	for _, k := range []string{"c", "a", "b"} {
		if err := s.Create(ctx, map[string]any{Root + "l/" + k: rec{}}); err != nil {
			t.Fatal(err)
		}
	}
	kvs, err := s.List(ctx, Root+"l/")
	if err != nil || len(kvs) != 3 || kvs[0].Key != Root+"l/a" || kvs[2].Key != Root+"l/c" {
		t.Fatalf("list: %v %+v", err, kvs)
	}
	if err := s.Delete(ctx, Root+"l/a", Root+"l/b"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, Root+"l/a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	kvs, _ = s.List(ctx, Root+"l/")
	if len(kvs) != 1 {
		t.Fatalf("after delete: %+v", kvs)
	}
}

// TestEmbeddedKeepsDataAcrossRestart: the embedded etcd's data survives a
// stop and start in the same directory.
func TestEmbeddedKeepsDataAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	s, done := open(t, dir)
	if err := s.Create(context.Background(), map[string]any{Root + "kept": rec{N: 7}}); err != nil {
		t.Fatal(err)
	}
	done()
	s, done = open(t, dir)
	defer done()
	var r rec
	if _, err := s.Get(context.Background(), Root+"kept", &r); err != nil || r.N != 7 {
		t.Fatalf("after restart: %+v %v", r, err)
	}
}

// A prefix check fails once any key under the prefix changed or appeared
// after the listing it was taken from, and holds otherwise (also for an
// empty prefix).
func TestPrefixCheck(t *testing.T) {
	s, done := open(t, t.TempDir())
	defer done()
	ctx := context.Background()
	p := Root + "things/"
	newest := func() int64 {
		kvs, err := s.List(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		var m int64
		for _, kv := range kvs {
			m = max(m, kv.ModRev)
		}
		return m
	}
	check := func(rev int64) error {
		return s.Apply(ctx, Op{Key: p, ModRev: rev, Check: true, Prefix: true}, Op{Key: Root + "out", Value: 1, ModRev: -1})
	}
	if err := check(newest()); err != nil {
		t.Fatalf("empty prefix: %v", err)
	}
	if err := s.Apply(ctx, Op{Key: p + "a", Value: rec{N: 1}, ModRev: 0}); err != nil {
		t.Fatal(err)
	}
	rev := newest()
	if err := check(rev); err != nil {
		t.Fatalf("nothing changed: %v", err)
	}
	if err := s.Apply(ctx, Op{Key: p + "b", Value: rec{N: 2}, ModRev: 0}); err != nil {
		t.Fatal(err)
	}
	if err := check(rev); !errors.Is(err, ErrConflict) {
		t.Fatalf("a key appeared: %v, want ErrConflict", err)
	}
}
