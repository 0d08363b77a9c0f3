package main

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// listScripts returns the scripts of dir in lexical order: executable regular
// files (symlinks followed), skipping hidden files, editor backups (~) and
// dpkg leftovers. A missing dir has none.
func listScripts(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		name := e.Name()
		if strings.HasPrefix(name, ".") || strings.HasSuffix(name, "~") ||
			strings.Contains(name, ".dpkg-") || strings.HasSuffix(name, ".ucf-dist") {
			continue
		}
		p := filepath.Join(dir, name)
		fi, err := os.Stat(p)
		if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			continue
		}
		out = append(out, p)
	}
	sort.Strings(out)
	return out, nil
}

// scriptRunner runs the scripts of a directory, one after the other, with
// the console as their output. A failing script is logged and the next one
// runs; a script cut short by shutdown stops the rest.
type scriptRunner struct {
	con  *console
	out  io.Writer             // the scripts' stdout and stderr
	run  func(*exec.Cmd) error // procs.run as PID 1, exec.Cmd.Run in tests
	dir  string                // working directory of the scripts
	stop func() bool           // true once shutdown has begun
}

// runDir runs dir's scripts; label names the dir in log lines. It returns
// how many failed.
func (r *scriptRunner) runDir(label, dir string) (failed int) {
	scripts, err := listScripts(dir)
	if err != nil {
		r.con.logf("cannot list %s: %v", label, err)
		return 1
	}
	for _, s := range scripts {
		if r.stop != nil && r.stop() {
			return failed
		}
		name := label + "/" + filepath.Base(s)
		r.con.logf("running %s", name)
		cmd := exec.Command(s)
		cmd.Dir = r.dir
		cmd.Stdout, cmd.Stderr = r.out, r.out
		t0 := time.Now()
		if err := r.run(cmd); err != nil {
			if errors.Is(err, errShuttingDown) {
				return failed
			}
			failed++
			r.con.logf("%s failed after %s: %v", name, since(t0), err)
			continue
		}
		r.con.logf("%s done in %s", name, since(t0))
	}
	return failed
}

// since formats the time since t0 for log lines.
func since(t0 time.Time) string {
	return time.Since(t0).Round(time.Millisecond).String()
}
