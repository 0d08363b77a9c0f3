package topology

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"nubo/internal/store"
)

// Register records the hosts machine serves in region: the layout's, each
// keeping its failure if one was declared; hosts of the machine no longer
// in the layout are deleted when empty and retired otherwise (their
// instances keep running, and take no new ones).
func Register(ctx context.Context, st *store.Store, region, machine string, l Layout) ([]Host, error) {
	v, err := Read(ctx, st)
	if err != nil {
		return nil, err
	}
	want := l.Hosts(region, machine)
	in := map[string]bool{}
	var ops []store.Op
	for i, h := range want {
		in[h.ID] = true
		if old, ok := v.Host(h.ID); ok {
			want[i].Failed = old.Failed
		}
		ops = append(ops, store.Op{Key: HostKey(h.ID), Value: want[i], ModRev: -1})
	}
	for _, h := range v.Hosts {
		if h.Machine != machine || in[h.ID] || h.Region != region {
			continue
		}
		if len(v.Alloc[h.ID].Instances) == 0 {
			ops = append(ops, store.Op{Key: HostKey(h.ID), Delete: true, ModRev: -1},
				store.Op{Key: AllocationKey(h.ID), Delete: true, ModRev: -1})
		} else if !h.Retired {
			h.Retired = true
			ops = append(ops, store.Op{Key: HostKey(h.ID), Value: h, ModRev: -1})
		}
	}
	// etcd caps a transaction's operations (128 by default): write in chunks.
	for len(ops) > 0 {
		n := min(len(ops), 100)
		if err := st.Apply(ctx, ops[:n]...); err != nil {
			return nil, fmt.Errorf("registering the hosts of %s: %w", machine, err)
		}
		ops = ops[n:]
	}
	return want, nil
}

// Live writes machine's live key under an etcd lease and keeps it alive
// until stop (or ctx's end), when the lease is revoked: while it holds, the
// machine's hosts are up. A lost lease (etcd unreachable longer than ttl)
// is granted again. It returns once the key is first written.
func Live(ctx context.Context, st *store.Store, machine string, ttl time.Duration, log *slog.Logger) (stop func(), err error) {
	cli := st.Client()
	ctx, cancel := context.WithCancel(ctx)
	ch, revoke, err := lease(ctx, cli, machine, ttl)
	if err != nil {
		cancel()
		return nil, err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			for range ch {
			}
			revoke()
			if ctx.Err() != nil {
				return
			}
			log.Warn("liveness lease lost; granting another", "machine", machine)
			for {
				select {
				case <-ctx.Done():
					return
				case <-time.After(time.Second):
				}
				if ch, revoke, err = lease(ctx, cli, machine, ttl); err == nil {
					break
				}
			}
		}
	}()
	return func() { cancel(); <-done }, nil
}

// lease grants a lease, writes the live key under it and keeps it alive.
func lease(ctx context.Context, cli *clientv3.Client, machine string, ttl time.Duration) (<-chan *clientv3.LeaseKeepAliveResponse, func(), error) {
	l, err := cli.Grant(ctx, int64(ttl/time.Second))
	if err != nil {
		return nil, nil, fmt.Errorf("granting a lease: %w", err)
	}
	revoke := func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_, _ = cli.Revoke(rctx, l.ID)
	}
	if _, err := cli.Put(ctx, LiveKey(machine), time.Now().UTC().Format(time.RFC3339), clientv3.WithLease(l.ID)); err != nil {
		revoke()
		return nil, nil, fmt.Errorf("writing %s: %w", LiveKey(machine), err)
	}
	ch, err := cli.KeepAlive(ctx, l.ID)
	if err != nil {
		revoke()
		return nil, nil, fmt.Errorf("keeping the lease alive: %w", err)
	}
	return ch, revoke, nil
}
