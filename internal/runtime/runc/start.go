package runc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"nubo/internal/runtime"
)

// startTimeout bounds how long Start waits for PID 1 when ctx has no
// deadline of its own.
const startTimeout = time.Minute

// Start runs PID 1 under a new shim and waits until it runs (or has already
// ended). Starting a running instance is a no-op; a stopped one is started
// again after its leftover runc record is removed.
func (d *Driver) Start(ctx context.Context, id string) error {
	defer d.locks.lock(id)()
	if err := d.start(ctx, id); err != nil {
		return fmt.Errorf("starting %s: %w", id, err)
	}
	return nil
}

func (d *Driver) start(ctx context.Context, id string) error {
	if !runtime.ValidID(id) {
		return runtime.ErrNotFound
	}
	o, err := d.observeSettled(ctx, id)
	switch {
	case err != nil:
		return err
	case !o.bundle:
		return runtime.ErrNotFound
	case o.running():
		return nil
	case o.prepared():
		return d.release(ctx, id, o.runc.Pid)
	case o.transient():
		return fmt.Errorf("shim %d is still starting or ending a run", o.run.Shim.Pid)
	}
	spec, err := d.specOf(id)
	if err != nil {
		return err
	}
	if spec.Hibernatable {
		// Nothing to plumb between Prepare and Start: both at once.
		if _, err := d.prepare(ctx, id); err != nil {
			return err
		}
		o, err := d.observe(ctx, id)
		if err != nil {
			return err
		}
		if !o.prepared() {
			return fmt.Errorf("PID 1 not prepared: runc state %v", o.runc)
		}
		return d.release(ctx, id, o.runc.Pid)
	}
	if err := d.clearRun(ctx, id); err != nil {
		return err
	}
	var sysfs string
	if spec.NetNS != "" {
		if err := allowLowPorts(spec.NetNS); err != nil {
			return err
		}
		sysfs = d.file(id, sysfsDir)
		if err := mountSysfs(spec.NetNS, sysfs); err != nil {
			return err
		}
	}
	// The pty of the instance's /dev/console; the shim gets it, so this
	// process closes its copies whatever happens.
	cons, err := newConsole(spec.UIDBase, spec.GIDBase)
	if err != nil {
		d.log.Warn("starting without /dev/console", "instance", id, "err", err)
		cons = nil
	} else {
		defer cons.Close()
	}
	// The OCI config is made again for every run: the pty is the run's, and
	// the hooks run this driver's shim even if an older nubo made the bundle.
	opts := ociOptions{CgroupParent: d.cfg.CgroupParent, Shim: d.cfg.Shim, Sysfs: sysfs}
	if cons != nil {
		opts.Console = cons.path
	}
	opts.DeviceDir = filepath.Join(d.bundle(id), devDir)
	if opts.Devices, err = d.bootDevices(spec); err != nil {
		return err
	}
	if !d.noMountIntercept {
		opts.Listener = d.file(id, seccompSocket)
		if len(opts.Listener) > maxSocketPath {
			return fmt.Errorf("seccomp listener path %s is longer than a unix socket address (%d bytes): use a shorter Root", opts.Listener, maxSocketPath)
		}
	}
	if err := writeJSON(d.file(id, configFile), ociSpec(spec, opts)); err != nil {
		return fmt.Errorf("writing OCI config: %w", err)
	}
	shim, err := d.spawnShim(spec, cons, opts.Listener != "", nil)
	if err != nil {
		return err
	}
	d.log.Info("instance starting", "instance", id, "shim", shim.Pid)
	if err := writeJSON(d.file(id, runFile), runRecord{Shim: shim, StartedAt: time.Now()}); err != nil {
		return err
	}
	return d.awaitPID1(ctx, id, shim)
}

