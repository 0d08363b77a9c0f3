package runc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// The shim's modes (--mode).
const (
	modeRun     = "run"     // `runc run` in the foreground: every instance but a Hibernatable one
	modeCreate  = "create"  // `runc create`: a Hibernatable instance's Prepare (Start runs `runc start`)
	modeRestore = "restore" // `runc restore -d`: a Hibernatable instance's Restore
)

// criuEnv is what every runc checkpoint and restore needs in its
// environment (runc passes its own to CRIU): hardware breakpoints never fire
// in some VMs, and CRIU then waits for them forever (docs/criu-notes.md).
const criuEnv = "CRIU_FAULT=130"

// pumpDrainTimeout bounds how long the shim copies PID 1's output once
// PID 1 has ended (a process that escaped the instance could hold the pipe).
const pumpDrainTimeout = 2 * time.Second

// runDetached is run for modeCreate and modeRestore: runc makes (or
// restores) PID 1 and exits, leaving PID 1 to this subreaper, which waits
// for it as `runc run` would have.
//
// PID 1's stdio are pipes, which CRIU saves and runc hands again at
// restore (a host file, such as the console log or /dev/null, is on no
// mount of the instance and fails the dump): stdin a pipe whose write end
// is closed (reads see end of file, as from /dev/null), stdout and stderr
// one pipe copied into the console log (this shim's stdout, appended).
func (s *shim) runDetached() exitRecord {
	pidPath := filepath.Join(s.bundle, pidFile)
	inR, inW, err := os.Pipe()
	if err != nil {
		return s.failed(err)
	}
	inW.Close()
	defer inR.Close()
	outR, outW, err := os.Pipe()
	if err != nil {
		return s.failed(err)
	}
	pumped := make(chan struct{})
	go func() {
		defer close(pumped)
		io.Copy(os.Stdout, outR)
	}()
	defer func() {
		select {
		case <-pumped:
		case <-time.After(pumpDrainTimeout):
			s.log.Warn("PID 1's output pipe still open after it ended; no longer copied")
		}
		outR.Close()
	}()

	argv := []string{s.runc, "--root", s.root, "--log", filepath.Join(s.bundle, runcLogFile)}
	env := runcEnv()
	switch s.mode {
	case modeCreate:
		argv = append(argv, "create", "--bundle", s.bundle, "--pid-file", pidPath, s.id)
	case modeRestore:
		argv = append(argv, "--criu", CRIUPath, "restore", "--detach",
			"--image-path", s.imagePath, "--work-path", s.workPath,
			"--bundle", s.bundle, "--pid-file", pidPath, s.id)
		env = append(env, criuEnv)
	}
	runc, err := os.StartProcess(s.runc, argv, &os.ProcAttr{Dir: "/", Env: env, Files: []*os.File{inR, outW, outW}})
	outW.Close() // PID 1 and runc hold it now: end of file once they are all gone
	if err != nil {
		return s.failed(fmt.Errorf("starting runc: %w", err))
	}
	s.log.Info("runc "+s.mode+" started", "runc", runc.Pid)
	ws, err := reap(runc.Pid)
	if err != nil {
		return s.failed(err)
	}
	pid1, _ := readPid(pidPath)
	exit := exitRecord{ExitCode: -1, Pid: pid1}
	if fi, err := os.Stat(pidPath); err == nil {
		exit.StartedAt = fi.ModTime()
	}
	if !ws.Exited() || ws.ExitStatus() != 0 || pid1 == 0 {
		exit.Error = fmt.Sprintf("runc %s %s before PID 1 ran", s.mode, describe(ws))
		if s.mode == modeRestore {
			exit.Error += "; CRIU: " + criuLogTail(filepath.Join(s.workPath, "restore.log"))
		}
		s.removeRecord()
		exit.ExitedAt = time.Now()
		return exit
	}
	s.log.Info("PID 1 made", "mode", s.mode, "pid", pid1)
	exit.ExitCode, exit.Error = s.awaitPID1(pid1)
	exit.ExitedAt = time.Now()
	// A `runc checkpoint` has removed runc's record itself; after any
	// other end, runc keeps a stopped record, removed here as `runc run`
	// does for its own runs.
	s.removeRecord()
	return exit
}

// awaitPID1 waits for PID 1, the shim's child once runc has exited.
func (s *shim) awaitPID1(pid1 int) (int, string) {
	ws, err := reap(pid1)
	if err == nil {
		return exitCode(ws), ""
	}
	// Not this shim's child (runc left it elsewhere): wait without a status.
	s.log.Warn("PID 1 is not the shim's child; waiting without its status", "err", err)
	if p, err := procOf(pid1); err == nil {
		waitExit(context.Background(), p, 100*365*24*time.Hour)
	}
	return -1, "PID 1 was not the shim's child; its exit status is unknown"
}

// removeRecord removes runc's record of the instance, if any.
func (s *shim) removeRecord() {
	if _, err := os.Stat(filepath.Join(s.root, s.id)); errors.Is(err, os.ErrNotExist) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.runc, "--root", s.root, "delete", "--force", s.id)
	if out, err := cmd.CombinedOutput(); err != nil {
		if _, serr := os.Stat(filepath.Join(s.root, s.id)); errors.Is(serr, os.ErrNotExist) {
			return // removed meanwhile (by runc checkpoint)
		}
		s.log.Warn("removing runc's record", "err", err, "output", string(out))
	}
}
