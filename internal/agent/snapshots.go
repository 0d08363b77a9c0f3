package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"nubo/internal/blockstore"
	"nubo/internal/resource"
	"nubo/internal/runtime"
	"nubo/internal/snapshot"
	"nubo/internal/snapstore"
	"nubo/internal/store"
	"nubo/internal/volume"
)

// VolumeFiles opens block volumes' files on the host: snapshots read them,
// restores fill them (a blockstore.Store).
type VolumeFiles interface {
	OpenFile(ctx context.Context, id string, flag int) (*os.File, error)
	Device(ctx context.Context, id string) (blockstore.Device, bool, error)
}

var _ VolumeFiles = (*blockstore.Store)(nil)

// Freezer holds a running instance still while its volumes are read (a
// snapstore.Freezer); nil: snapshots of volumes in use are not
// point-in-time.
type Freezer interface {
	Freeze(ctx context.Context, id string, devs []uint64) (*snapstore.Frozen, error)
	ThawAll(ids []string) error
}

var _ Freezer = (*snapstore.Freezer)(nil)

// snapWork is the agent's own state for snapshots.
type snapWork struct {
	once   sync.Once
	slots  chan struct{} // takes, copies and restores at once
	mu     sync.Mutex
	groups map[string]*sync.Mutex // one take of a CreateSnapshots group at a time
}

// maxSnapshotJobs bounds the snapshots taken or copied at once: each reads
// or writes a whole volume.
const maxSnapshotJobs = 2

func (a *Agent) snapState() *snapWork {
	a.snaps.once.Do(func() {
		a.snaps.slots = make(chan struct{}, maxSnapshotJobs)
		a.snaps.groups = map[string]*sync.Mutex{}
	})
	return &a.snaps
}

func isSnapshotKey(k string) bool { return strings.Contains(k, "/"+resource.Snapshot.Name+"/") }

// startSnapshots runs once the agent starts: it thaws instances a crash
// left frozen, then in the background removes the manifests whose records
// are gone and sweeps every lineage (what a crash mid-snapshot left).
func (a *Agent) startSnapshots(ctx context.Context) {
	if a.Freezer != nil {
		ids, err := a.Runtime.List(ctx)
		if err == nil {
			err = a.Freezer.ThawAll(ids)
		}
		if err != nil {
			a.Log.Warn("thawing instances left frozen", "err", err)
		}
	}
	if a.Snapshots == nil {
		return
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		if err := a.sweepSnapshots(ctx); err != nil && ctx.Err() == nil {
			a.Log.Warn("sweeping snapshots", "err", err)
		}
	}()
}

func (a *Agent) sweepSnapshots(ctx context.Context) error {
	lineages, err := a.Snapshots.Lineages()
	if err != nil {
		return err
	}
	for _, l := range lineages {
		ids, err := a.Snapshots.Snapshots(l)
		if err != nil {
			return err
		}
		for _, id := range ids {
			m, err := a.Snapshots.Manifest(l, id)
			if err != nil {
				return err
			}
			sc := resource.Scope{Account: m.Labels["account"], Region: m.Labels["region"]}
			var x snapshot.Snapshot
			_, err = a.Store.Get(ctx, snapshot.Key(sc, id), &x)
			if errors.Is(err, store.ErrNotFound) || err == nil && x.Lineage != l {
				a.Log.Info("removing a snapshot whose record is gone", "snapshot_id", id, "lineage", l)
				if _, err := a.Snapshots.Delete(ctx, l, id); err != nil {
					return err
				}
			} else if err != nil {
				return err
			}
		}
	}
	st, err := a.Snapshots.GCAll(ctx)
	if st.Removed > 0 {
		a.Log.Info("snapshot garbage removed", "files", st.Removed, "bytes", st.RemovedBytes)
	}
	return err
}

