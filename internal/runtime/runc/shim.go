package runc

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"nubo/internal/runtime"

	"golang.org/x/sys/unix"
)

// ShimMain is the per-instance shim, run by the driver as Config.Shim plus
//
//	--runc PATH --root DIR --bundle DIR --id ID
//
// in a session of its own, with stdout and stderr on the instance's console
// log. It runs `runc run` in the foreground (PID 1's stdio goes to the
// console log), waits for PID 1 to end, and writes its exit code to
// exit.json in the bundle before it exits. It is a child subreaper, so if
// runc itself dies, PID 1 becomes its child and its status is still known.
// nubo wires it as a hidden subcommand: `nubo runc-shim …` → ShimMain.
//
// With --mounts, it also serves the instance's mount(2) calls, passed to
// it by a seccomp filter (see seccomp.go).
//
// A Hibernatable instance's shim runs with --mode create (Prepare: `runc
// create`, PID 1 made but stopped until the driver runs `runc start`) or
// --mode restore --image-path DIR --work-path DIR (Restore: `runc restore
// -d`); in both, PID 1's stdio is a pipe the shim copies into the console
// log, and once runc has exited PID 1 is the shim's child, which it waits
// for as it would for `runc run` (see hibernate_shim.go).
//
// The same entry point serves the OCI hooks the driver puts in an
// instance's config, which runc runs as Config.Shim plus
//
//	hook delegate-cgroup --uid N --gid N
//	hook dev-links --uid N --gid N --rootfs DIR NAME…
//
// (see delegate.go and devlinks.go).
func ShimMain(args []string) int {
	if len(args) > 0 && args[0] == hookCommand {
		return hookMain(args[1:], os.Stdin)
	}
	fl := flag.NewFlagSet("runc-shim", flag.ContinueOnError)
	runcPath := fl.String("runc", "runc", "runc binary")
	root := fl.String("root", "", "runc state root")
	bundle := fl.String("bundle", "", "instance bundle directory")
	id := fl.String("id", "", "instance ID")
	withConsole := fl.Bool("console", false, "fds 3 and 4 are the master and slave of the instance's console pty")
	mounts := fl.Bool("mounts", false, "serve the instance's mount(2) calls on the bundle's seccomp.sock")
	mode := fl.String("mode", modeRun, "run (runc run), create (runc create, for runc start) or restore (runc restore)")
	imagePath := fl.String("image-path", "", "with --mode restore: the checkpoint's images")
	workPath := fl.String("work-path", "", "with --mode restore: CRIU's work directory (its logs)")
	if err := fl.Parse(args); err != nil {
		return 2
	}
	if *root == "" || *bundle == "" || !runtime.ValidID(*id) {
		fmt.Fprintln(os.Stderr, "runc-shim: --root, --bundle and a valid --id are required")
		return 2
	}
	switch {
	case *mode != modeRun && *mode != modeCreate && *mode != modeRestore:
		fmt.Fprintln(os.Stderr, "runc-shim: unknown --mode", *mode)
		return 2
	case *mode == modeRestore && (!filepath.IsAbs(*imagePath) || !filepath.IsAbs(*workPath)):
		fmt.Fprintln(os.Stderr, "runc-shim: --mode restore needs absolute --image-path and --work-path")
		return 2
	}
	logFile, err := os.OpenFile(filepath.Join(*bundle, shimLogFile), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		fmt.Fprintln(os.Stderr, "runc-shim:", err)
		return 1
	}
	defer logFile.Close()
	s := &shim{runc: *runcPath, root: *root, bundle: *bundle, id: *id, mounts: *mounts,
		mode: *mode, imagePath: *imagePath, workPath: *workPath,
		log: slog.New(slog.NewTextHandler(logFile, nil)).With("instance", *id, "shim", os.Getpid())}
	if *withConsole {
		// Not for runc: a runc holding the master would keep the pty alive,
		// and writers blocked, after this shim is gone.
		for _, fd := range []int{3, 4} {
			syscall.CloseOnExec(fd)
		}
		if err := unix.SetNonblock(3, true); err != nil {
			s.log.Error("console", "err", err)
		}
		s.console = os.NewFile(3, "console-master")
		s.consoleSlave = os.NewFile(4, "console-slave")
	}
	exit := s.run()
	if err := writeJSON(filepath.Join(s.bundle, exitFile), exit); err != nil {
		s.log.Error("recording exit", "err", err)
		return 1
	}
	s.log.Info("PID 1 ended", "code", exit.ExitCode, "error", exit.Error)
	return 0
}

type shim struct {
	runc, root, bundle, id string
	mounts                 bool // serve mount(2) (see mountnotify.go)
	// mode is modeRun, modeCreate or modeRestore (from imagePath, with
	// CRIU's work directory workPath).
	mode, imagePath, workPath string
	log                       *slog.Logger
	// console is the master of the instance's /dev/console pty (nil:
	// none); consoleSlave keeps it readable while the instance has the
	// console closed.
	console, consoleSlave *os.File
}

