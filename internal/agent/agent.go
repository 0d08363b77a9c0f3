// Package agent is the host agent: it watches the store for the instances
// placed on its host and makes them so with the instance runtime and root
// volumes, then writes back what it observes. Every reconcile reads the
// current state and measures before it acts, so repeating one (after a crash,
// a restart, or a duplicate event) is harmless.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"nubo/internal/ami"
	"nubo/internal/eni"
	"nubo/internal/instance"
	"nubo/internal/network"
	"nubo/internal/runtime"
	"nubo/internal/secgroup"
	"nubo/internal/snapstore"
	"nubo/internal/store"
	"nubo/internal/volume"
	"nubo/internal/vpc"
)

// Agent reconciles one host.
type Agent struct {
	Store   *store.Store
	Host    string
	Runtime runtime.Driver
	Network network.Driver
	Roots   RootVolumes
	// Blocks keeps this host's block volumes and Keys unwraps their data
	// keys; nil Blocks: the host has no EBS block storage.
	Blocks Blocks
	Keys   Keys
	// Snapshots keeps this host's EBS snapshots (nil: none here); Freezer
	// holds a running instance still while its volumes are read.
	Snapshots *snapstore.Store
	Freezer   Freezer
	Images    *ami.Registry
	VPCs      *vpc.Service
	// ImageRoot returns the local root filesystem directory of an image.
	ImageRoot func(im ami.Image) string
	Dir       string // per-instance state: DATA/instances
	Log       *slog.Logger
	// Ready reports whether an instance's init is up; default: its console
	// shows ReadyMarker.
	Ready func(id string) bool

	Workers       int           // concurrent reconciles (default 8)
	Resync        time.Duration // full pass interval (default 5s)
	StopGrace     time.Duration // SIGTERM → SIGKILL (default 10s)
	TerminatedTTL time.Duration // how long terminated instances stay visible (default 1h)
	Now           func() time.Time

	queue *queue
	wg    sync.WaitGroup
	snaps snapWork

	mu      sync.Mutex
	checked map[string]time.Time // when a booting instance's runtime state was last read
	public  map[string]string    // the public address the data plane maps for each instance
	// eniPublic: Elastic IP → "<vpc> <private>" the data plane maps it to,
	// for those associated with a network interface's address.
	eniPublic map[string]string
	// eniApplied: interface record key → the revision made real on its
	// running instance (interfaces.go).
	eniApplied map[string]int64
	subnets    map[string]bool // whether the data plane has each subnet public, as this process set it

	firewalls map[string]bool        // fwKey → the VPC has ports here (this process set its firewall)
	fwLocks   map[string]*sync.Mutex // one firewall sync per VPC at a time
	fwSeq     atomic.Int64           // orders firewall sync calls and starts
	fwDone    map[string]int64       // fwKey → start of the last sync that succeeded
	groups    decoded[secgroup.Group]
	instances decoded[instance.Instance]
	enis      decoded[eni.Interface]
}

// RootVolumes mounts instances' root volumes (volume.Roots on a real host).
type RootVolumes interface {
	Mount(id, image, target string, base uint32) error
	Unmount(target string) error
	Delete(id string) error
}

var _ RootVolumes = volume.Roots{}

// Run reconciles until ctx ends.
func (a *Agent) Run(ctx context.Context) error {
	a.defaults()
	if err := a.Network.EnsureHost(ctx); err != nil {
		return fmt.Errorf("the host's network: %w", err)
	}
	a.queue = newQueue()
	for i := 0; i < a.Workers; i++ {
		a.wg.Add(1)
		go a.worker(ctx)
	}
	defer func() { a.queue.close(); a.wg.Wait() }()
	a.startSnapshots(ctx)

	rev, err := a.resync(ctx)
	if err != nil {
		return err
	}
	watch := a.Store.Client().Watch(clientv3.WithRequireLeader(ctx), instance.AllPrefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1))
	tick := time.NewTicker(a.Resync)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			if _, err := a.resync(ctx); err != nil && ctx.Err() == nil {
				a.Log.Warn("resync", "err", err)
			}
		case resp, ok := <-watch:
			if !ok || resp.Err() != nil {
				if ctx.Err() != nil {
					return nil
				}
				// Compacted or lost: resync and watch again from now.
				rev, err := a.resync(ctx)
				if err != nil {
					a.Log.Warn("resync after watch loss", "err", err)
					time.Sleep(time.Second)
				}
				watch = a.Store.Client().Watch(clientv3.WithRequireLeader(ctx), instance.AllPrefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1))
				continue
			}
			for _, ev := range resp.Events {
				k := string(ev.Kv.Key)
				if isInstanceKey(k) || isVolumeKey(k) || isSnapshotKey(k) || isInterfaceKey(k) || isEIPKey(k) {
					a.queue.add(k)
				}
				if isInstanceKey(k) || isInterfaceKey(k) || strings.Contains(k, "/security-group/") {
					a.firewallEvent(k, ev.Kv.Value)
				}
			}
		}
	}
}

