package runc_test

import (
	"os"
	"path/filepath"
	"testing"

	"nubo/internal/runtime/runc"
)

// The test binary doubles as the shim (the driver runs it with shimEnv set)
// and as a short-lived process that starts an instance (starterEnv).
const (
	shimEnv    = "NUBO_RUNC_TEST_SHIM"
	starterEnv = "NUBO_RUNC_TEST_STARTER"
)

// cgroupParent keeps test instances apart from a real nubo's on this host.
const cgroupParent = "/nubo-test"

func TestMain(m *testing.M) {
	if os.Getenv(shimEnv) == "1" {
		os.Exit(runc.ShimMain(os.Args[1:]))
	}
	if os.Getenv(starterEnv) != "" {
		os.Exit(starterMain(os.Args[1:]))
	}
	code := m.Run()
	// Remove the test cgroup parent if no instance is left in it.
	dirs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup/*", cgroupParent))
	for _, d := range dirs {
		os.Remove(d)
	}
	os.Exit(code)
}
