package runc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"nubo/internal/runtime"
)

// Create writes the instance's bundle (its spec; the OCI config is made
// for each run by Start). Creating again with the same spec is
// a no-op; a different spec replaces the bundle and takes effect at the next
// Start (a running instance keeps the limits it was started with). runc makes
// the namespaces and the cgroup when the instance starts.
//
// The device record (see devices.go) becomes Spec.Devices when the bundle
// is made, or its spec changes while the instance does not run; a running
// instance's devices change only by AttachDevice and DetachDevice.
func (d *Driver) Create(ctx context.Context, spec runtime.Spec) error {
	if err := spec.Validate(); err != nil {
		return fmt.Errorf("creating %s: %w", spec.ID, err)
	}
	if err := validDevices(spec.Devices); err != nil {
		return fmt.Errorf("creating %s: %w", spec.ID, err)
	}
	if spec.Hibernatable && spec.NetNS != "" {
		// CRIU cannot dump a task whose netns the host's user namespace
		// owns (see hibernate.go).
		return fmt.Errorf("creating %s: a Hibernatable instance gets its network namespace from the runtime: NetNS must be empty", spec.ID)
	}
	defer d.locks.lock(spec.ID)()
	want, err := json.MarshalIndent(spec, "", "\t")
	if err != nil {
		return fmt.Errorf("creating %s: %w", spec.ID, err)
	}
	want = append(want, '\n')
	have, err := os.ReadFile(d.file(spec.ID, specFile))
	switch {
	case err == nil && bytes.Equal(have, want):
		return nil
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("creating %s: %w", spec.ID, err)
	case err == nil:
		d.log.Info("instance spec changed; effective at next start", "instance", spec.ID)
	}
	if err := os.MkdirAll(d.bundle(spec.ID), 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", spec.ID, err)
	}
	if err := d.recordSpecDevices(ctx, spec); err != nil {
		return fmt.Errorf("creating %s: %w", spec.ID, err)
	}
	// spec.json last: its presence means the bundle is complete.
	if err := writeAtomic(d.file(spec.ID, specFile), want); err != nil {
		return fmt.Errorf("creating %s: %w", spec.ID, err)
	}
	return nil
}

// specOf reads the spec an instance was created with.
func (d *Driver) specOf(id string) (runtime.Spec, error) {
	var s runtime.Spec
	ok, err := readJSON(d.file(id, specFile), &s)
	if err == nil && !ok {
		err = runtime.ErrNotFound
	}
	return s, err
}

// recordSpecDevices makes the spec's devices the instance's record, unless
// it runs, and removes the host nodes of the devices it no longer has.
func (d *Driver) recordSpecDevices(ctx context.Context, spec runtime.Spec) error {
	if exists(d.file(spec.ID, devicesFile)) {
		o, err := d.observe(ctx, spec.ID)
		if err != nil {
			return err
		}
		if o.busy() {
			d.log.Info("instance runs: its devices stay as attached", "instance", spec.ID)
			return nil
		}
	}
	if err := d.writeDevices(spec.ID, spec.Devices); err != nil {
		return err
	}
	nodes, _ := os.ReadDir(filepath.Join(d.bundle(spec.ID), devDir))
	for _, n := range nodes {
		if !slices.ContainsFunc(spec.Devices, func(dev runtime.BlockDevice) bool { return filepath.Base(dev.Name) == n.Name() }) {
			if err := removeIfExists(filepath.Join(d.bundle(spec.ID), devDir, n.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}