// reconcileSnapshot takes, copies or deletes a snapshot of this host.
func (a *Agent) reconcileSnapshot(ctx context.Context, key string) error {
	if a.Snapshots == nil {
		return nil
	}
	var x snapshot.Snapshot
	if _, err := a.Store.Get(ctx, key, &x); errors.Is(err, store.ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	if x.Host != a.Host {
		return nil
	}
	sc := scopeOf(key)
	switch x.State {
	case snapshot.Pending:
		w := a.snapState()
		select {
		case w.slots <- struct{}{}:
			defer func() { <-w.slots }()
		default:
			a.later(ctx, key, 500*time.Millisecond) // busy: a worker is not held waiting
			return nil
		}
		if x.SourceSnapshotID != "" {
			return a.copySnapshot(ctx, key, sc, x)
		}
		return a.takeSnapshots(ctx, sc, x)
	case snapshot.Deleting:
		return a.deleteSnapshot(ctx, key, sc, x)
	}
	return nil
}

// lineage unwraps a snapshot's lineage key.
func (a *Agent) lineage(ctx context.Context, sc resource.Scope, x snapshot.Snapshot) (snapstore.Lineage, error) {
	l := snapstore.Lineage{ID: x.Lineage}
	if !x.Encrypted {
		return l, nil
	}
	if a.Keys == nil {
		return l, fmt.Errorf("snapshot %s is encrypted and this agent has no key service", x.ID)
	}
	key, err := a.Keys.Decrypt(ctx, sc, x.KmsKeyID, x.WrappedKey)
	if err != nil {
		return l, fmt.Errorf("unwrapping the key of snapshot %s: %w", x.ID, err)
	}
	l.Key = key
	return l, nil
}

func labels(sc resource.Scope, volumeID string) map[string]string {
	return map[string]string{"account": sc.Account, "region": sc.Region, "volume": volumeID}
}

// taking is one snapshot of a take: its record, its volume, its source.
type taking struct {
	x   snapshot.Snapshot
	v   volume.Volume
	l   snapstore.Lineage
	src *os.File
	dev *blockstore.Device // its loop device while attached
	err error
}

// source is what the snapshot reads: the volume's size when the snapshot
// was asked for (a volume grown since is read no further).
func (j *taking) source() snapstore.Source {
	return snapstore.Source{File: j.src, Size: int64(j.x.VolumeSizeGiB) << 30}
}

// takeSnapshots takes x, or every pending snapshot of x's CreateSnapshots
// group: all under one freeze of their instance when it runs here.
func (a *Agent) takeSnapshots(ctx context.Context, sc resource.Scope, x snapshot.Snapshot) error {
	files, ok := a.Blocks.(VolumeFiles)
	if !ok || a.Blocks == nil {
		return a.finishSnapshot(ctx, sc, x.ID, "", snapstore.Stats{}, errors.New("this host's block store cannot open volume files"))
	}
	members := []snapshot.Snapshot{x}
	instanceID := x.InstanceID
	if x.Group != "" {
		gl := a.groupLock(x.Group)
		gl.Lock()
		defer gl.Unlock()
		var err error
		if members, err = a.pendingGroup(ctx, sc, x.Group); err != nil || len(members) == 0 {
			return err // none left: another worker took the group
		}
	}
	var jobs []*taking
	defer func() {
		for _, j := range jobs {
			if j.src != nil {
				j.src.Close()
			}
		}
	}()
	for _, m := range members {
		j := &taking{x: m}
		jobs = append(jobs, j)
		j.err = a.prepareTake(ctx, sc, files, j)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if j.err == nil && instanceID == "" && j.v.Attachment != nil {
			instanceID = j.v.Attachment.InstanceID
		}
	}
	running, err := a.runsHere(ctx, instanceID)
	if err != nil {
		return err
	}
	if running {
		a.prime(ctx, jobs)
	}
	thaw, err := a.freeze(ctx, running, instanceID, jobs)
	if err != nil {
		for _, j := range jobs {
			if j.err == nil {
				j.err = err
			}
		}
	}
	defer thaw()
	var reads sync.WaitGroup
	var done sync.WaitGroup
	stats := make([]snapstore.Stats, len(jobs))
	for i, j := range jobs {
		if j.err != nil {
			continue
		}
		reads.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			var once sync.Once
			read := func() { once.Do(reads.Done) }
			defer read()
			stats[i], j.err = a.Snapshots.Take(ctx, j.l, j.x.ID, j.source(), snapstore.Options{
				Read: read, Labels: labels(sc, j.v.ID), Progress: a.progress(ctx, sc, j.x.ID),
			})
			if errors.Is(j.err, snapstore.ErrExists) { // taken before a crash, its record not updated
				stats[i], j.err = a.statsOf(j.l.ID, j.x.ID)
			}
		}()
	}
	reads.Wait()
	thaw()
	done.Wait()
	if ctx.Err() != nil {
		return ctx.Err() // retaken after the restart
	}
	var errs []error
	for i, j := range jobs {
		errs = append(errs, a.finishSnapshot(ctx, sc, j.x.ID, j.x.Lineage, stats[i], j.err))
	}
	return errors.Join(errs...)
}