func (s *shim) run() exitRecord {
	// Catch (not ignore) the signals that end a process by default: an
	// ignored disposition would be inherited by runc and PID 1.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGPIPE)
	go func() {
		for sig := range sigs {
			s.log.Info("ignoring signal", "signal", sig)
		}
	}()
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return s.failed(fmt.Errorf("becoming subreaper: %w", err))
	}
	if s.console != nil {
		stop, done := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(done)
			pumpConsole(s.console, os.Stdout, stop)
		}()
		defer func() {
			close(stop)
			<-done
			s.console.Close()
			s.consoleSlave.Close()
		}()
	}
	if s.mounts {
		// Listening before runc runs: runc connects as PID 1 is set up.
		ln, err := listenMounts(filepath.Join(s.bundle, seccompSocket))
		if err != nil {
			return s.failed(err)
		}
		stats := &mountStats{}
		go s.serveMounts(ln, stats)
		defer func() {
			ln.Close()
			s.log.Info("mount calls", "passed", stats.passed.Load(), "performed", stats.performed.Load(), "refused", stats.refused.Load())
		}()
	}
	if s.mode != modeRun {
		return s.runDetached()
	}
	pidPath := filepath.Join(s.bundle, pidFile)
	null, err := os.Open(os.DevNull)
	if err != nil {
		return s.failed(err)
	}
	defer null.Close()
	argv := []string{s.runc, "--root", s.root, "--log", filepath.Join(s.bundle, runcLogFile),
		"run", "--bundle", s.bundle, "--pid-file", pidPath, s.id}
	runc, err := os.StartProcess(s.runc, argv, &os.ProcAttr{Dir: "/", Env: runcEnv(), Files: []*os.File{null, os.Stdout, os.Stderr}})
	if err != nil {
		return s.failed(fmt.Errorf("starting runc: %w", err))
	}
	s.log.Info("runc run started", "runc", runc.Pid)
	ws, err := reap(runc.Pid)
	if err != nil {
		return s.failed(err)
	}
	pid1, _ := readPid(pidPath)
	exit := exitRecord{ExitCode: -1, Pid: pid1}
	if fi, err := os.Stat(pidPath); err == nil {
		exit.StartedAt = fi.ModTime()
	}
	switch {
	case pid1 == 0:
		exit.Error = fmt.Sprintf("runc run %s before PID 1 ran", describe(ws))
	case ws.Exited(): // runc run exits with PID 1's status (128+signal if killed)
		exit.ExitCode = ws.ExitStatus()
	default: // runc was killed; PID 1 is now this shim's child, if it lives
		s.log.Warn("runc run was killed; waiting for PID 1 directly", "status", describe(ws))
		exit.ExitCode, exit.Error = s.awaitOrphan(pid1)
	}
	exit.ExitedAt = time.Now()
	return exit
}

// awaitOrphan waits for a PID 1 that runc no longer supervises and removes
// runc's leftover record.
func (s *shim) awaitOrphan(pid1 int) (int, string) {
	code, msg := -1, "runc run was killed; PID 1's exit status is unknown"
	if ws, err := reap(pid1); err == nil {
		code, msg = exitCode(ws), ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.runc, "--root", s.root, "delete", "--force", s.id)
	if out, err := cmd.CombinedOutput(); err != nil {
		s.log.Warn("removing runc's record", "err", err, "output", string(out))
	}
	return code, msg
}

func (s *shim) failed(err error) exitRecord {
	s.log.Error("run failed", "err", err)
	return exitRecord{ExitCode: -1, ExitedAt: time.Now(), Error: err.Error()}
}

// runcEnv is the shim's environment without systemd's service protocol
// variables: runc would proxy NOTIFY_SOCKET into the instance and wait for
// it to report ready.
func runcEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		switch strings.SplitN(kv, "=", 2)[0] {
		case "NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES":
		default:
			env = append(env, kv)
		}
	}
	return env
}

// reap waits for pid, reaping any other child (orphans reparented to the
// subreaper) on the way.
func reap(pid int) (unix.WaitStatus, error) {
	for {
		var ws unix.WaitStatus
		got, err := unix.Wait4(-1, &ws, 0, nil)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return 0, fmt.Errorf("waiting for %d: %w", pid, err)
		case got == pid:
			return ws, nil
		}
	}
}

// exitCode is the status as a shell reports it: 128+signal if signalled.
func exitCode(ws unix.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

func describe(ws unix.WaitStatus) string {
	if ws.Signaled() {
		return "killed by " + ws.Signal().String()
	}
	return fmt.Sprintf("exited %d", ws.ExitStatus())
}