// spawnShim starts the instance's shim in a session of its own, detached
// from the caller: no parent-death signal, stdio on the console log, and
// the console pty, if any, as fds 3 (master) and 4 (slave); with mounts,
// it serves the instance's mount(2) calls (see seccomp.go).
func (d *Driver) spawnShim(spec runtime.Spec, cons *console, mounts bool, extra []string) (proc, error) {
	id := spec.ID
	console := spec.ConsoleLog
	if console == "" {
		console = d.file(id, consoleFile)
	}
	log, err := os.OpenFile(console, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return proc{}, fmt.Errorf("opening console log: %w", err)
	}
	defer log.Close()
	args := append(d.cfg.Shim[1:len(d.cfg.Shim):len(d.cfg.Shim)],
		"--runc", d.cfg.Runc, "--root", d.runcRoot(), "--bundle", d.bundle(id), "--id", id)
	cmd := exec.Command(d.cfg.Shim[0], args...)
	cmd.Dir = "/"
	cmd.Stdout, cmd.Stderr = log, log
	if cons != nil {
		cmd.Args = append(cmd.Args, "--console")
		cmd.ExtraFiles = []*os.File{cons.master, cons.slave} // fds 3 and 4
	}
	if mounts {
		cmd.Args = append(cmd.Args, "--mounts")
	}
	cmd.Args = append(cmd.Args, extra...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return proc{}, fmt.Errorf("spawning shim: %w", err)
	}
	p := proc{Pid: cmd.Process.Pid}
	if start, _, err := procStat(p.Pid); err == nil {
		p.Start = start
	}
	// Reap the shim if it ends while this process lives; if this process
	// dies first, the shim is reparented and lives on.
	go cmd.Wait()
	return p, nil
}

// clearRun removes what the previous run left: runc's record of a run that
// ended, its exit and PID files.
func (d *Driver) clearRun(ctx context.Context, id string) error {
	if err := d.runcDelete(ctx, id); err != nil {
		return err
	}
	for _, f := range []string{exitFile, pidFile} {
		if err := removeIfExists(d.file(id, f)); err != nil {
			return err
		}
	}
	return nil
}

// awaitPID1 waits until runc has released PID 1 (it writes the PID file
// then) or the shim has ended, and reports a run that never got going.
func (d *Driver) awaitPID1(ctx context.Context, id string, shim proc) error {
	ok, err := pollUntil(ctx, 2*time.Millisecond, startTimeout, func() (bool, error) {
		return exists(d.file(id, pidFile)) || !shim.alive(), nil
	})
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("PID 1 not running after %v", startTimeout)
	}
	if pid, err := readPid(d.file(id, pidFile)); err == nil && pid > 0 {
		if err := awaitExec(ctx, pid); err != nil {
			return err
		}
	}
	o, err := d.observeSettled(ctx, id)
	if err != nil {
		return err
	}
	if o.exit != nil && o.exit.Error != "" {
		return fmt.Errorf("%s; runc log: %s", o.exit.Error, lastLine(d.file(id, runcLogFile)))
	}
	if !o.running() && o.exit == nil {
		return errors.New("shim ended without recording PID 1's exit; see " + d.file(id, shimLogFile))
	}
	return nil
}

// lastLine returns the last non-empty line of a file, for error messages.
func lastLine(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	b = bytes.TrimSpace(b)
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[i+1:]
	}
	return string(b)
}

// bootDevices are the devices of the instance's record, whose host nodes
// it makes again if missing (a new boot of the host, say), in the node
// directory every instance has.
func (d *Driver) bootDevices(spec runtime.Spec) ([]runtime.BlockDevice, error) {
	if err := makeDevDir(filepath.Join(d.bundle(spec.ID), devDir)); err != nil {
		return nil, err
	}
	devs, err := d.devices(spec.ID)
	if err != nil {
		return nil, err
	}
	for _, dev := range devs {
		if err := ensureNode(d.deviceNode(spec.ID, dev.Name), dev, spec.UIDBase, spec.GIDBase); err != nil {
			return nil, fmt.Errorf("device %s: %w", dev.Name, err)
		}
	}
	return devs, nil
}
