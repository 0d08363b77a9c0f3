package runc

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"nubo/internal/runtime"
)

// killTimeout bounds the wait for an instance to end after SIGKILL.
const killTimeout = 10 * time.Second

// Stop sends SIGTERM to PID 1 (SIGRTMIN+4 to systemd: see shutdownSignal),
// waits up to grace for it to exit, then kills every process of the
// instance and waits until the shim has recorded the exit. Stopping a
// stopped instance is a no-op.
func (d *Driver) Stop(ctx context.Context, id string, grace time.Duration) error {
	defer d.locks.lock(id)()
	if err := d.stop(ctx, id, grace); err != nil {
		return fmt.Errorf("stopping %s: %w", id, err)
	}
	return nil
}

func (d *Driver) stop(ctx context.Context, id string, grace time.Duration) error {
	if !runtime.ValidID(id) {
		return runtime.ErrNotFound
	}
	o, err := d.observeSettled(ctx, id)
	switch {
	case err != nil:
		return err
	case !o.found():
		return runtime.ErrNotFound
	case !o.busy():
		return nil
	}
	if o.running() && grace > 0 {
		if err := d.terminate(ctx, id, o.runc.Pid, grace); err != nil {
			return err
		}
	}
	if err := d.kill(ctx, id); err != nil {
		return err
	}
	return d.awaitEnd(ctx, id)
}

// sigRTMIN is glibc's SIGRTMIN (the kernel's 32 plus the two glibc keeps
// for itself), from which systemd counts its signals.
const sigRTMIN = 34

// shutdownSignal is the signal that asks PID 1 to power off: SIGTERM, but
// for systemd, which re-executes itself on SIGTERM and powers off on
// SIGRTMIN+4 (start poweroff.target, as an ACPI power button would).
// systemd's own name (its comm) is what tells it, whatever Spec.Init named.
func shutdownSignal(pid int) (name string, sig unix.Signal) {
	comm, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	if strings.TrimSpace(string(comm)) == "systemd" {
		return "SIGRTMIN+4", unix.Signal(sigRTMIN + 4)
	}
	return "SIGTERM", unix.SIGTERM
}

// terminate asks PID 1 to shut down (see shutdownSignal) and waits up to
// grace for it to exit.
func (d *Driver) terminate(ctx context.Context, id string, pid int, grace time.Duration) error {
	if err := awaitExec(ctx, pid); err != nil {
		return err
	}
	pid1, err := procOf(pid)
	if err != nil {
		return nil // already gone
	}
	name, sig := shutdownSignal(pid)
	// runc parses signal names without the SIGRTMIN+n forms: give a number.
	if err := d.runcKill(ctx, id, strconv.Itoa(int(sig)), false); err != nil {
		if o, oerr := d.observe(ctx, id); oerr == nil && !o.running() {
			return nil
		}
		return err
	}
	exited, err := waitExit(ctx, pid1, grace)
	if err != nil {
		return err
	}
	if !exited {
		d.log.Info("instance ignored "+name+"; killing it", "instance", id, "grace", grace)
	}
	return nil
}

// kill sends SIGKILL to every process of the instance, if any still runs.
func (d *Driver) kill(ctx context.Context, id string) error {
	o, err := d.observe(ctx, id)
	if err != nil {
		return err
	}
	if o.runc == nil || o.runc.Status == "stopped" {
		return nil
	}
	if err := d.runcKill(ctx, id, "KILL", true); err != nil {
		if o, oerr := d.observe(ctx, id); oerr == nil && (o.runc == nil || o.runc.Status == "stopped") {
			return nil
		}
		return err
	}
	return nil
}

// awaitEnd waits until PID 1 has ended and the shim has recorded it.
func (d *Driver) awaitEnd(ctx context.Context, id string) error {
	o, err := d.observe(ctx, id)
	if err != nil {
		return err
	}
	if o.run != nil && o.shimAlive {
		if _, err := waitExit(ctx, o.run.Shim, killTimeout); err != nil {
			return err
		}
	}
	ended, err := pollUntil(ctx, 10*time.Millisecond, killTimeout, func() (bool, error) {
		o, err := d.observe(ctx, id)
		return err == nil && !o.busy(), err
	})
	if err != nil {
		return err
	}
	if ended {
		return nil
	}
	if o, err = d.observe(ctx, id); err == nil && !o.running() && o.shimAlive {
		// PID 1 is gone but the shim is stuck: end it; the exit code of
		// this run stays unknown.
		d.log.Warn("killing a stuck shim", "instance", id, "shim", o.run.Shim.Pid)
		if err := unix.Kill(o.run.Shim.Pid, unix.SIGKILL); err != nil {
			return fmt.Errorf("killing stuck shim: %w", err)
		}
		_, err = waitExit(ctx, o.run.Shim, killTimeout)
		return err
	}
	return fmt.Errorf("still running %v after SIGKILL", killTimeout)
}
