// Package storetest gives tests a real store: an embedded single-member
// etcd in the test's temporary directory, closed at the test's end.
package storetest

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"nubo/internal/store"
)

// New starts an embedded etcd and connects to it.
func New(t testing.TB) *store.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e, err := store.StartEmbedded(ctx, filepath.Join(t.TempDir(), "etcd"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Connect(ctx, []string{e.Endpoint})
	if err != nil {
		e.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close(); e.Close() })
	return st
}
