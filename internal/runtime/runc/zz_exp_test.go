package runc_test

import (
	"context"
	"os"
	"syscall"
	"testing"
	"time"

	"nubo/internal/runtime/runtimetest"
)

func TestZZShimKilledSystemd(t *testing.T) {
	requireHost(t)
	m := debian12(t)
	rootfs := overlayRoot(t, m.RootFS, m.UIDBase)
	cfg := driverConfig(t)
	d := newDriverWith(t, cfg)
	spec := runtimetest.NewSpec(t, rootfs, m.UIDBase)
	spec.Init = m.Init
	spec.Env = []string{"container=nubo"}
	spec.MemoryMiB = 512
	ctx := context.Background()
	d.Create(ctx, spec)
	begin := time.Now()
	d.Start(ctx, spec.ID)
	awaitConsole(t, d, spec, 1, begin)
	syscall.Kill(shimPid(t, cfg, spec.ID), syscall.SIGKILL)
	time.Sleep(200 * time.Millisecond)
	t0 := time.Now()
	out, err := execIn(t, d, spec.ID, "echo hi > /dev/console; echo rc=$?; systemctl restart ssh; systemctl is-system-running")
	t.Logf("after shim kill: %v %v %s", time.Since(t0), err, out)
	t0 = time.Now()
	err = d.Stop(ctx, spec.ID, 20*time.Second)
	st, _ := d.State(ctx, spec.ID)
	t.Logf("stop: %v %v %+v", time.Since(t0), err, st)
	b, _ := os.ReadFile(spec.ConsoleLog)
	t.Logf("%d bytes of console", len(b))
}
