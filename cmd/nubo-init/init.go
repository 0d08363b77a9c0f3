package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Exit codes of nubo-init as PID 1 (see the package doc).
const (
	exitPoweroff = 0
	exitUsage    = 2
	exitReboot   = 129
)

const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// initd is nubo-init running as PID 1.
type initd struct {
	root       string // "/" in an instance
	grace      time.Duration
	instanceID string
	imdsURL    string
	con        *console
	out        *os.File // console, handed to children
	procs      *procs
	started    time.Time

	md            *imds // the metadata service, once asked
	mdErr         error // why it could not be asked
	keysInstalled bool  // the key pair's key is in place
}

func (in *initd) path(rel string) string { return filepath.Join(in.root, rel) }

func runInit(args []string, out *os.File) int {
	started := time.Now()
	fs := flag.NewFlagSet("nubo-init", flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	root := fs.String("root", "/", "prefix for every path nubo-init reads or writes (tests)")
	grace := fs.Duration("grace", 5*time.Second, "how long processes get between SIGTERM and SIGKILL at shutdown")
	imdsURL := fs.String("imds", defaultIMDS, "the instance metadata service (tests)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "nubo-init: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	in := &initd{
		root:       *root,
		grace:      *grace,
		instanceID: os.Getenv("NUBO_INSTANCE_ID"),
		imdsURL:    *imdsURL,
		con:        &console{w: out},
		out:        out,
		procs:      newProcs(),
		started:    started,
	}
	return in.run()
}

// run boots the instance and serves signals until shutdown; it returns the
// exit code.
func (in *initd) run() int {
	// Every signal nubo-init may receive is caught: as PID 1 an uncaught
	// SIGHUP would make the Go runtime exit, and a broken console (SIGPIPE on
	// stdout) must not stop the instance. Caught, not ignored, so that
	// children start with default dispositions. SIGCHLD has its own channel,
	// so that a storm of exiting children never crowds out a shutdown request
	// (one pending SIGCHLD is enough: each reap collects every exited child).
	chld := make(chan os.Signal, 1)
	signal.Notify(chld, syscall.SIGCHLD)
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR1, syscall.SIGUSR2,
		syscall.SIGPWR, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGPIPE)
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		in.con.logf("cannot become child subreaper: %v", err)
	}
	if os.Getenv("PATH") == "" {
		os.Setenv("PATH", defaultPath)
	}
	in.con.logf("starting (pid %d)", os.Getpid())
	if in.root == "/" { // tests run with another root, in the host's network namespace
		if up, err := loopbackUp(); err != nil {
			in.con.logf("cannot bring up loopback: %v", err)
		} else if up {
			in.con.logf("brought up loopback")
		}
	}
	go in.boot()
	for {
		select {
		case <-chld:
			in.procs.reap()
		case sig := <-sigs:
			switch sig {
			case syscall.SIGTERM, syscall.SIGUSR2, syscall.SIGPWR:
				return in.shutdown(actPoweroff, sig)
			case syscall.SIGUSR1:
				return in.shutdown(actHalt, sig)
			case syscall.SIGINT:
				return in.shutdown(actReboot, sig)
			case syscall.SIGPIPE:
			default:
				in.con.logf("ignoring %v", sig)
			}
		}
	}
}

// boot does the first-boot and every-boot work, then supervises sshd. It
// gives up as soon as shutdown begins.
func (in *initd) boot() {
	ctx := context.Background()
	if err := os.Remove(in.path(bootFinished)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		in.con.logf("cannot remove /%s: %v", bootFinished, err)
	}
	if in.root == "/" { // tests run nubo-init over a temporary root, unprivileged mounts aside
		in.mountFstab()
	}
	in.identify(ctx)
	marker := in.path(firstBootMarker)
	first, err := firstBootNeeded(marker, in.instanceID)
	if err != nil {
		in.con.logf("cannot read first-boot marker: %v; treating this as a later boot", err)
	}
	scripts := &scriptRunner{con: in.con, out: in.out, run: in.procs.run, dir: in.root, stop: in.procs.isClosed}
	if first {
		t0 := time.Now()
		in.con.logf("first boot: preparing the instance")
		if made, err := ensureMachineID(in.path("etc/machine-id")); err != nil {
			in.con.logf("cannot write /etc/machine-id: %v", err)
		} else if made {
			in.con.logf("wrote a new /etc/machine-id")
		}
		in.generateHostKeys()
		in.keysInstalled = in.installKeyPair(ctx)
		scripts.runDir("first-boot.d", in.path("etc/nubo-init/first-boot.d"))
		if in.procs.isClosed() {
			return // cut short: the next boot is a first boot again
		}
		if err := markFirstBootDone(marker, in.instanceID); err != nil {
			in.con.logf("cannot write first-boot marker: %v", err)
		}
		in.con.logf("first boot done in %s", since(t0))
	} else if hostKeysMissing(in.path("etc/ssh")) {
		in.generateHostKeys()
	}
	scripts.runDir("boot.d", in.path("etc/nubo-init/boot.d"))
	in.superviseSSHD()
}

