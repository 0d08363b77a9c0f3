// Package store keeps nubo's state in etcd v3, embedded or external.
//
// Schema (every value JSON; <scope> is <account>/<region>):
//
//	/nubo/v1/res/<scope>/<kind>/<id>     one resource record (package resource)
//	/nubo/v1/name/<scope>/<kind>/<name>  the id owning a unique name, written in
//	                                     the same transaction as the record
//
// Writes that must be atomic go through Txn-based helpers: Create fails when a
// key exists, Update is compare-and-swap on the record's mod revision.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Root is the prefix of every key nubo writes.
const Root = "/nubo/v1/"

var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
	ErrConflict = errors.New("concurrent update")
)

// Store is nubo's view of etcd.
type Store struct {
	cli *clientv3.Client
}

// Connect opens a client to the given etcd endpoints.
func Connect(ctx context.Context, endpoints []string) (*Store, error) {
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 10 * time.Second,
		Context:     ctx,
		Logger:      nopLogger(),
	})
	if err != nil {
		return nil, fmt.Errorf("connecting to etcd %v: %w", endpoints, err)
	}
	s := &Store{cli: cli}
	// The client dials lazily; fail now if the cluster is unreachable.
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := cli.Get(sctx, Root+"ping"); err != nil {
		cli.Close()
		return nil, fmt.Errorf("reaching etcd %v: %w", endpoints, err)
	}
	return s, nil
}

// Close releases the client.
func (s *Store) Close() error { return s.cli.Close() }

// Client exposes the etcd client for watches and leases (controllers, agents).
func (s *Store) Client() *clientv3.Client { return s.cli }

// KV is one stored record.
type KV struct {
	Key    string
	Value  []byte
	ModRev int64
}

// Get reads key into v and returns its mod revision.
func (s *Store) Get(ctx context.Context, key string, v any) (int64, error) {
	resp, err := s.cli.Get(ctx, key)
	if err != nil {
		return 0, fmt.Errorf("reading %s: %w", key, err)
	}
	if len(resp.Kvs) == 0 {
		return 0, ErrNotFound
	}
	kv := resp.Kvs[0]
	if err := json.Unmarshal(kv.Value, v); err != nil {
		return 0, fmt.Errorf("decoding %s: %w", key, err)
	}
	return kv.ModRevision, nil
}

// List returns every record under prefix, in key order.
func (s *Store) List(ctx context.Context, prefix string) ([]KV, error) {
	resp, err := s.cli.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", prefix, err)
	}
	out := make([]KV, len(resp.Kvs))
	for i, kv := range resp.Kvs {
		out[i] = KV{Key: string(kv.Key), Value: kv.Value, ModRev: kv.ModRevision}
	}
	return out, nil
}

// Create writes every key in one transaction, only if none of them exists;
// otherwise it writes nothing and returns ErrExists.
func (s *Store) Create(ctx context.Context, kvs map[string]any) error {
	var cmps []clientv3.Cmp
	var ops []clientv3.Op
	for k, v := range kvs {
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("encoding %s: %w", k, err)
		}
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(k), "=", 0))
		ops = append(ops, clientv3.OpPut(k, string(b)))
	}
	resp, err := s.cli.Txn(ctx).If(cmps...).Then(ops...).Commit()
	if err != nil {
		return fmt.Errorf("creating records: %w", err)
	}
	if !resp.Succeeded {
		return ErrExists
	}
	return nil
}

// Update reads key, calls mutate on a fresh copy, and writes it back only if
// the record did not change meanwhile, retrying on conflict. mutate may return
// an error to abort without writing.
func Update[T any](ctx context.Context, s *Store, key string, mutate func(*T) error) (T, error) {
	for attempt := 0; ; attempt++ {
		var v T
		rev, err := s.Get(ctx, key, &v)
		if err != nil {
			return v, err
		}
		if err := mutate(&v); err != nil {
			return v, err
		}
		b, err := json.Marshal(v)
		if err != nil {
			return v, fmt.Errorf("encoding %s: %w", key, err)
		}
		resp, err := s.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).
			Then(clientv3.OpPut(key, string(b))).Commit()
		if err != nil {
			return v, fmt.Errorf("updating %s: %w", key, err)
		}
		if resp.Succeeded {
			return v, nil
		}
		if attempt == 50 {
			return v, fmt.Errorf("updating %s: %w", key, ErrConflict)
		}
	}
}

// Delete removes keys in one transaction, only if the first one exists
// (ErrNotFound otherwise).
func (s *Store) Delete(ctx context.Context, keys ...string) error {
	ops := make([]clientv3.Op, len(keys))
	for i, k := range keys {
		ops[i] = clientv3.OpDelete(k)
	}
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(keys[0]), ">", 0)).
		Then(ops...).Commit()
	if err != nil {
		return fmt.Errorf("deleting %s: %w", keys[0], err)
	}
	if !resp.Succeeded {
		return ErrNotFound
	}
	return nil
}

// Op is one write of an atomic Apply.
type Op struct {
	Key    string
	Value  any   // written as JSON; ignored when Delete
	ModRev int64 // the key's mod revision it must still have; 0: it must not exist; -1: no condition
	Delete bool
	Check  bool // only the condition: write nothing
	// Prefix (with Check): no key under Key was created or changed after
	// revision ModRev (the newest mod revision a listing of it returned).
	Prefix bool
}

// Apply performs ops in one transaction if every condition holds, and
// otherwise writes nothing and returns ErrConflict.
func (s *Store) Apply(ctx context.Context, ops ...Op) error {
	var cmps []clientv3.Cmp
	var puts []clientv3.Op
	for _, op := range ops {
		switch {
		case op.Prefix:
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(op.Key), "<", op.ModRev+1).WithPrefix())
		case op.ModRev == 0:
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(op.Key), "=", 0))
		case op.ModRev > 0:
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(op.Key), "=", op.ModRev))
		}
		if op.Check {
			continue
		}
		if op.Delete {
			puts = append(puts, clientv3.OpDelete(op.Key))
			continue
		}
		b, err := json.Marshal(op.Value)
		if err != nil {
			return fmt.Errorf("encoding %s: %w", op.Key, err)
		}
		puts = append(puts, clientv3.OpPut(op.Key, string(b)))
	}
	resp, err := s.cli.Txn(ctx).If(cmps...).Then(puts...).Commit()
	if err != nil {
		return fmt.Errorf("applying %d writes: %w", len(ops), err)
	}
	if !resp.Succeeded {
		return ErrConflict
	}
	return nil
}

// GetRev reads key into v like Get, but reports an absent key as revision 0
// with no error, ready for an Apply that creates it.
func (s *Store) GetRev(ctx context.Context, key string, v any) (int64, error) {
	rev, err := s.Get(ctx, key, v)
	if errors.Is(err, ErrNotFound) {
		return 0, nil
	}
	return rev, err
}
