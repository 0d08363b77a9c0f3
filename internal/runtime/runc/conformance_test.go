package runc_test

import (
	"sync"
	"testing"

	"nubo/internal/runtime"
	"nubo/internal/runtime/runtimetest"
)

func TestConformance(t *testing.T) {
	requireHost(t)
	var roots sync.Map // driver → its Root, for runc exec
	newDriver := func(t *testing.T) runtime.Driver {
		cfg := driverConfig(t)
		d := newDriverWith(t, cfg)
		roots.Store(d, cfg.Root)
		return d
	}
	runtimetest.Run(t, newDriver, newRootFS,
		runtimetest.WithExec(func(t *testing.T, d runtime.Driver, id, script string) string {
			return mustExec(t, d, id, script)
		}),
		runtimetest.WithExit(exitPID1),
		runtimetest.WithDevices(func(t *testing.T, name string) runtime.BlockDevice {
			requireLoop(t)
			return newLoop(t, name, 32)
		}),
		// Under the instance's mount filter, as its own processes are.
		runtimetest.WithMount(func(t *testing.T, d runtime.Driver, id, name string) {
			root, _ := roots.Load(d)
			mustRuncExec(t, root.(string), id, mkfsAndMount(name))
		}))
}
