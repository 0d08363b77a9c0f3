// Package fake is an in-memory runtime.Driver with the semantics of the
// real one, for unit tests of the code that drives instances. Nothing runs:
// PID 1 "runs" from Start until Stop, Delete or Exit (a poweroff inside the
// instance), and any method can be made to fail.
package fake

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"nubo/internal/runtime"
)

// Op names a Driver method, for Fail.
type Op string

const (
	OpCreate Op = "Create"
	OpStart  Op = "Start"
	OpStop   Op = "Stop"
	OpDelete Op = "Delete"
	OpState  Op = "State"
	OpList   Op = "List"

	OpPrepare    Op = "Prepare"
	OpCheckpoint Op = "Checkpoint"
	OpRestore    Op = "Restore"
)

// Driver is the fake. The zero value is not usable; call New.
type Driver struct {
	mu        sync.Mutex
	instances map[string]*instance
	nextPid   int
	failures  map[failure]error
	calls     map[Op]int
}

type instance struct {
	spec       runtime.Spec
	state      runtime.State
	ignoreTerm bool
	devices    map[string]runtime.BlockDevice // attached since Create
	mounted    map[string]bool
	// prepared: Prepare made PID 1 (state.Pid, status Created) and Start
	// has not run it yet.
	prepared bool
	// restored: the latest run is a Restore (of images[dir]).
	restored bool
	// images are the checkpoints taken, by directory: the PID inside
	// stays, so only the fact of a checkpoint is kept.
	images map[string]bool
}

type failure struct {
	op Op
	id string
}

var (
	_ runtime.Driver     = (*Driver)(nil)
	_ runtime.Hibernator = (*Driver)(nil)
)

// New returns an empty fake.
func New() *Driver {
	return &Driver{
		instances: make(map[string]*instance),
		nextPid:   1000,
		failures:  make(map[failure]error),
		calls:     make(map[Op]int),
	}
}

// Fail makes every later call of op on id return err (wrapped), until
// cleared with a nil err. An empty id matches every instance.
func (d *Driver) Fail(op Op, id string, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err == nil {
		delete(d.failures, failure{op, id})
		return
	}
	d.failures[failure{op, id}] = err
}

// Exit makes PID 1 of a running instance exit with code by itself, as a
// poweroff (0) or reboot (129) inside the instance would.
func (d *Driver) Exit(id string, code int) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	in, ok := d.instances[id]
	if !ok {
		return fmt.Errorf("exiting %s: %w", id, runtime.ErrNotFound)
	}
	if in.state.Status != runtime.Running {
		return fmt.Errorf("exiting %s: not running (%s)", id, in.state.Status)
	}
	in.stopped(code)
	return nil
}

// IgnoreTerm makes PID 1 of id ignore SIGTERM, so Stop kills it after its
// grace (exit code 137) instead of it exiting cleanly (0). Stop does not
// actually wait for the grace period.
func (d *Driver) IgnoreTerm(id string, ignore bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	in, ok := d.instances[id]
	if !ok {
		return fmt.Errorf("%s: %w", id, runtime.ErrNotFound)
	}
	in.ignoreTerm = ignore
	return nil
}

// Spec returns the spec id was last created with.
func (d *Driver) Spec(id string) (runtime.Spec, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	in, ok := d.instances[id]
	if !ok {
		return runtime.Spec{}, false
	}
	return in.spec, true
}

// Calls counts the calls of op so far, failed ones included.
func (d *Driver) Calls(op Op) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.calls[op]
}

// enter counts a call and returns its injected error or ctx's, if any.
// d.mu must be held.
func (d *Driver) enter(ctx context.Context, op Op, id string) error {
	d.calls[op]++
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := d.failures[failure{op, id}]; err != nil {
		return err
	}
	return d.failures[failure{op, ""}]
}

func (in *instance) stopped(code int) {
	in.prepared = false
	in.state = runtime.State{Status: runtime.Stopped, StartedAt: in.state.StartedAt, ExitCode: code}
}

// Create records the instance; the same ID again replaces its spec, which
// (as in the real driver) takes effect at the next Start.
func (d *Driver) Create(ctx context.Context, spec runtime.Spec) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.enter(ctx, OpCreate, spec.ID); err != nil {
		return fmt.Errorf("creating %s: %w", spec.ID, err)
	}
	if err := spec.Validate(); err != nil {
		return fmt.Errorf("creating %s: %w", spec.ID, err)
	}
	if spec.Hibernatable && spec.NetNS != "" {
		return fmt.Errorf("creating %s: a Hibernatable instance gets its network namespace from the runtime: NetNS must be empty", spec.ID)
	}
	if in, ok := d.instances[spec.ID]; ok {
		in.spec = spec
		in.devices = devicesOf(spec)
		return nil
	}
	d.instances[spec.ID] = &instance{spec: spec, devices: devicesOf(spec), state: runtime.State{Status: runtime.Created, ExitCode: -1}}
	return nil
}

// Start "runs" PID 1 with a new PID.
func (d *Driver) Start(ctx context.Context, id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.enter(ctx, OpStart, id); err != nil {
		return fmt.Errorf("starting %s: %w", id, err)
	}
	in, ok := d.instances[id]
	if !ok {
		return fmt.Errorf("starting %s: %w", id, runtime.ErrNotFound)
	}
	if in.state.Status == runtime.Running {
		return nil
	}
	if in.spec.Hibernatable && !in.prepared {
		d.prepare(in)
	}
	pid := in.state.Pid
	if !in.prepared {
		d.nextPid++
		pid = d.nextPid
	}
	in.prepared, in.restored = false, false
	in.state = runtime.State{Status: runtime.Running, Pid: pid, StartedAt: time.Now(), ExitCode: -1}
	return nil
}