func (a *Agent) groupLock(group string) *sync.Mutex {
	w := a.snapState()
	w.mu.Lock()
	defer w.mu.Unlock()
	l := w.groups[group]
	if l == nil {
		l = &sync.Mutex{}
		w.groups[group] = l
	}
	return l
}

// pendingGroup lists the pending snapshots of a CreateSnapshots group here.
func (a *Agent) pendingGroup(ctx context.Context, sc resource.Scope, group string) ([]snapshot.Snapshot, error) {
	kvs, err := a.Store.List(ctx, resource.Prefix(sc, resource.Snapshot))
	if err != nil {
		return nil, err
	}
	var out []snapshot.Snapshot
	for _, kv := range kvs {
		var x snapshot.Snapshot
		if err := json.Unmarshal(kv.Value, &x); err != nil {
			return nil, fmt.Errorf("decoding %s: %w", kv.Key, err)
		}
		if x.Group == group && x.State == snapshot.Pending && x.Host == a.Host {
			out = append(out, x)
		}
	}
	return out, nil
}

// prepareTake finds the snapshot's volume, unlocks it and opens its file.
func (a *Agent) prepareTake(ctx context.Context, sc resource.Scope, files VolumeFiles, j *taking) error {
	_, err := a.Store.Get(ctx, resource.Key(sc, resource.Volume, j.x.VolumeID), &j.v)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("volume %s no longer exists", j.x.VolumeID)
	}
	if err != nil {
		return err
	}
	if !j.v.IsBlock() || j.v.Host != a.Host || j.v.State == volume.Deleting {
		return fmt.Errorf("volume %s is not a block volume of this host (or is being deleted)", j.v.ID)
	}
	if _, err := a.unlock(ctx, sc, j.v, false); err != nil {
		return err
	}
	if j.l, err = a.lineage(ctx, sc, j.x); err != nil {
		return err
	}
	if dev, attached, err := files.Device(ctx, j.v.ID); err != nil {
		return err
	} else if attached {
		j.dev = &dev
	}
	j.src, err = files.OpenFile(ctx, j.v.ID, os.O_RDONLY|unix.O_DIRECT)
	return err
}

// runsHere reports whether the instance whose volumes are read runs here
// (and there is a freezer to hold it with).
func (a *Agent) runsHere(ctx context.Context, instanceID string) (bool, error) {
	if instanceID == "" || a.Freezer == nil {
		return false, nil
	}
	st, err := a.Runtime.State(ctx, instanceID)
	if errors.Is(err, runtime.ErrNotFound) {
		return false, nil
	}
	return err == nil && st.Status == runtime.Running, err
}

// prime stores ahead, unfrozen, the chunks of the jobs that are the first
// snapshot of their lineage: the freeze then lasts a read of the volume,
// not the storing of all of it. Failures are left to the Take.
func (a *Agent) prime(ctx context.Context, jobs []*taking) {
	var wg sync.WaitGroup
	for _, j := range jobs {
		if j.err != nil {
			continue
		}
		if ids, err := a.Snapshots.Snapshots(j.l.ID); err != nil || len(ids) > 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := a.Snapshots.Prime(ctx, j.l, j.source())
			a.Log.Debug("snapshot primed", "snapshot_id", j.x.ID, "chunks", st.NewChunks, "took", st.Took, "err", err)
		}()
	}
	wg.Wait()
}

