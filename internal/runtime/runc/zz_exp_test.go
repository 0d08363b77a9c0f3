package runc_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"nubo/internal/runtime"
	"nubo/internal/runtime/runtimetest"
)

func TestZZExp(t *testing.T) {
	requireHost(t)
	lower := os.Getenv("ZZ_LOWER")
	dir := reachableTempDir(t)
	up, work, merged := filepath.Join(dir, "up"), filepath.Join(dir, "work"), filepath.Join(dir, "merged")
	for _, p := range []string{up, work, merged} {
		os.Mkdir(p, 0o755)
	}
	os.Chown(up, uidBase, uidBase)
	if out, err := exec.Command("mount", "-t", "overlay", "overlay", "-o", "lowerdir="+lower+",upperdir="+up+",workdir="+work, merged).CombinedOutput(); err != nil {
		t.Fatal(string(out), err)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", merged).Run() })
	d := newDriver(t)
	spec := runtimetest.NewSpec(t, merged, uidBase)
	spec.Init = []string{"/sbin/init"}
	spec.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "container=nubo"}
	spec.MemoryMiB = 1024
	spec.Hostname = "ip-10-0-0-5"
	ctx := context.Background()
	if err := d.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx, spec.ID); err != nil {
		t.Fatal(err)
	}
	time.Sleep(8 * time.Second)
	b, _ := os.ReadFile(spec.ConsoleLog)
	t.Logf("console:\n%s", b)
	out, err := execIn(t, d, spec.ID, os.Getenv("ZZ_SCRIPT"))
	t.Logf("exec: %v\n%s", err, out)
	t0 := time.Now()
	err = d.Stop(ctx, spec.ID, 10*time.Second)
	st, _ := d.State(ctx, spec.ID)
	t.Logf("stop: %v %v %+v", err, time.Since(t0), st)
	b, _ = os.ReadFile(spec.ConsoleLog)
	t.Logf("console:\n%s", b)
	_ = runtime.Running
}
