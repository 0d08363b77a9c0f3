package runc

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// runcState is what `runc state` prints.
type runcState struct {
	ID      string    `json:"id"`
	Pid     int       `json:"pid"`
	Status  string    `json:"status"` // created, running, paused, stopped
	Created time.Time `json:"created"`
}

// runc runs the runc binary against nubo's state root and returns stdout.
func (d *Driver) runc(ctx context.Context, args ...string) ([]byte, error) {
	args = append([]string{"--root", d.runcRoot()}, args...)
	cmd := exec.CommandContext(ctx, d.cfg.Runc, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		return stdout.Bytes(), fmt.Errorf("runc %s: %w: %s", strings.Join(args[2:], " "), err, msg)
	}
	return stdout.Bytes(), nil
}

// runcStateOf returns runc's record of id, or nil if runc has none.
func (d *Driver) runcStateOf(ctx context.Context, id string) (*runcState, error) {
	if !d.runcRecord(id) {
		return nil, nil
	}
	out, err := d.runc(ctx, "state", id)
	if err != nil {
		if !d.runcRecord(id) || strings.Contains(err.Error(), "does not exist") {
			return nil, nil // runc removed it meanwhile
		}
		return nil, err
	}
	var st runcState
	if err := json.Unmarshal(out, &st); err != nil {
		return nil, fmt.Errorf("parsing runc state of %s: %w", id, err)
	}
	return &st, nil
}

// runcKill signals PID 1 (all: every process of the instance).
func (d *Driver) runcKill(ctx context.Context, id, signal string, all bool) error {
	args := []string{"kill"}
	if all {
		args = append(args, "--all")
	}
	_, err := d.runc(ctx, append(args, id, signal)...)
	return err
}

// runcDelete removes runc's record of id, killing what still runs.
func (d *Driver) runcDelete(ctx context.Context, id string) error {
	if !d.runcRecord(id) {
		return nil
	}
	_, err := d.runc(ctx, "delete", "--force", id)
	switch {
	case err == nil || !d.runcRecord(id):
		return nil
	case strings.Contains(err.Error(), "does not exist"):
		// A directory runc cannot load (it crashed while making it).
		return os.RemoveAll(filepath.Join(d.runcRoot(), id))
	}
	return err
}
