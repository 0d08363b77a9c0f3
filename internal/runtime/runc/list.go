package runc

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"

	"nubo/internal/runtime"
)

// List returns the IDs of every instance with a complete bundle or a runc
// record: those State finds.
func (d *Driver) List(ctx context.Context) ([]string, error) {
	var ids []string
	for _, dir := range []string{d.bundlesDir(), d.runcRoot()} {
		entries, err := os.ReadDir(dir)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("listing instances: %w", err)
		}
		for _, e := range entries {
			id := e.Name()
			if e.IsDir() && runtime.ValidID(id) && (exists(d.file(id, specFile)) || d.runcRecord(id)) {
				ids = append(ids, id)
			}
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids), nil
}
