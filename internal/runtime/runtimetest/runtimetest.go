// Package runtimetest is the conformance suite of runtime.Driver: every
// driver (runc, fake) runs it from its own tests.
//
//	func TestConformance(t *testing.T) {
//		runtimetest.Run(t, newDriver, newRootFS, runtimetest.WithExec(exec))
//	}
package runtimetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"path/filepath"
	"testing"
	"time"

	"nubo/internal/runtime"
)

// Exiter is the ability of a driver to make PID 1 exit by itself with a
// code, as a poweroff inside the instance would (the fake has it).
type Exiter interface {
	Exit(id string, code int) error
}

// Mounter is the ability of a driver to mark a device as mounted inside an
// instance, as if its root had mounted a filesystem on it (the fake has
// it).
type Mounter interface {
	Mount(id, name string, mounted bool)
}

// Option adapts the suite to a driver.
type Option func(*suite)

// WithExec gives the suite a way to run a shell script inside a running
// instance and read its output; without it, the checks that look inside
// (a file survives a stop and start) are skipped.
func WithExec(exec func(t *testing.T, d runtime.Driver, id, script string) string) Option {
	return func(s *suite) { s.exec = exec }
}

// WithExit gives the suite a way to make PID 1 exit with a code; without
// it the driver must implement Exiter.
func WithExit(exit func(t *testing.T, d runtime.Driver, id string, code int)) Option {
	return func(s *suite) { s.exit = exit }
}

// WithDevices gives the suite block devices the driver can attach:
// newDevice returns a fresh one named name (e.g. /dev/sdf) that lasts until
// the test ends. Without it, a driver that implements Mounter gets made-up
// devices, and the device checks are skipped for any other.
func WithDevices(newDevice func(t *testing.T, name string) runtime.BlockDevice) Option {
	return func(s *suite) { s.newDevice = newDevice }
}

// WithMount gives the suite a way to mount a filesystem on device name
// inside a running instance as its root would (making one first); without
// it the driver must implement Mounter, or the busy checks are skipped.
func WithMount(mount func(t *testing.T, d runtime.Driver, id, name string)) Option {
	return func(s *suite) { s.mount = mount }
}

// WithTimeout sets how long the suite waits for an instance to change
// state (default 20 s).
func WithTimeout(d time.Duration) Option {
	return func(s *suite) { s.timeout = d }
}

type suite struct {
	newDriver func(t *testing.T) runtime.Driver
	newRootFS func(t *testing.T) (string, uint32)
	exec      func(t *testing.T, d runtime.Driver, id, script string) string
	exit      func(t *testing.T, d runtime.Driver, id string, code int)
	newDevice func(t *testing.T, name string) runtime.BlockDevice
	mount     func(t *testing.T, d runtime.Driver, id, name string)
	timeout   time.Duration
}

// Run runs the conformance suite. newDriver returns a fresh driver for one
// test; newRootFS returns a root filesystem whose /sbin/init runs until
// SIGTERM, owned by the host UID it returns (instance root maps to it).
func Run(t *testing.T, newDriver func(t *testing.T) runtime.Driver, newRootFS func(t *testing.T) (path string, uidBase uint32), opts ...Option) {
	s := &suite{newDriver: newDriver, newRootFS: newRootFS, timeout: 20 * time.Second}
	for _, o := range opts {
		o(s)
	}
	t.Run("Lifecycle", s.testLifecycle)
	t.Run("StopThenStart", s.testStopThenStart)
	t.Run("PID1Exit", s.testPID1Exit)
	t.Run("StopCreated", s.testStopCreated)
	t.Run("CreateChangedSpec", s.testCreateChangedSpec)
	t.Run("DeleteRunning", s.testDeleteRunning)
	t.Run("Absent", s.testAbsent)
	t.Run("List", s.testList)
	t.Run("InvalidSpec", s.testInvalidSpec)
	t.Run("Devices", s.testDevices)
	t.Run("DeviceBusy", s.testDeviceBusy)
}

// NewID returns a fresh instance ID: "i-" and 17 hex digits.
func NewID() string {
	b := make([]byte, 9)
	rand.Read(b)
	return "i-" + hex.EncodeToString(b)[:17]
}

// NewSpec returns a small instance spec over rootFS, with a fresh ID and a
// console log in a test directory.
func NewSpec(t *testing.T, rootFS string, uidBase uint32) runtime.Spec {
	return runtime.Spec{
		ID:         NewID(),
		RootFS:     rootFS,
		Hostname:   "ip-10-0-0-9",
		Init:       []string{"/sbin/init"},
		Env:        []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root"},
		VCPUs:      1,
		MemoryMiB:  128,
		PidsLimit:  128,
		UIDBase:    uidBase,
		GIDBase:    uidBase,
		IDCount:    65536,
		ConsoleLog: filepath.Join(t.TempDir(), "console.log"),
	}
}

// Await polls State until ok accepts it or timeout passes.
func Await(t *testing.T, d runtime.Driver, id string, timeout time.Duration, ok func(runtime.State) bool) runtime.State {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st, err := d.State(context.Background(), id)
		if err != nil {
			t.Fatalf("State(%s): %v", id, err)
		}
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("State(%s) = %+v after %v", id, st, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
