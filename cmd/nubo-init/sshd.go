package main

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	minBackoff   = 100 * time.Millisecond
	maxBackoff   = 30 * time.Second
	stableAfter  = 10 * time.Second // a run this long resets the backoff
	readyPoll    = 5 * time.Millisecond
	readyTimeout = time.Second // ready without a listening socket after this
)

// superviseSSHD runs sshd in the foreground until shutdown, restarting it
// with backoff, and prints the readiness line after its first start.
func (in *initd) superviseSSHD() {
	backoff := minBackoff
	ready := false
	for !in.procs.isClosed() {
		runDir := filepath.Join(in.root, "run/sshd")
		if err := os.MkdirAll(runDir, 0o755); err != nil {
			in.con.logf("cannot create /run/sshd: %v", err)
		}
		cmd := exec.Command(in.path("usr/sbin/sshd"), "-D", "-e")
		cmd.Dir = in.root
		cmd.Stdout, cmd.Stderr = in.out, in.out
		in.con.logf("starting sshd")
		ch, err := in.procs.start(cmd)
		if errors.Is(err, errShuttingDown) {
			return
		}
		if err != nil {
			in.con.logf("cannot start sshd: %v; retrying in %s", err, backoff)
			if !in.procs.sleep(backoff) {
				return
			}
			backoff = min(2*backoff, maxBackoff)
			continue
		}
		pid, started := cmd.Process.Pid, time.Now()
		var ws syscall.WaitStatus
		exited := false
		if !ready {
			ws, exited = in.awaitReady(pid, ch)
			ready = !exited
			if ready {
				in.afterReady()
			}
		} else {
			in.con.logf("sshd restarted (pid %d)", pid)
		}
		if !exited {
			ws = <-ch
		}
		if in.procs.isClosed() {
			return
		}
		if time.Since(started) > stableAfter {
			backoff = minBackoff
		}
		in.con.logf("sshd (pid %d) ended: %v; restarting in %s", pid, statusError(ws), backoff)
		if !in.procs.sleep(backoff) {
			return
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// awaitReady waits until sshd (pid) listens, or has run readyTimeout without
// a listening socket, and prints the readiness line; or until it exits.
func (in *initd) awaitReady(pid int, ch <-chan syscall.WaitStatus) (syscall.WaitStatus, bool) {
	t0 := time.Now()
	tick := time.NewTicker(readyPoll)
	defer tick.Stop()
	for {
		select {
		case ws := <-ch:
			return ws, true
		case <-tick.C:
		}
		if ports := listeningPorts(pid); len(ports) > 0 {
			in.con.logf("ready: sshd (pid %d) listening on port %s, %.3fs after nubo-init started",
				pid, strings.Join(ports, ","), time.Since(in.started).Seconds())
			return 0, false
		}
		if time.Since(t0) >= readyTimeout {
			in.con.logf("ready: sshd (pid %d) running, no listening socket seen after %s, %.3fs after nubo-init started",
				pid, readyTimeout, time.Since(in.started).Seconds())
			return 0, false
		}
	}
}

// listeningPorts returns the TCP ports that process pid listens on: its
// socket inodes (/proc/PID/fd) matched against the LISTEN entries of
// /proc/PID/net/tcp and tcp6 (its own network namespace).
func listeningPorts(pid int) []string {
	base := "/proc/" + strconv.Itoa(pid)
	fds, err := os.ReadDir(base + "/fd")
	if err != nil {
		return nil
	}
	inodes := make(map[string]bool)
	for _, fd := range fds {
		l, err := os.Readlink(base + "/fd/" + fd.Name())
		if err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	if len(inodes) == 0 {
		return nil
	}
	seen := make(map[string]bool)
	var ports []string
	for _, table := range []string{"/net/tcp", "/net/tcp6"} {
		f, err := os.Open(base + table)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // header
		for sc.Scan() {
			// sl local_address rem_address st tx:rx tr:tm retrnsmt uid timeout inode
			fl := strings.Fields(sc.Text())
			if len(fl) < 10 || fl[3] != "0A" || !inodes[fl[9]] {
				continue
			}
			_, hexPort, _ := strings.Cut(fl[1], ":")
			if n, err := strconv.ParseUint(hexPort, 16, 16); err == nil {
				if p := strconv.FormatUint(n, 10); !seen[p] {
					seen[p] = true
					ports = append(ports, p)
				}
			}
		}
		f.Close()
	}
	sort.Strings(ports)
	return ports
}
