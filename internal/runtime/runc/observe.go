package runc

import (
	"context"
	"fmt"
	"time"

	"nubo/internal/runtime"
)

// runRecord names the shim of an instance's latest run (run.json).
type runRecord struct {
	Shim      proc      `json:"shim"`
	StartedAt time.Time `json:"startedAt"`
	// Mode is the shim's --mode: "" (modeRun) for every instance but a
	// Hibernatable one, whose runs are modeCreate (Prepare, then Start) or
	// modeRestore.
	Mode string `json:"mode,omitempty"`
}

// exitRecord is how PID 1 of the latest run ended (exit.json, by the shim).
type exitRecord struct {
	// ExitCode of PID 1, 128+signal if a signal killed it, -1 if unknown.
	ExitCode  int       `json:"exitCode"`
	Pid       int       `json:"pid,omitempty"`
	StartedAt time.Time `json:"startedAt,omitzero"`
	ExitedAt  time.Time `json:"exitedAt"`
	// Error: why PID 1 never ran or why its status is unknown.
	Error string `json:"error,omitempty"`
}

// observation is every fact the driver measures about an instance.
type observation struct {
	bundle    bool        // spec.json present
	runc      *runcState  // nil: runc has no record
	run       *runRecord  // nil: never started
	shimAlive bool        // the latest run's shim still runs
	exit      *exitRecord // nil: the latest run has not ended (or never ran)
}

func (o observation) found() bool { return o.bundle || o.runc != nil }

// running: PID 1 runs (or is paused).
func (o observation) running() bool {
	return o.runc != nil && (o.runc.Status == "running" || o.runc.Status == "paused")
}

// busy: a run is in progress, starting or ending, whatever runc says.
func (o observation) busy() bool { return o.running() || o.shimAlive && o.exit == nil }

// prepared: a Hibernatable instance's PID 1 is made and waits for Start
// (runc start); this lasts until Start, Stop or Delete.
func (o observation) prepared() bool {
	return o.run != nil && o.run.Mode == modeCreate && o.runc != nil && o.runc.Status == "created" &&
		o.shimAlive && o.exit == nil
}

// transient: a run is starting or ending; the shim will settle it soon.
func (o observation) transient() bool {
	return !o.running() && !o.prepared() && o.shimAlive && o.exit == nil
}

func (d *Driver) observe(ctx context.Context, id string) (observation, error) {
	var o observation
	o.bundle = exists(d.file(id, specFile))
	var err error
	if o.runc, err = d.runcStateOf(ctx, id); err != nil {
		return o, err
	}
	var run runRecord
	ok, err := readJSON(d.file(id, runFile), &run)
	if err != nil {
		return o, err
	}
	if ok {
		o.run = &run
		o.shimAlive = run.Shim.alive()
	}
	var exit exitRecord
	if ok, err = readJSON(d.file(id, exitFile), &exit); err != nil {
		return o, err
	}
	if ok {
		o.exit = &exit
	}
	return o, nil
}

// state maps the facts to the contract's view.
func (o observation) state() runtime.State {
	st := runtime.State{Status: runtime.Created, ExitCode: -1}
	switch {
	case o.running():
		st.Status, st.Pid, st.StartedAt = runtime.Running, o.runc.Pid, o.runc.Created
	case o.runc != nil && o.runc.Status == "created":
		// PID 1 is made but not yet released (a start in progress or cut
		// short by a crash).
	case o.runc != nil || o.exit != nil || o.run != nil && !o.shimAlive:
		st.Status = runtime.Stopped
		if o.exit != nil {
			st.ExitCode, st.StartedAt = o.exit.ExitCode, o.exit.StartedAt
		}
	}
	return st
}

// settleTimeout bounds how long an observation waits for a starting or
// ending run to settle, so State rarely reports a half-made transition
// (e.g. Stopped before the shim has recorded the exit code).
const settleTimeout = 2 * time.Second

// observeSettled observes id, waiting up to settleTimeout while a run is
// starting or ending.
func (d *Driver) observeSettled(ctx context.Context, id string) (observation, error) {
	var o observation
	_, err := pollUntil(ctx, 5*time.Millisecond, settleTimeout, func() (bool, error) {
		var err error
		o, err = d.observe(ctx, id)
		return err == nil && !o.transient(), err
	})
	return o, err
}

// State observes one instance.
func (d *Driver) State(ctx context.Context, id string) (runtime.State, error) {
	if !runtime.ValidID(id) {
		return runtime.State{}, fmt.Errorf("observing %q: %w", id, runtime.ErrNotFound)
	}
	o, err := d.observeSettled(ctx, id)
	if err != nil {
		return runtime.State{}, fmt.Errorf("observing %s: %w", id, err)
	}
	if !o.found() {
		return runtime.State{}, fmt.Errorf("observing %s: %w", id, runtime.ErrNotFound)
	}
	return o.state(), nil
}
