package agent

import (
	"encoding/json"
	"fmt"
	"sync"

	"nubo/internal/store"
)

// decoded keeps records decoded from the store by key and mod revision,
// so that a pass over many records (a VPC's firewall: every group and
// instance of the account) decodes only those that changed since the last.
type decoded[T any] struct {
	mu sync.Mutex
	m  map[string]map[string]revValue[T] // list prefix → key → value
}

type revValue[T any] struct {
	rev int64
	v   T
}

// list reads every record under prefix, decoding only what changed.
// Values are shared between calls: callers must not modify them.
func (d *decoded[T]) list(kvs []store.KV, prefix string) ([]T, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.m == nil {
		d.m = map[string]map[string]revValue[T]{}
	}
	have := d.m[prefix]
	next := make(map[string]revValue[T], len(kvs))
	out := make([]T, 0, len(kvs))
	for _, kv := range kvs {
		e, ok := have[kv.Key]
		if !ok || e.rev != kv.ModRev {
			e = revValue[T]{rev: kv.ModRev}
			if err := json.Unmarshal(kv.Value, &e.v); err != nil {
				return nil, fmt.Errorf("decoding %s: %w", kv.Key, err)
			}
		}
		next[kv.Key] = e
		out = append(out, e.v)
	}
	d.m[prefix] = next
	return out, nil
}
