package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// errShuttingDown: the process table no longer starts processes.
var errShuttingDown = errors.New("shutting down")

// console writes nubo-init's log lines, one write(2) each, so that they do not
// interleave with the output of the processes sharing the console.
type console struct {
	mu sync.Mutex
	w  io.Writer
}

func (c *console) logf(format string, args ...any) {
	line := "nubo-init: " + fmt.Sprintf(format, args...) + "\n"
	c.mu.Lock()
	defer c.mu.Unlock()
	_, _ = io.WriteString(c.w, line) // a closed console must not stop PID 1
}

// write writes text as it is, in one write(2).
func (c *console) write(text string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, _ = io.WriteString(c.w, text)
}

// procs is the process table of PID 1. It is the only place that calls
// wait4: a process started through it is waited for by the reaper, which
// hands its status to whoever started it, and reaps every other child (the
// orphans reparented to PID 1) silently. Starting and reaping take the same
// lock, so a child cannot be reaped before it is registered.
type procs struct {
	mu      sync.Mutex
	waiters map[int]chan syscall.WaitStatus
	closed  bool
	done    chan struct{} // closed when shutdown begins
	isInit  bool          // PID 1: signal with kill(-1); otherwise only descendants
}

func newProcs() *procs {
	return &procs{
		waiters: make(map[int]chan syscall.WaitStatus),
		done:    make(chan struct{}),
		isInit:  os.Getpid() == 1,
	}
}

// start starts cmd and returns the channel that receives its wait status.
// It fails with errShuttingDown once shutdown has begun.
func (p *procs) start(cmd *exec.Cmd) (<-chan syscall.WaitStatus, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, errShuttingDown
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	ch := make(chan syscall.WaitStatus, 1)
	p.waiters[cmd.Process.Pid] = ch
	return ch, nil
}

// run starts cmd and waits for it: nil if it exited 0.
func (p *procs) run(cmd *exec.Cmd) error {
	ch, err := p.start(cmd)
	if err != nil {
		return err
	}
	return statusError(<-ch)
}

// reap collects every exited child without blocking and reports whether any
// child is left.
func (p *procs) reap() (children bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.ECHILD:
			return false
		case err != nil:
			return true
		case pid == 0:
			return true
		}
		if ch, ok := p.waiters[pid]; ok {
			delete(p.waiters, pid)
			ch <- ws
		}
	}
}

// shutdown stops starting processes and sends sig to all of them.
func (p *procs) shutdown(sig syscall.Signal) {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		close(p.done)
	}
	p.mu.Unlock()
	p.signalAll(sig)
	p.signalAll(syscall.SIGCONT) // stopped processes must see the SIGTERM
}

func (p *procs) isClosed() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// sleep waits d, or less if shutdown begins; false if it did.
func (p *procs) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-p.done:
		return false
	}
}

// signalAll sends sig to every process of the instance: kill(-1) as PID 1
// (every process in the PID namespace but PID 1), otherwise to each
// descendant, so that running nubo-init elsewhere never signals the host.
func (p *procs) signalAll(sig syscall.Signal) {
	if p.isInit {
		_ = syscall.Kill(-1, sig)
		return
	}
	for _, pid := range descendants(os.Getpid()) {
		_ = syscall.Kill(pid, sig)
	}
}

// waitAll reaps until no child is left or d has passed; true if none is left.
func (p *procs) waitAll(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		if !p.reap() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// descendants lists the PIDs below pid, read from /proc.
func descendants(pid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := make(map[int][]int)
	for _, e := range ents {
		id, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if pp, ok := parentOf(id); ok {
			children[pp] = append(children[pp], id)
		}
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		next := queue[0]
		queue = queue[1:]
		for _, c := range children[next] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

// parentOf reads the parent PID from /proc/PID/stat.
func parentOf(pid int) (int, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	// "pid (comm) state ppid …": comm may hold spaces and parentheses.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0, false
	}
	pp, err := strconv.Atoi(f[1])
	return pp, err == nil
}

// statusError is nil for exit status 0 and describes any other end.
func statusError(ws syscall.WaitStatus) error {
	switch {
	case ws.Exited() && ws.ExitStatus() == 0:
		return nil
	case ws.Exited():
		return fmt.Errorf("exit status %d", ws.ExitStatus())
	case ws.Signaled():
		return fmt.Errorf("killed by %v", ws.Signal())
	}
	return fmt.Errorf("wait status %#x", uint32(ws))
}
