package fake

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"nubo/internal/runtime"
)

const (
	OpAttachDevice Op = "AttachDevice"
	OpDetachDevice Op = "DetachDevice"
)

// AttachDevice records dev as the instance's.
func (d *Driver) AttachDevice(ctx context.Context, id string, dev runtime.BlockDevice) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.enter(ctx, OpAttachDevice, id); err != nil {
		return fmt.Errorf("attaching %s to %s: %w", dev.Name, id, err)
	}
	if err := dev.Validate(); err != nil {
		return err
	}
	in, ok := d.instances[id]
	if !ok {
		return fmt.Errorf("attaching %s to %s: %w", dev.Name, id, runtime.ErrNotFound)
	}
	in.devices[dev.Name] = dev
	return nil
}

// DetachDevice forgets the device; ErrDeviceBusy while Mount says it is
// mounted, unless force.
func (d *Driver) DetachDevice(ctx context.Context, id, name string, force bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.enter(ctx, OpDetachDevice, id); err != nil {
		return fmt.Errorf("detaching %s from %s: %w", name, id, err)
	}
	in, ok := d.instances[id]
	if !ok {
		return nil
	}
	if in.mounted[name] && !force {
		return fmt.Errorf("detaching %s from %s: %w", name, id, runtime.ErrDeviceBusy)
	}
	delete(in.mounted, name)
	delete(in.devices, name)
	return nil
}

// Mount marks device name as mounted inside the instance (or not), as if
// its root had mounted a filesystem on it.
func (d *Driver) Mount(id, name string, mounted bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	in, ok := d.instances[id]
	if !ok {
		return
	}
	if in.mounted == nil {
		in.mounted = make(map[string]bool)
	}
	in.mounted[name] = mounted
}

// Devices returns the devices an instance has now: those of its spec and
// those attached since, less those detached, sorted by name.
func (d *Driver) Devices(id string) []runtime.BlockDevice {
	d.mu.Lock()
	defer d.mu.Unlock()
	in, ok := d.instances[id]
	if !ok {
		return nil
	}
	var out []runtime.BlockDevice
	for _, n := range slices.Sorted(maps.Keys(in.devices)) {
		out = append(out, in.devices[n])
	}
	return out
}

func devicesOf(spec runtime.Spec) map[string]runtime.BlockDevice {
	m := make(map[string]runtime.BlockDevice, len(spec.Devices))
	for _, dev := range spec.Devices {
		m[dev.Name] = dev
	}
	return m
}