// Stop ends PID 1: exit code 0, or 137 if it ignores SIGTERM.
func (d *Driver) Stop(ctx context.Context, id string, grace time.Duration) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.enter(ctx, OpStop, id); err != nil {
		return fmt.Errorf("stopping %s: %w", id, err)
	}
	in, ok := d.instances[id]
	if !ok {
		return fmt.Errorf("stopping %s: %w", id, runtime.ErrNotFound)
	}
	if in.prepared { // killed before it ran
		in.stopped(128 + 9)
		return nil
	}
	if in.state.Status != runtime.Running {
		return nil
	}
	code := 0
	if in.ignoreTerm || grace <= 0 {
		code = 128 + 9
	}
	in.stopped(code)
	return nil
}

// Delete forgets the instance.
func (d *Driver) Delete(ctx context.Context, id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.enter(ctx, OpDelete, id); err != nil {
		return fmt.Errorf("deleting %s: %w", id, err)
	}
	delete(d.instances, id)
	return nil
}

// State observes one instance.
func (d *Driver) State(ctx context.Context, id string) (runtime.State, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.enter(ctx, OpState, id); err != nil {
		return runtime.State{}, fmt.Errorf("observing %s: %w", id, err)
	}
	in, ok := d.instances[id]
	if !ok {
		return runtime.State{}, fmt.Errorf("observing %s: %w", id, runtime.ErrNotFound)
	}
	return in.state, nil
}

// List returns every instance's ID, sorted.
func (d *Driver) List(ctx context.Context) ([]string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.enter(ctx, OpList, ""); err != nil {
		return nil, fmt.Errorf("listing instances: %w", err)
	}
	ids := make([]string, 0, len(d.instances))
	for id := range d.instances {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids, nil
}

// netns is the fake path of PID 1's network namespace, as the real
// driver's: /proc/<pid>/ns/net (nothing is there).
func netns(pid int) string { return fmt.Sprintf("/proc/%d/ns/net", pid) }

// prepare makes PID 1 of in, status Created. d.mu must be held.
func (d *Driver) prepare(in *instance) {
	d.nextPid++
	in.prepared, in.restored = true, false
	in.state = runtime.State{Status: runtime.Created, Pid: d.nextPid, ExitCode: -1}
}

// Prepare "makes" PID 1 of a Hibernatable instance with a new PID (State:
// Created, Pid set) and returns its namespace path; Start then runs it
// with that PID. A prepared or running instance gives its path again.
func (d *Driver) Prepare(ctx context.Context, id string) (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.enter(ctx, OpPrepare, id); err != nil {
		return "", fmt.Errorf("preparing %s: %w", id, err)
	}
	in, ok := d.instances[id]
	switch {
	case !ok:
		return "", fmt.Errorf("preparing %s: %w", id, runtime.ErrNotFound)
	case !in.spec.Hibernatable:
		return "", fmt.Errorf("preparing %s: not a Hibernatable instance", id)
	case in.prepared || in.state.Status == runtime.Running:
		return netns(in.state.Pid), nil
	}
	d.prepare(in)
	return netns(in.state.Pid), nil
}

// Checkpoint "saves" a running Hibernatable instance into dir (the fake
// writes nothing there) and stops it with exit code 137, as CRIU's kill
// shows in the real driver. It fails, the instance running on, if the
// instance does not run or is not Hibernatable, or by Fail(OpCheckpoint).
func (d *Driver) Checkpoint(ctx context.Context, id, dir string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.enter(ctx, OpCheckpoint, id); err != nil {
		return fmt.Errorf("checkpointing %s: %w", id, err)
	}
	in, ok := d.instances[id]
	switch {
	case !ok:
		return fmt.Errorf("checkpointing %s: %w", id, runtime.ErrNotFound)
	case in.state.Status != runtime.Running:
		return fmt.Errorf("checkpointing %s: not running (%s)", id, in.state.Status)
	case !in.spec.Hibernatable:
		return fmt.Errorf("checkpointing %s: its run was not started Hibernatable", id)
	case dir == "":
		return fmt.Errorf("checkpointing %s: no image directory", id)
	}
	if in.images == nil {
		in.images = make(map[string]bool)
	}
	in.images[dir] = true
	in.stopped(128 + 9)
	return nil
}

// Restore "brings back" the checkpoint in dir: the instance runs again,
// with a new host PID (as the real driver's PID 1 gets one; inside it is
// the same), and its namespace path is returned. A checkpoint the fake
// did not take, a busy instance, or Fail(OpRestore) is an error; the
// images stay (the caller removes them) and Restoring a restored instance
// that runs gives its path again.
func (d *Driver) Restore(ctx context.Context, id, dir string) (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.enter(ctx, OpRestore, id); err != nil {
		return "", fmt.Errorf("restoring %s: %w", id, err)
	}
	in, ok := d.instances[id]
	switch {
	case !ok:
		return "", fmt.Errorf("restoring %s: %w", id, runtime.ErrNotFound)
	case in.restored && in.state.Status == runtime.Running:
		return netns(in.state.Pid), nil
	case in.prepared || in.state.Status == runtime.Running:
		return "", fmt.Errorf("restoring %s: instance is %s: stop it first", id, in.state.Status)
	case !in.spec.Hibernatable:
		return "", fmt.Errorf("restoring %s: not a Hibernatable instance", id)
	case !in.images[dir]:
		return "", fmt.Errorf("restoring %s: no checkpoint in %s", id, dir)
	}
	d.nextPid++
	in.restored = true
	in.state = runtime.State{Status: runtime.Running, Pid: d.nextPid, StartedAt: time.Now(), ExitCode: -1}
	return netns(in.state.Pid), nil
}