func (a *Agent) defaults() {
	if a.Workers == 0 {
		a.Workers = 8
	}
	if a.Resync == 0 {
		a.Resync = 5 * time.Second
	}
	if a.StopGrace == 0 {
		a.StopGrace = 10 * time.Second
	}
	if a.TerminatedTTL == 0 {
		a.TerminatedTTL = time.Hour
	}
	if a.Now == nil {
		a.Now = time.Now
	}
	if a.Ready == nil {
		a.Ready = a.consoleReady
	}
}

// resync queues every instance key, and every runtime instance without a
// record (to clean it up). It returns the store revision it read at.
func (a *Agent) resync(ctx context.Context) (int64, error) {
	resp, err := a.Store.Client().Get(ctx, instance.AllPrefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return 0, err
	}
	known := map[string]bool{}
	for _, kv := range resp.Kvs {
		if k := string(kv.Key); isInstanceKey(k) {
			known[k[strings.LastIndex(k, "/")+1:]] = true
			a.queue.add(k)
		} else if isVolumeKey(k) || isSnapshotKey(k) || isInterfaceKey(k) || isEIPKey(k) {
			a.queue.add(k)
		}
	}
	a.mu.Lock()
	for k, ports := range a.firewalls {
		if ports {
			a.queue.add(k)
		}
	}
	a.mu.Unlock()
	ids, err := a.Runtime.List(ctx)
	if err != nil {
		return 0, err
	}
	for _, id := range ids {
		if !known[id] {
			a.queue.add(orphanKey + id)
		}
	}
	return resp.Header.Revision, nil
}

const orphanKey = "orphan:"

func isInstanceKey(k string) bool { return strings.Contains(k, "/instance/") }

func (a *Agent) worker(ctx context.Context) {
	defer a.wg.Done()
	for {
		key, ok := a.queue.get()
		if !ok {
			return
		}
		err := a.reconcileKey(ctx, key)
		a.queue.done(key)
		if err != nil && ctx.Err() == nil {
			a.Log.Warn("reconcile", "key", key, "err", err)
			// Retry later; the resync would too, but sooner is kinder.
			go func() {
				select {
				case <-time.After(time.Second):
					a.queue.add(key)
				case <-ctx.Done():
				}
			}()
		}
	}
}

func (a *Agent) reconcileKey(ctx context.Context, key string) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = errors.New("panic in reconcile: " + strings.TrimSpace(strings.SplitN(stack(p), "\n", 2)[0]))
		}
	}()
	if id, ok := strings.CutPrefix(key, orphanKey); ok {
		return a.removeOrphan(ctx, id)
	}
	if account, region, vpcID, ok := parseFWKey(key); ok {
		return a.syncFirewall(ctx, account, region, vpcID)
	}
	if isVolumeKey(key) {
		return a.reconcileVolume(ctx, key)
	}
	if isSnapshotKey(key) {
		return a.reconcileSnapshot(ctx, key)
	}
	if isInterfaceKey(key) {
		return a.reconcileInterface(ctx, key)
	}
	if isEIPKey(key) {
		return a.reconcileEIP(ctx, key)
	}
	var in instance.Instance
	rev, err := a.Store.Get(ctx, key, &in)
	if errors.Is(err, store.ErrNotFound) {
		return a.removeOrphan(ctx, key[strings.LastIndex(key, "/")+1:])
	}
	if err != nil || in.MachineName() != a.Host {
		return err
	}
	return a.reconcile(ctx, key, rev, in)
}
