package runc

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// An instance's bundle directory, Root/bundles/<id>, holds everything nubo
// keeps about it besides runc's own record in Root/runc/<id>:
//
//	config.json  the OCI config runc runs, made anew by each Start
//	spec.json    the runtime.Spec it was made from; written last, so its
//	             presence means the bundle is complete
//	run.json     the shim of the latest run (pid and start time)
//	pid1         PID 1's host PID, written by runc once PID 1 runs
//	exit.json    how PID 1 of the latest run ended, written by the shim
//	runc.log     runc's own log
//	shim.log     the shim's own log
//	console.log  the console, unless the spec names another file
//	devices.json the block devices the instance has (see devices.go)
//	dev/         their host nodes, owned by instance root
//	seccomp.sock where the shim takes the mount filter's listener from runc
//	             (see seccomp.go)
//	criu/        CRIU's work directory (dump.log, restore.log) of a
//	             Hibernatable instance (see hibernate.go)
const (
	configFile  = "config.json"
	specFile    = "spec.json"
	runFile     = "run.json"
	pidFile     = "pid1"
	exitFile    = "exit.json"
	runcLogFile = "runc.log"
	shimLogFile = "shim.log"
	consoleFile = "console.log"
)

func (d *Driver) bundlesDir() string        { return filepath.Join(d.cfg.Root, "bundles") }
func (d *Driver) runcRoot() string          { return filepath.Join(d.cfg.Root, "runc") }
func (d *Driver) bundle(id string) string   { return filepath.Join(d.bundlesDir(), id) }
func (d *Driver) file(id, f string) string  { return filepath.Join(d.bundle(id), f) }
func (d *Driver) runcRecord(id string) bool { return exists(filepath.Join(d.runcRoot(), id)) }

// writeJSON replaces path atomically with v.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "\t")
	if err != nil {
		return err
	}
	return writeAtomic(path, append(b, '\n'))
}

// writeAtomic writes data to a temporary file, syncs it, and renames it over
// path, so readers see the old or the new content, never a torn file.
func writeAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op once renamed
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// readJSON reads path into v; ok is false if the file does not exist.
func readJSON(path string, v any) (ok bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, fmt.Errorf("reading %s: %w", path, err)
	}
	return true, nil
}

// readPid reads a PID file; 0 if absent or empty.
func readPid(path string) (int, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return 0, nil
	}
	return strconv.Atoi(s)
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// removeIfExists removes path; absent is fine.
func removeIfExists(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
