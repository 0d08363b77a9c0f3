package runc_test

import (
	"testing"

	"nubo/internal/runtime"
	"nubo/internal/runtime/runtimetest"
)

func TestConformance(t *testing.T) {
	requireHost(t)
	runtimetest.Run(t, newDriver, newRootFS,
		runtimetest.WithExec(func(t *testing.T, d runtime.Driver, id, script string) string {
			return mustExec(t, d, id, script)
		}),
		runtimetest.WithExit(exitPID1))
}
