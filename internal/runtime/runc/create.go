package runc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"nubo/internal/runtime"
)

// Create writes the instance's bundle (its spec; the OCI config is made
// for each run by Start). Creating again with the same spec is
// a no-op; a different spec replaces the bundle and takes effect at the next
// Start (a running instance keeps the limits it was started with). runc makes
// the namespaces and the cgroup when the instance starts.
func (d *Driver) Create(ctx context.Context, spec runtime.Spec) error {
	if err := spec.Validate(); err != nil {
		return fmt.Errorf("creating %s: %w", spec.ID, err)
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
