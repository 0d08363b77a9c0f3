package runc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"nubo/internal/runtime"
)

// Hibernation (runtime.Hibernator), with CRIU through runc checkpoint and
// restore (see docs/criu-notes.md for what was measured).
//
// A Hibernatable instance is laid out as CRIU needs it, otherwise exactly
// as any other (user namespace, cgroups, devices directory, hooks):
//
//   - runc makes its network namespace, owned by the instance's user
//     namespace (CRIU cannot dump a userns task whose netns the host's
//     user namespace owns); /sys is then a plain sysfs mount. Prepare
//     returns /proc/<PID 1>/ns/net for the network driver to plumb before
//     Start, and Restore the new one's: CRIU does not save veths whose
//     peer is outside, so the caller plumbs again after every Restore.
//   - PID 1's stdout and stderr are a pipe the shim copies into the
//     console log, and there is no /dev/console pty bind (CRIU cannot save
//     a host pty nor a host file).
//   - No seccomp listener: mount(2) interception needs the shim's listener
//     fd, which CRIU cannot save. The kernel then refuses mounts of block
//     filesystems (the instance's volumes) inside a Hibernatable instance,
//     as it did before interception existed; the loop ioctl rules stay.
//   - Bind sources (the bundle's dev/ directory) must be reachable by the
//     instance's root at restore, when CRIU re-opens them from inside the
//     user namespace: Prepare and Restore make Config.Root, its bundles
//     directory and the bundle searchable by others (0711; nothing in them
//     is readable by others), and every directory above Config.Root must
//     be too, as those above Spec.RootFS must for any instance.
//
// Its runs are split: Prepare has the shim run `runc create` (PID 1 made,
// stopped before it runs anything), Start then runs `runc start`.

var _ runtime.Hibernator = (*Driver)(nil)

// criuWorkDir is CRIU's work directory (dump.log, restore.log), in the
// bundle.
const criuWorkDir = "criu"

// Prepare makes a Hibernatable instance's PID 1 under a new shim (runc
// create) and returns its network namespace's path. Preparing a prepared or
// running instance returns the same path.
func (d *Driver) Prepare(ctx context.Context, id string) (string, error) {
	defer d.locks.lock(id)()
	ns, err := d.prepare(ctx, id)
	if err != nil {
		return "", fmt.Errorf("preparing %s: %w", id, err)
	}
	return ns, nil
}

func netnsOf(pid int) string { return "/proc/" + strconv.Itoa(pid) + "/ns/net" }

func (d *Driver) prepare(ctx context.Context, id string) (string, error) {
	if !runtime.ValidID(id) {
		return "", runtime.ErrNotFound
	}
	o, err := d.observeSettled(ctx, id)
	switch {
	case err != nil:
		return "", err
	case !o.bundle:
		return "", runtime.ErrNotFound
	case o.running() || o.prepared():
		return netnsOf(o.runc.Pid), nil
	case o.transient():
		return "", fmt.Errorf("shim %d is still starting or ending a run", o.run.Shim.Pid)
	}
	spec, err := d.hibernatableRun(ctx, id)
	if err != nil {
		return "", err
	}
	if err := d.launch(ctx, spec, modeCreate, nil); err != nil {
		return "", err
	}
	o, err = d.observe(ctx, id)
	if err != nil {
		return "", err
	}
	if !o.prepared() {
		return "", fmt.Errorf("PID 1 not made: %s", describeRun(o))
	}
	d.log.Info("instance prepared", "instance", id, "pid", o.runc.Pid)
	return netnsOf(o.runc.Pid), nil
}

// hibernatableRun readies the bundle for a new run of a Hibernatable
// instance: the previous run's leftovers removed, the bundle reachable, its
// OCI config written.
func (d *Driver) hibernatableRun(ctx context.Context, id string) (runtime.Spec, error) {
	spec, err := d.specOf(id)
	if err != nil {
		return spec, err
	}
	if !spec.Hibernatable {
		return spec, errors.New("not a Hibernatable instance")
	}
	if err := d.clearRun(ctx, id); err != nil {
		return spec, err
	}
	for _, dir := range []string{d.cfg.Root, d.bundlesDir(), d.bundle(id)} {
		if err := os.Chmod(dir, 0o711); err != nil {
			return spec, err
		}
	}
	// No Console, Sysfs or Listener: see the top of this file.
	opts := ociOptions{CgroupParent: d.cfg.CgroupParent, Shim: d.cfg.Shim,
		DeviceDir: filepath.Join(d.bundle(id), devDir)}
	if opts.Devices, err = d.bootDevices(spec); err != nil {
		return spec, err
	}
	// CRIU reads its options from the file runc names in this annotation.
	// tcp-close: established TCP connections (an SSH session) are closed
	// at restore rather than failing the save; EC2 promises none of them
	// across a hibernation either.
	conf := d.file(id, criuConfFile)
	if err := os.WriteFile(conf, []byte("tcp-close\n"), 0o644); err != nil {
		return spec, err
	}
	oci := ociSpec(spec, opts)
	if oci.Annotations == nil {
		oci.Annotations = map[string]string{}
	}
	oci.Annotations["org.criu.config"] = conf
	if err := writeJSON(d.file(id, configFile), oci); err != nil {
		return spec, fmt.Errorf("writing OCI config: %w", err)
	}
	return spec, nil
}

