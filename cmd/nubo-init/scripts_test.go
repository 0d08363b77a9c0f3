package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func writeScript(t *testing.T, path, body string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body+"\n"), mode); err != nil {
		t.Fatal(err)
	}
}

func TestListScripts(t *testing.T) {
	d := t.TempDir()
	for name, mode := range map[string]os.FileMode{
		"20-b": 0o755, "10-a": 0o700, "30-noexec": 0o644, ".hidden": 0o755,
		"40-old~": 0o755, "50-x.dpkg-old": 0o755, "user-data": 0o755,
	} {
		writeScript(t, filepath.Join(d, name), "true", mode)
	}
	os.Mkdir(filepath.Join(d, "15-dir"), 0o755)
	os.Symlink("10-a", filepath.Join(d, "12-link"))
	os.Symlink("missing", filepath.Join(d, "13-dangling"))
	got, err := listScripts(d)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range got {
		names = append(names, filepath.Base(p))
	}
	if want := "10-a 12-link 20-b user-data"; strings.Join(names, " ") != want {
		t.Fatalf("scripts %q, want %q", names, want)
	}
	if s, err := listScripts(filepath.Join(d, "absent")); err != nil || s != nil {
		t.Fatalf("absent dir: %v %v", s, err)
	}
}

func TestScriptRunner(t *testing.T) {
	d := t.TempDir()
	trace := filepath.Join(d, "trace")
	scripts := filepath.Join(d, "first-boot.d")
	writeScript(t, filepath.Join(scripts, "10-first"), "echo first >> "+trace+"; echo out-of-first", 0o755)
	writeScript(t, filepath.Join(scripts, "20-fails"), "echo fails >> "+trace+"; exit 7", 0o755)
	writeScript(t, filepath.Join(scripts, "30-pwd"), "pwd >> "+trace, 0o755)
	writeScript(t, filepath.Join(scripts, "40-skip"), "echo skipped >> "+trace, 0o644)

	var log, out bytes.Buffer
	r := &scriptRunner{con: &console{w: &log}, out: &out, run: (*exec.Cmd).Run, dir: "/"}
	if failed := r.runDir("first-boot.d", scripts); failed != 1 {
		t.Errorf("failed = %d, want 1", failed)
	}
	b, _ := os.ReadFile(trace)
	if got, want := string(b), "first\nfails\n/\n"; got != want {
		t.Errorf("trace %q, want %q", got, want)
	}
	if !strings.Contains(out.String(), "out-of-first") {
		t.Errorf("script output not passed through: %q", out.String())
	}
	for _, want := range []string{
		"nubo-init: running first-boot.d/10-first\n",
		"nubo-init: first-boot.d/20-fails failed after",
		"exit status 7",
		"nubo-init: first-boot.d/30-pwd done in",
	} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, log.String())
		}
	}

	// Shutdown stops the rest.
	os.Remove(trace)
	stopped := false
	r = &scriptRunner{con: &console{w: &log}, out: &out, dir: "/", stop: func() bool { return stopped },
		run: func(c *exec.Cmd) error { stopped = true; return c.Run() }}
	r.runDir("first-boot.d", scripts)
	if b, _ := os.ReadFile(trace); string(b) != "first\n" {
		t.Errorf("after shutdown began, trace %q", b)
	}
}

// TestProcsRun checks that the process table hands each started child its
// own status while the reaper collects everything, as PID 1 does.
func TestProcsRun(t *testing.T) {
	p := newProcs()
	p.isInit = false
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the reaper loop of initd.run, polling instead of SIGCHLD
		defer wg.Done()
		for {
			p.reap()
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	defer func() { close(stop); wg.Wait() }()

	if err := p.run(exec.Command("/bin/sh", "-c", "exit 0")); err != nil {
		t.Errorf("exit 0: %v", err)
	}
	if err := p.run(exec.Command("/bin/sh", "-c", "exit 3")); err == nil || err.Error() != "exit status 3" {
		t.Errorf("exit 3: %v", err)
	}
	if err := p.run(exec.Command("/bin/sh", "-c", "kill -9 $$")); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("killed: %v", err)
	}
	// Shutdown: the running child gets SIGTERM and later starts fail.
	ch, err := p.start(exec.Command("/bin/sleep", "30"))
	if err != nil {
		t.Fatal(err)
	}
	p.shutdown(syscall.SIGTERM)
	select {
	case ws := <-ch:
		if !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
			t.Errorf("sleep ended with %v", statusError(ws))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("sleep not stopped by shutdown")
	}
	if _, err := p.start(exec.Command("/bin/true")); err != errShuttingDown {
		t.Errorf("start after shutdown: %v", err)
	}
	if !p.waitAll(time.Second) {
		t.Error("children left")
	}
}
