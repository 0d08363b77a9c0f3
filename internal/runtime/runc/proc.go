package runc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// proc names one process across PID reuse: its PID and its start time in
// clock ticks since boot (field 22 of /proc/<pid>/stat).
type proc struct {
	Pid   int    `json:"pid"`
	Start uint64 `json:"start"`
}

// procOf reads the identity of a live PID.
func procOf(pid int) (proc, error) {
	start, state, err := procStat(pid)
	if err != nil {
		return proc{}, err
	}
	if state == 'Z' || state == 'X' {
		return proc{}, fmt.Errorf("process %d has exited", pid)
	}
	return proc{Pid: pid, Start: start}, nil
}

// alive reports whether p still runs (an unreaped zombie has exited).
func (p proc) alive() bool {
	if p.Pid <= 0 {
		return false
	}
	start, state, err := procStat(p.Pid)
	return err == nil && start == p.Start && state != 'Z' && state != 'X'
}

// procStat returns the start time and state letter of pid.
func procStat(pid int) (start uint64, state byte, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	// The command name (field 2) may hold spaces and parentheses: the
	// fields after it start after the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("parsing /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0, 0, fmt.Errorf("parsing /proc/%d/stat", pid)
	}
	start, err = strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("parsing /proc/%d/stat: %w", pid, err)
	}
	return start, f[0][0], nil
}

// awaitExec waits until pid no longer runs runc's init (runc writes the
// PID file once it has released PID 1, a moment before PID 1 calls execve):
// a signal to PID 1 before then would hit runc's init, not the instance's.
func awaitExec(ctx context.Context, pid int) error {
	_, err := pollUntil(ctx, time.Millisecond, 5*time.Second, func() (bool, error) {
		comm, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
		return err != nil || !strings.HasPrefix(string(comm), "runc:["), nil
	})
	return err
}

// waitExit waits until p exits, up to timeout or ctx; it reports whether p
// has exited. A pidfd makes the wait exact for any process, child or not.
func waitExit(ctx context.Context, p proc, timeout time.Duration) (bool, error) {
	if !p.alive() {
		return true, nil
	}
	fd, err := unix.PidfdOpen(p.Pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("pidfd_open %d: %w", p.Pid, err)
	}
	defer unix.Close(fd)
	if !p.alive() { // the PID may have been reused before the open
		return true, nil
	}
	deadline := time.Now().Add(timeout)
	for {
		wait := time.Until(deadline)
		if wait <= 0 {
			return false, nil
		}
		if err := ctx.Err(); err != nil {
			return false, err
		}
		// Wake at least every 100 ms to notice ctx.
		ms := int(min(wait, 100*time.Millisecond) / time.Millisecond)
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, max(ms, 1))
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("polling pidfd of %d: %w", p.Pid, err)
		}
		if n > 0 {
			return true, nil
		}
	}
}

// pollUntil calls done every interval until it reports true, ctx ends, or
// timeout passes (0: no timeout besides ctx).
func pollUntil(ctx context.Context, interval, timeout time.Duration, done func() (bool, error)) (bool, error) {
	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	for {
		ok, err := done()
		if ok || err != nil {
			return ok, err
		}
		if !deadline.IsZero() && time.Now().After(deadline) {
			return false, nil
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(interval):
		}
	}
}
