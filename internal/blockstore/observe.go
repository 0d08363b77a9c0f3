package blockstore

import (
	"context"
	"fmt"

	"golang.org/x/sys/unix"
)

// State is what the host holds.
type State struct {
	Pool    PoolState
	Volumes []VolumeState
}

// PoolState is the pool and the space behind it.
type PoolState struct {
	Device    Device
	Size      int64 // the pool filesystem's size
	Free      int64 // free in the pool filesystem
	Allocated int64 // what the sparse image really takes on the host
	HostFree  int64 // free on the host filesystem under the image: the real limit
}

// VolumeState is one volume.
type VolumeState struct {
	ID        string
	Size      int64   // bytes, as the device shows
	Allocated int64   // pool bytes written so far (the file is sparse)
	Encrypted bool    //
	Locked    bool    // encrypted and its key is not in the kernel
	Device    *Device // its loop device; nil when detached
	DirectIO  bool    // the kernel does direct I/O on the file
}

// Observe reports the pool and every volume.
func (s *Store) Observe(ctx context.Context) (State, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rootDir == nil {
		return State{}, fmt.Errorf("blockstore: store is closed")
	}
	st := State{Pool: PoolState{Device: s.pool}}
	var fs, host unix.Statfs_t
	var img unix.Stat_t
	if err := unix.Statfs(s.root, &fs); err != nil {
		return st, err
	}
	if err := unix.Statfs(s.dir, &host); err != nil {
		return st, err
	}
	if err := unix.Stat(s.img, &img); err != nil {
		return st, err
	}
	st.Pool.Size = int64(fs.Blocks) * fs.Bsize
	st.Pool.Free = int64(fs.Bavail) * fs.Bsize
	st.Pool.Allocated = img.Blocks * 512
	st.Pool.HostFree = int64(host.Bavail) * host.Bsize

	ids, err := s.list()
	if err != nil {
		return st, err
	}
	bound, err := loopBound()
	if err != nil {
		return st, err
	}
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		v := VolumeState{ID: id}
		path, err := s.anyFile(id)
		if err != nil {
			return st, err
		}
		var f unix.Stat_t
		if err := unix.Stat(path, &f); err != nil {
			return st, fmt.Errorf("%s: %w", id, err)
		}
		v.Size, v.Allocated = f.Size, f.Blocks*512
		kid, encrypted, err := s.keyOf(id)
		if err != nil {
			return st, err
		}
		if v.Encrypted = encrypted; encrypted {
			ok, err := keyPresent(s.rootDir, kid)
			if err != nil {
				return st, err
			}
			v.Locked = !ok
		}
		for _, d := range bound {
			if d.backing == s.volFile(id) && sameBacking(d.Path, d.backing) {
				v.Device = &d.Device
				v.DirectIO = loopDirectIO(d.Device, d.backing)
			}
		}
		st.Volumes = append(st.Volumes, v)
	}
	return st, nil
}
