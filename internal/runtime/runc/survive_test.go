package runc_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"nubo/internal/runtime"
	"nubo/internal/runtime/runc"
	"nubo/internal/runtime/runtimetest"
)

// starterJob is what a starter process is told to do.
type starterJob struct {
	Root, CgroupParent string
	Shim               []string
	Spec               runtime.Spec
	Hang               bool // after starting, wait to be killed instead of exiting
}

// starterMain is the test binary as a process that starts an instance and
// then exits or is killed: the instance must outlive it.
func starterMain(args []string) int {
	b, err := os.ReadFile(args[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var job starterJob
	if err := json.Unmarshal(b, &job); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	d, err := runc.New(runc.Config{Root: job.Root, Shim: job.Shim, CgroupParent: job.CgroupParent})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx := context.Background()
	if err := d.Create(ctx, job.Spec); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := d.Start(ctx, job.Spec.ID); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	st, err := d.State(ctx, job.Spec.ID)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("started %d\n", st.Pid)
	if job.Hang {
		select {}
	}
	return 0
}

// TestOutlivesStarter starts instances from a process that then exits or
// is killed; each keeps running, and its shim still records PID 1's exit.
func TestOutlivesStarter(t *testing.T) {
	requireHost(t)
	for _, hang := range []bool{false, true} {
		t.Run(map[bool]string{false: "StarterExits", true: "StarterKilled"}[hang], func(t *testing.T) {
			cfg := driverConfig(t)
			d := newDriverWith(t, cfg)
			path, uid := newRootFS(t)
			spec := runtimetest.NewSpec(t, path, uid)
			job := starterJob{Root: cfg.Root, CgroupParent: cfg.CgroupParent, Shim: cfg.Shim, Spec: spec, Hang: hang}
			jobFile := filepath.Join(t.TempDir(), "job.json")
			b, _ := json.Marshal(job)
			writeFile(t, jobFile, string(b), 0o600)

			exe, _ := os.Executable()
			cmd := exec.Command(exe, jobFile)
			cmd.Env = append(os.Environ(), starterEnv+"=1", "GORACE=atexit_sleep_ms=0")
			cmd.Stderr = os.Stderr
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			line, err := bufio.NewReader(stdout).ReadString('\n')
			if err != nil {
				cmd.Wait()
				t.Fatalf("starter: %v", err)
			}
			pid, _ := strconv.Atoi(strings.TrimPrefix(strings.TrimSpace(line), "started "))
			if hang {
				cmd.Process.Signal(syscall.SIGKILL)
			}
			cmd.Wait()

			time.Sleep(200 * time.Millisecond)
			st, err := d.State(context.Background(), spec.ID)
			if err != nil || st.Status != runtime.Running || st.Pid != pid {
				t.Fatalf("after the starter ended: State = %+v, %v; want running as %d", st, err, pid)
			}
			if got := mustExec(t, d, spec.ID, "echo alive"); got != "alive" {
				t.Fatalf("exec after the starter ended: %q", got)
			}
			if err := d.Stop(context.Background(), spec.ID, 5*time.Second); err != nil {
				t.Fatal(err)
			}
			st, err = d.State(context.Background(), spec.ID)
			if err != nil || st.Status != runtime.Stopped || st.ExitCode != 0 {
				t.Fatalf("after Stop: State = %+v, %v; want stopped with exit 0 recorded by the shim", st, err)
			}
		})
	}
}
