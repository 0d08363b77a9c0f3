package runtimetest

import (
	"context"
	"errors"
	"strings"
	"testing"

	"nubo/internal/runtime"
)

// device returns a device for the test: the suite's, or a made-up one for
// a driver that needs no real devices (a Mounter); nil skips the test.
func (s *suite) device(t *testing.T, d runtime.Driver, name string, minor uint32) runtime.BlockDevice {
	t.Helper()
	if s.newDevice != nil {
		return s.newDevice(t, name)
	}
	if _, ok := d.(Mounter); !ok {
		t.Skip("no block devices for this driver: pass WithDevices")
	}
	return runtime.BlockDevice{Name: name, HostPath: "/dev/loop" + name[len(name)-1:], Major: 7, Minor: minor}
}

// hasDevice checks, if the suite can look inside, whether the running
// instance has a block device at name.
func (s *suite) hasDevice(t *testing.T, d runtime.Driver, id, name string, want bool) {
	t.Helper()
	if s.exec == nil {
		return
	}
	got := strings.TrimSpace(s.exec(t, d, id, "test -b "+name+" && echo yes || echo no")) == "yes"
	if got != want {
		t.Fatalf("block device %s in the instance: %v, want %v", name, got, want)
	}
}

// testDevices: devices from the spec, attached before and while the
// instance runs, kept across restarts, detached; every call idempotent.
func (s *suite) testDevices(t *testing.T) {
	ctx := context.Background()
	d := s.newDriver(t)
	boot := s.device(t, d, "/dev/sdf", 1)
	early := s.device(t, d, "/dev/sdg", 2)
	hot := s.device(t, d, "/dev/sdh", 3)
	path, uid := s.newRootFS(t)
	spec := NewSpec(t, path, uid)
	spec.Devices = []runtime.BlockDevice{boot}
	if err := d.Create(ctx, spec); err != nil {
		t.Fatalf("Create with a device: %v", err)
	}
	t.Cleanup(func() { d.Delete(context.Background(), spec.ID) })
	if err := d.AttachDevice(ctx, NewID(), hot); !errors.Is(err, runtime.ErrNotFound) {
		t.Fatalf("AttachDevice to an absent instance: %v, want ErrNotFound", err)
	}
	bad := hot
	bad.Name = "sdh"
	if err := d.AttachDevice(ctx, spec.ID, bad); err == nil {
		t.Fatal("AttachDevice of a device named sdh succeeded")
	}
	if err := d.AttachDevice(ctx, spec.ID, early); err != nil {
		t.Fatalf("AttachDevice to a created instance: %v", err)
	}
	if err := d.Start(ctx, spec.ID); err != nil {
		t.Fatalf("Start: %v", err)
	}
	s.hasDevice(t, d, spec.ID, boot.Name, true)
	s.hasDevice(t, d, spec.ID, early.Name, true)
	for i := range 2 {
		if err := d.AttachDevice(ctx, spec.ID, hot); err != nil {
			t.Fatalf("AttachDevice %d to a running instance: %v", i, err)
		}
	}
	s.hasDevice(t, d, spec.ID, hot.Name, true)
	if err := d.Stop(ctx, spec.ID, grace); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := d.Start(ctx, spec.ID); err != nil {
		t.Fatalf("Start: %v", err)
	}
	s.hasDevice(t, d, spec.ID, hot.Name, true)
	for i := range 2 {
		if err := d.DetachDevice(ctx, spec.ID, hot.Name, false); err != nil {
			t.Fatalf("DetachDevice %d: %v", i, err)
		}
	}
	s.hasDevice(t, d, spec.ID, hot.Name, false)
	s.hasDevice(t, d, spec.ID, boot.Name, true)
	if err := d.DetachDevice(ctx, spec.ID, "/dev/sdz", false); err != nil {
		t.Fatalf("DetachDevice of a device the instance never had: %v", err)
	}
	if err := d.DetachDevice(ctx, NewID(), hot.Name, false); err != nil {
		t.Fatalf("DetachDevice from an absent instance: %v", err)
	}
	if err := d.Stop(ctx, spec.ID, grace); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := d.DetachDevice(ctx, spec.ID, early.Name, false); err != nil {
		t.Fatalf("DetachDevice from a stopped instance: %v", err)
	}
	if err := d.Start(ctx, spec.ID); err != nil {
		t.Fatalf("Start: %v", err)
	}
	s.hasDevice(t, d, spec.ID, early.Name, false)
	s.hasDevice(t, d, spec.ID, boot.Name, true)
}

// testDeviceBusy: a device with a filesystem mounted inside is detached
// only by force.
func (s *suite) testDeviceBusy(t *testing.T) {
	ctx := context.Background()
	d := s.newDriver(t)
	dev := s.device(t, d, "/dev/sdf", 1)
	mount := s.mount
	if mount == nil {
		m, ok := d.(Mounter)
		if !ok {
			t.Skip("cannot mount inside instances of this driver: pass WithMount")
		}
		mount = func(t *testing.T, d runtime.Driver, id, name string) { m.Mount(id, name, true) }
	}
	path, uid := s.newRootFS(t)
	spec := NewSpec(t, path, uid)
	if err := d.Create(ctx, spec); err != nil {
		t.Fatalf("Create: %v", err)
	}
	t.Cleanup(func() { d.Delete(context.Background(), spec.ID) })
	if err := d.Start(ctx, spec.ID); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if err := d.AttachDevice(ctx, spec.ID, dev); err != nil {
		t.Fatalf("AttachDevice: %v", err)
	}
	mount(t, d, spec.ID, dev.Name)
	if err := d.DetachDevice(ctx, spec.ID, dev.Name, false); !errors.Is(err, runtime.ErrDeviceBusy) {
		t.Fatalf("DetachDevice of a mounted device: %v, want ErrDeviceBusy", err)
	}
	s.hasDevice(t, d, spec.ID, dev.Name, true)
	if err := d.DetachDevice(ctx, spec.ID, dev.Name, true); err != nil {
		t.Fatalf("forced DetachDevice: %v", err)
	}
	s.hasDevice(t, d, spec.ID, dev.Name, false)
	if err := d.AttachDevice(ctx, spec.ID, dev); err != nil {
		t.Fatalf("AttachDevice after a forced detach: %v", err)
	}
	s.hasDevice(t, d, spec.ID, dev.Name, true)
}