// criuConfFile holds CRIU's options for the instance's saves.
const criuConfFile = "criu.conf"

// launch spawns a shim in mode and waits until it has made PID 1 (runc
// wrote the PID file) or ended, and reports a run that never got going.
func (d *Driver) launch(ctx context.Context, spec runtime.Spec, mode string, extra []string) error {
	id := spec.ID
	shim, err := d.spawnShim(spec, nil, false, append([]string{"--mode", mode}, extra...))
	if err != nil {
		return err
	}
	d.log.Info("instance "+mode, "instance", id, "shim", shim.Pid)
	if err := writeJSON(d.file(id, runFile), runRecord{Shim: shim, StartedAt: time.Now(), Mode: mode}); err != nil {
		return err
	}
	ok, err := pollUntil(ctx, 2*time.Millisecond, startTimeout, func() (bool, error) {
		return exists(d.file(id, pidFile)) || !shim.alive(), nil
	})
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("PID 1 not made after %v", startTimeout)
	}
	o, err := d.observeSettled(ctx, id)
	if err != nil {
		return err
	}
	if o.exit != nil && o.exit.Error != "" {
		return fmt.Errorf("%s; runc log: %s", o.exit.Error, lastLine(d.file(id, runcLogFile)))
	}
	return nil
}

// release runs a prepared PID 1 (runc start) and waits until it has
// executed the instance's init.
func (d *Driver) release(ctx context.Context, id string, pid int) error {
	if _, err := d.runc(ctx, "start", id); err != nil {
		if o, oerr := d.observe(ctx, id); oerr == nil && o.running() {
			return nil
		}
		return err
	}
	if err := awaitExec(ctx, pid); err != nil {
		return err
	}
	o, err := d.observeSettled(ctx, id)
	if err != nil {
		return err
	}
	if !o.running() && o.exit == nil {
		return fmt.Errorf("PID 1 not running after runc start: %s", describeRun(o))
	}
	return nil
}

// describeRun says what an observation shows of the latest run, for errors.
func describeRun(o observation) string {
	switch {
	case o.exit != nil && o.exit.Error != "":
		return o.exit.Error
	case o.exit != nil:
		return fmt.Sprintf("PID 1 exited with %d", o.exit.ExitCode)
	case o.runc != nil:
		return "runc state " + o.runc.Status
	case o.shimAlive:
		return "shim still running"
	}
	return "no runc record and no exit recorded"
}

// Checkpoint saves the processes of a running Hibernatable instance into
// dir (runc checkpoint; CRIU then kills them, and the shim records PID 1's
// end as killed by SIGKILL: State is Stopped with ExitCode 137). The
// images are then given to the instance's root (see giveImages), as CRIU
// reads them from inside the user namespace at restore: dir's parent must
// be root-only (0700). On error the instance keeps running (CRIU resumes what it
// froze), and the error ends with the tail of CRIU's dump.log.
func (d *Driver) Checkpoint(ctx context.Context, id, dir string) error {
	defer d.locks.lock(id)()
	if err := d.checkpoint(ctx, id, dir); err != nil {
		return fmt.Errorf("checkpointing %s: %w", id, err)
	}
	return nil
}

func (d *Driver) checkpoint(ctx context.Context, id, dir string) error {
	if !runtime.ValidID(id) {
		return runtime.ErrNotFound
	}
	if !filepath.IsAbs(dir) {
		return fmt.Errorf("image directory %q is not an absolute path", dir)
	}
	o, err := d.observeSettled(ctx, id)
	switch {
	case err != nil:
		return err
	case !o.found():
		return runtime.ErrNotFound
	case !o.running():
		return fmt.Errorf("not running (%s)", o.state().Status)
	case o.run == nil || o.run.Mode != modeCreate && o.run.Mode != modeRestore:
		return errors.New("its run was not started Hibernatable (a Spec changed while it ran takes effect at the next Start)")
	}
	spec, err := d.specOf(id)
	if err != nil {
		return err
	}
	work := d.file(id, criuWorkDir)
	if err := os.MkdirAll(work, 0o700); err != nil {
		return err
	}
	log := filepath.Join(work, "dump.log")
	if err := removeIfExists(log); err != nil {
		return err
	}
	began := time.Now()
	if err := d.runcCRIU(ctx, "checkpoint", "--image-path", dir, "--work-path", work, id); err != nil {
		still := "it keeps running"
		if o, oerr := d.observe(ctx, id); oerr != nil || !o.running() {
			still = "it is no longer running"
		}
		return fmt.Errorf("%w (%s); CRIU: %s", err, still, criuLogTail(log))
	}
	took := time.Since(began)
	if err := d.awaitEnd(ctx, id); err != nil {
		return err
	}
	if err := giveImages(dir, int(spec.UIDBase), int(spec.GIDBase)); err != nil {
		return fmt.Errorf("giving the images to instance root: %w", err)
	}
	d.log.Info("instance checkpointed", "instance", id, "images", dir, "took", took)
	return nil
}