// freeze freezes the instance whose volumes the jobs read, if it runs
// here, and returns the thaw (idempotent). Not running: nothing to hold.
func (a *Agent) freeze(ctx context.Context, running bool, instanceID string, jobs []*taking) (thaw func(), err error) {
	nothing := func() {}
	if !running {
		return nothing, nil
	}
	var devs []uint64
	for _, j := range jobs {
		if j.dev != nil {
			devs = append(devs, unix.Mkdev(j.dev.Major, j.dev.Minor))
		}
	}
	z, err := a.Freezer.Freeze(ctx, instanceID, devs)
	if errors.Is(err, snapstore.ErrNoCgroup) {
		a.Log.Warn("snapshot of a running instance's volumes without a freeze: no freezer cgroup", "instance_id", instanceID)
		return nothing, nil
	}
	if err != nil {
		return nothing, err
	}
	// A root volume's filesystem is mounted on the host, not in the
	// instance, so the freezer's syncfs of the instance's mounts missed it.
	for _, j := range jobs {
		if j.err == nil && j.v.IsRoot() && j.v.Attachment.InstanceID == instanceID {
			if err := volume.SyncFS(a.rootvol(instanceID)); err != nil {
				z.Thaw()
				return nothing, err
			}
		}
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			if err := z.Thaw(); err != nil {
				a.Log.Error("thawing an instance after a snapshot", "instance_id", instanceID, "err", err)
				return
			}
			a.Log.Info("instance thawed after its volumes were read", "instance_id", instanceID, "frozen", z.Took())
		})
	}, nil
}

// progress returns a snapstore progress callback that writes the
// snapshot's Progress, at most every second and when the percent moved.
func (a *Agent) progress(ctx context.Context, sc resource.Scope, id string) func(done, total int64) {
	var last time.Time
	shown := 0
	return func(done, total int64) {
		if total == 0 || time.Since(last) < time.Second {
			return
		}
		pct := min(int(done*100/total), 99) // 100% is the completion's
		if pct == shown {
			return
		}
		last, shown = time.Now(), pct
		_ = a.updateSnapshot(ctx, snapshot.Key(sc, id), func(x *snapshot.Snapshot) error {
			if x.State != snapshot.Pending {
				return errSkip
			}
			x.Progress = pct
			return nil
		})
	}
}

func (a *Agent) statsOf(lineage, id string) (snapstore.Stats, error) {
	m, err := a.Snapshots.Manifest(lineage, id)
	return snapstore.Stats{Chunks: len(m.Chunks)}, err
}

// finishSnapshot records a take's or a copy's outcome. A snapshot deleted
// meanwhile loses the data just stored.
func (a *Agent) finishSnapshot(ctx context.Context, sc resource.Scope, id, lineage string, st snapstore.Stats, taken error) error {
	key := snapshot.Key(sc, id)
	var gone snapshot.Snapshot
	if taken != nil {
		a.Log.Error("snapshot failed", "snapshot_id", id, "err", taken)
	} else {
		a.Log.Info("snapshot completed", "snapshot_id", id, "chunks", st.Chunks, "new_chunks", st.NewChunks,
			"stored_bytes", st.StoredBytes, "read", st.ReadTime, "took", st.Took)
	}
	_, err := store.Update(ctx, a.Store, key, func(x *snapshot.Snapshot) error {
		if x.State != snapshot.Pending {
			gone = *x
			return errSkip
		}
		if taken != nil {
			x.State, x.StatusMessage = snapshot.Error, taken.Error()
			return nil
		}
		x.State, x.Progress, x.StatusMessage = snapshot.Completed, 100, ""
		x.CompletionTime = a.Now().UTC()
		x.FullSizeBytes, x.StoredBytes = int64(st.Chunks)*snapstore.ChunkSize, st.StoredBytes
		return nil
	})
	switch {
	case errors.Is(err, store.ErrNotFound) && taken == nil && snapstore.ValidLineage(lineage):
		_, err = a.Snapshots.Delete(ctx, lineage, id) // its record went while it was taken
		return err
	case errors.Is(err, errSkip) && gone.State == snapshot.Deleting:
		a.queue.add(key) // its deletion removes what was just stored
	case err != nil && !errors.Is(err, errSkip) && !errors.Is(err, store.ErrNotFound):
		return err
	}
	return nil
}

func (a *Agent) updateSnapshot(ctx context.Context, key string, change func(*snapshot.Snapshot) error) error {
	_, err := store.Update(ctx, a.Store, key, change)
	if errors.Is(err, errSkip) || errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}

