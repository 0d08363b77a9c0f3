package runc

import (
	"context"
	"fmt"
	"os"

	"nubo/internal/runtime"
)

// Delete kills the instance if it runs and removes runc's record, the
// cgroup and the bundle. The console log, if the spec named one outside the
// bundle, is left to its owner. Deleting an absent ID is a no-op.
func (d *Driver) Delete(ctx context.Context, id string) error {
	if !runtime.ValidID(id) {
		return nil // no instance can have it
	}
	defer d.locks.lock(id)()
	if err := d.delete(ctx, id); err != nil {
		return fmt.Errorf("deleting %s: %w", id, err)
	}
	return nil
}

func (d *Driver) delete(ctx context.Context, id string) error {
	o, err := d.observe(ctx, id)
	if err != nil {
		return err
	}
	if o.busy() {
		if err := d.kill(ctx, id); err != nil {
			return err
		}
		if err := d.awaitEnd(ctx, id); err != nil {
			return err
		}
	}
	if err := d.runcDelete(ctx, id); err != nil {
		return err
	}
	if err := removeCgroups(d.cfg.CgroupParent, id); err != nil {
		return err
	}
	if err := unmountSysfs(d.file(id, sysfsDir)); err != nil {
		return err
	}
	if err := os.RemoveAll(d.bundle(id)); err != nil {
		return err
	}
	if o.found() {
		d.log.Info("instance deleted", "instance", id)
	}
	return nil
}