// Host key types, fast first: ed25519 and ECDSA take milliseconds, RSA
// takes a good fraction of a second (seconds on a busy host), so it is made
// after sshd is up (see addSlowHostKeys) rather than delaying every first
// boot. sshd offers it from its next start: reloading sshd now would close
// its listening socket for a moment and refuse connections (every client
// since OpenSSH 6.5 takes an ed25519 key anyway).
var (
	fastHostKeys = []string{"ed25519", "ecdsa"}
	slowHostKeys = []string{"rsa"}
)

// generateHostKeys makes the missing fast host keys.
func (in *initd) generateHostKeys() {
	t0 := time.Now()
	in.con.logf("generating missing SSH host keys (%s)", strings.Join(fastHostKeys, ", "))
	if in.makeHostKeys(fastHostKeys) {
		in.con.logf("SSH host keys ready in %s", since(t0))
	}
}

// makeHostKeys runs ssh-keygen for each missing key type; false if one failed.
func (in *initd) makeHostKeys(types []string) bool {
	return in.makeHostKeysNice(types, false)
}

// makeHostKeysNice is makeHostKeys, at the lowest CPU priority when idle is
// set, so that a background key never slows a boot (this one or another
// instance's on the same host).
func (in *initd) makeHostKeysNice(types []string, idle bool) bool {
	ok := true
	for _, t := range types {
		path := in.path("etc/ssh/ssh_host_" + t + "_key")
		if _, err := os.Stat(path); err == nil {
			continue
		}
		args := []string{in.path("usr/bin/ssh-keygen"), "-q", "-N", "", "-t", t, "-f", path}
		if nice := in.path("usr/bin/nice"); idle && fileExists(nice) {
			args = append([]string{nice, "-n", "19"}, args...)
		}
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Dir = in.root
		cmd.Stdout, cmd.Stderr = in.out, in.out
		if err := in.procs.run(cmd); err != nil {
			in.con.logf("ssh-keygen -t %s failed: %v", t, err)
			ok = false
		}
	}
	return ok
}

// afterReady starts what waits for sshd to be up: the slow host keys (then,
// once per instance, the host key block on the console) and the user data.
func (in *initd) afterReady() {
	go func() {
		in.addSlowHostKeys()
		if !in.procs.isClosed() {
			in.printHostKeysOnce()
		}
	}()
	go in.provision(context.Background())
}

// addSlowHostKeys makes the missing slow host keys, at the lowest priority,
// for sshd's next start.
func (in *initd) addSlowHostKeys() {
	missing := false
	for _, t := range slowHostKeys {
		if _, err := os.Stat(in.path("etc/ssh/ssh_host_" + t + "_key")); err != nil {
			missing = true
		}
	}
	if !missing {
		return
	}
	t0 := time.Now()
	if !in.makeHostKeysNice(slowHostKeys, true) || in.procs.isClosed() {
		return
	}
	in.con.logf("SSH host keys (%s) ready in %s, for sshd's next start", strings.Join(slowHostKeys, ", "), since(t0))
}

// shutdown stops every process (SIGTERM, grace, SIGKILL), syncs and returns
// the exit code for action.
func (in *initd) shutdown(action powerAction, sig os.Signal) int {
	in.con.logf("%s requested (%v): stopping all processes", action, sig)
	in.procs.shutdown(syscall.SIGTERM)
	if !in.procs.waitAll(in.grace) {
		in.con.logf("processes still running after %s: killing them", in.grace)
		in.procs.signalAll(syscall.SIGKILL)
		if !in.procs.waitAll(2 * time.Second) {
			in.con.logf("some processes did not die")
		}
	}
	syscall.Sync()
	if action == actReboot {
		in.con.logf("rebooting (exit %d)", exitReboot)
		return exitReboot
	}
	if action == actHalt {
		in.con.logf("halted (exit %d)", exitPoweroff)
	} else {
		in.con.logf("powered off (exit %d)", exitPoweroff)
	}
	return exitPoweroff
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