// copySnapshot makes a pending copy from its source: a manifest in the
// same lineage, or every chunk sealed anew under the copy's key.
func (a *Agent) copySnapshot(ctx context.Context, key string, sc resource.Scope, x snapshot.Snapshot) error {
	var src snapshot.Snapshot
	_, err := a.Store.Get(ctx, snapshot.Key(sc, x.SourceSnapshotID), &src)
	if errors.Is(err, store.ErrNotFound) {
		return a.finishSnapshot(ctx, sc, x.ID, "", snapstore.Stats{}, fmt.Errorf("source snapshot %s no longer exists", x.SourceSnapshotID))
	}
	if err != nil {
		return err
	}
	from, err := a.lineage(ctx, sc, src)
	if err == nil {
		var to snapstore.Lineage
		if to, err = a.lineage(ctx, sc, x); err == nil {
			var st snapstore.Stats
			st, err = a.Snapshots.Copy(ctx, from, src.ID, to, x.ID, snapstore.Options{Labels: labels(sc, src.VolumeID), Progress: a.progress(ctx, sc, x.ID)})
			if errors.Is(err, snapstore.ErrExists) {
				st, err = a.statsOf(to.ID, x.ID)
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return a.finishSnapshot(ctx, sc, x.ID, x.Lineage, st, err)
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return a.finishSnapshot(ctx, sc, x.ID, "", snapstore.Stats{}, err)
}

// deleteSnapshot removes a snapshot's data (the chunks others share stay),
// then its record. It waits while a volume is being restored from it or a
// copy is being made of it.
func (a *Agent) deleteSnapshot(ctx context.Context, key string, sc resource.Scope, x snapshot.Snapshot) error {
	if busy, err := a.snapshotInUse(ctx, sc, x.ID); err != nil {
		return err
	} else if busy != "" {
		a.Log.Debug("snapshot deletion waits", "snapshot_id", x.ID, "for", busy)
		a.later(ctx, key, time.Second)
		return nil
	}
	if snapstore.ValidLineage(x.Lineage) {
		if _, err := a.Snapshots.Delete(ctx, x.Lineage, x.ID); err != nil {
			return err
		}
	}
	a.Log.Info("snapshot deleted", "snapshot_id", x.ID)
	if err := a.Store.Delete(ctx, key); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	return nil
}

// snapshotInUse names a volume being created from snapshot id, or a copy
// of it being made; "" if none.
func (a *Agent) snapshotInUse(ctx context.Context, sc resource.Scope, id string) (string, error) {
	kvs, err := a.Store.List(ctx, resource.Prefix(sc, resource.Volume))
	if err != nil {
		return "", err
	}
	for _, kv := range kvs {
		var v volume.Volume
		if err := json.Unmarshal(kv.Value, &v); err != nil {
			return "", fmt.Errorf("decoding %s: %w", kv.Key, err)
		}
		if v.SnapshotID == id && v.State == volume.Creating {
			return v.ID, nil
		}
	}
	if kvs, err = a.Store.List(ctx, resource.Prefix(sc, resource.Snapshot)); err != nil {
		return "", err
	}
	for _, kv := range kvs {
		var x snapshot.Snapshot
		if err := json.Unmarshal(kv.Value, &x); err != nil {
			return "", fmt.Errorf("decoding %s: %w", kv.Key, err)
		}
		if x.SourceSnapshotID == id && x.State == snapshot.Pending {
			return x.ID, nil
		}
	}
	return "", nil
}

// restoreVolume fills a new volume from its snapshot, all of it before the
// volume becomes available (eager: no lazy loading).
func (a *Agent) restoreVolume(ctx context.Context, sc resource.Scope, v volume.Volume) error {
	files, ok := a.Blocks.(VolumeFiles)
	if !ok || a.Snapshots == nil {
		return errors.New("this host cannot restore snapshots")
	}
	var x snapshot.Snapshot
	if _, err := a.Store.Get(ctx, snapshot.Key(sc, v.SnapshotID), &x); errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("snapshot %s no longer exists", v.SnapshotID)
	} else if err != nil {
		return err
	}
	l, err := a.lineage(ctx, sc, x)
	if err != nil {
		return err
	}
	w := a.snapState()
	select {
	case w.slots <- struct{}{}:
		defer func() { <-w.slots }()
	case <-ctx.Done():
		return ctx.Err()
	}
	f, err := files.OpenFile(ctx, v.ID, os.O_WRONLY|unix.O_DIRECT)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := a.Snapshots.Restore(ctx, l, x.ID, f, snapstore.Options{})
	if err != nil {
		return fmt.Errorf("restoring %s from %s: %w", v.ID, x.ID, err)
	}
	a.Log.Info("volume restored from its snapshot", "volume_id", v.ID, "snapshot_id", x.ID, "chunks", st.Chunks, "took", st.Took)
	return nil
}