// Restore brings back the processes saved in dir under a new shim (runc
// restore) and returns the path of the instance's new network namespace.
// It leaves the images to the caller. Restoring an instance that runs
// after a Restore returns its namespace again; any other busy instance is
// an error.
func (d *Driver) Restore(ctx context.Context, id, dir string) (string, error) {
	defer d.locks.lock(id)()
	ns, err := d.restore(ctx, id, dir)
	if err != nil {
		return "", fmt.Errorf("restoring %s: %w", id, err)
	}
	return ns, nil
}

func (d *Driver) restore(ctx context.Context, id, dir string) (string, error) {
	if !runtime.ValidID(id) {
		return "", runtime.ErrNotFound
	}
	if !filepath.IsAbs(dir) {
		return "", fmt.Errorf("image directory %q is not an absolute path", dir)
	}
	o, err := d.observeSettled(ctx, id)
	switch {
	case err != nil:
		return "", err
	case !o.bundle:
		return "", runtime.ErrNotFound
	case o.running() && o.run != nil && o.run.Mode == modeRestore:
		return netnsOf(o.runc.Pid), nil
	case o.busy():
		return "", fmt.Errorf("instance is %s: stop it first", o.state().Status)
	}
	spec, err := d.hibernatableRun(ctx, id)
	if err != nil {
		return "", err
	}
	// Again (Checkpoint did it), in case its caller died before it had.
	if err := giveImages(dir, int(spec.UIDBase), int(spec.GIDBase)); err != nil {
		return "", fmt.Errorf("giving the images to instance root: %w", err)
	}
	work := d.file(id, criuWorkDir)
	if err := os.MkdirAll(work, 0o700); err != nil {
		return "", err
	}
	if err := removeIfExists(filepath.Join(work, "restore.log")); err != nil {
		return "", err
	}
	began := time.Now()
	if err := d.launch(ctx, spec, modeRestore, []string{"--image-path", dir, "--work-path", work}); err != nil {
		return "", err
	}
	o, err = d.observeSettled(ctx, id)
	if err != nil {
		return "", err
	}
	if !o.running() {
		return "", fmt.Errorf("PID 1 not running after restore: %s", describeRun(o))
	}
	d.log.Info("instance restored", "instance", id, "pid", o.runc.Pid, "took", time.Since(began))
	return netnsOf(o.runc.Pid), nil
}

// runcCRIU runs runc with CRIU (CRIUPath) and the environment it needs.
func (d *Driver) runcCRIU(ctx context.Context, args ...string) error {
	args = append([]string{"--root", d.runcRoot(), "--criu", CRIUPath}, args...)
	cmd := exec.CommandContext(ctx, d.cfg.Runc, args...)
	cmd.Env = append(runcEnv(), criuEnv)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("runc %s: %w: %s", args[4], err, lastOf(out.String()))
	}
	return nil
}

// criuLogTail is the gist of a CRIU log for an error message: its last
// few Error lines, else its last line.
func criuLogTail(path string) string {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "no log (" + path + ")"
	}
	if err != nil {
		return err.Error()
	}
	var errs []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if strings.Contains(l, "Error") {
			errs = append(errs, strings.TrimSpace(l))
		}
	}
	if len(errs) == 0 {
		return lastOf(string(b))
	}
	// The rlimit error shows in every log (no CAP_SYS_RESOURCE): noise.
	var kept []string
	for _, l := range errs {
		if !strings.Contains(l, "RLIMIT_NOFILE") {
			kept = append(kept, l)
		}
	}
	if len(kept) == 0 {
		return lastOf(string(b))
	}
	return strings.Join(kept[max(0, len(kept)-4):], " / ")
}

// giveImages makes a checkpoint's images readable to the restore, which
// opens them from inside the instance's user namespace: every file owned by
// instance root (uid:gid) and readable only by it (0600), except the time
// namespace's offsets (timens-*.img, a few bytes of clock offsets), which
// CRIU reads before the namespace's ID mapping is written, as an unmapped
// user: that file is 0644 and the directory 0711 (the restore opens the
// directory itself as host root, so the caller's root-only parent keeps
// everyone else out). Measured: with the directory 0700, `Unable to open
// timens-0.img: Permission denied` at restore, most runs.
func giveImages(dir string, uid, gid int) error {
	return filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := os.Lchown(p, uid, gid); err != nil {
			return err
		}
		mode := os.FileMode(0o600)
		switch {
		case e.IsDir():
			mode = 0o711
			if p != dir {
				mode = 0o700
			}
		case e.Type()&fs.ModeSymlink != 0:
			return nil
		case strings.HasPrefix(e.Name(), "timens-"):
			mode = 0o644
		}
		return os.Chmod(p, mode)
	})
}
