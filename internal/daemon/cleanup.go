package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"nubo/internal/blockstore"
	"nubo/internal/volume"
)

// Cleanup removes from the host everything nubo made for instances under
// dataDir: it stops and deletes every instance in the runtime (processes,
// cgroups, runtime state), unmounts every root volume (the overlay, then a
// root block volume's filesystem) and takes the EBS
// pool off its loop devices. Volumes' data and
// the store stay; a later `nubo serve` reports those instances stopped.
func Cleanup(ctx context.Context, dataDir string) error {
	rt, err := Runtime(dataDir)
	if err != nil {
		return err
	}
	ids, err := rt.List(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, id := range ids {
		if err := rt.Stop(ctx, id, 5*time.Second); err != nil {
			errs = append(errs, fmt.Errorf("stopping %s: %w", id, err))
		}
		if err := rt.Delete(ctx, id); err != nil {
			errs = append(errs, fmt.Errorf("deleting %s: %w", id, err))
		}
	}
	dirs, _ := filepath.Glob(filepath.Join(dataDir, "instances", "*", "rootfs"))
	roots := volume.Roots{}
	for _, d := range dirs {
		if err := roots.Unmount(d); err != nil {
			errs = append(errs, err)
		}
		// A root block volume's filesystem, under the overlay.
		if err := volume.UnmountFS(filepath.Join(filepath.Dir(d), "rootvol")); err != nil {
			errs = append(errs, err)
		}
	}
	// The EBS pool: volumes' loop devices, the pool's mount and its loop
	// device. pool.img stays (volumes' data), as the store does.
	if _, err := os.Stat(filepath.Join(dataDir, "ebs", "pool.img")); err == nil {
		if bs, err := Blocks(ctx, dataDir, nil); err != nil {
			errs = append(errs, err)
		} else if err := teardown(ctx, bs); err != nil {
			errs = append(errs, fmt.Errorf("tearing the EBS pool down: %w", err))
		}
	}
	// The data plane this server made: namespaces, the host's link and route.
	if b, err := os.ReadFile(filepath.Join(dataDir, netConfigFile)); err == nil {
		var nc NetConfig
		if err := json.Unmarshal(b, &nc); err != nil {
			errs = append(errs, fmt.Errorf("reading %s: %w", netConfigFile, err))
		} else if nd, err := Network(nc, nil); err != nil {
			errs = append(errs, err)
		} else if err := nd.Teardown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("tearing the network down: %w", err))
		}
	}
	if len(errs) == 0 {
		_ = os.RemoveAll(filepath.Join(dataDir, "instances"))
	}
	// The parent cgroup instances live under, once empty (another server's
	// instances may still use it: then rmdir fails, as it should).
	parents, _ := filepath.Glob("/sys/fs/cgroup/*/nubo")
	for _, p := range parents {
		_ = os.Remove(p)
	}
	return errors.Join(errs...)
}

// teardown takes the pool down, waiting a while for root volumes' devices
// still held: an instance's processes that were still ending kept its root
// overlay, hence its root volume's filesystem, lazily mounted.
func teardown(ctx context.Context, bs *blockstore.Store) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := bs.Teardown(ctx)
		if !errors.Is(err, blockstore.ErrBusy) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			return err
		}
	}
}
