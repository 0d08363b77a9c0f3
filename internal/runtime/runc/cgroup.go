package runc

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
)

// cgroupRoot is where the host mounts its cgroup hierarchies.
const cgroupRoot = "/sys/fs/cgroup"

// cgroupDirs lists the instance's cgroup directory in every hierarchy
// mounted under cgroupRoot (v1 controllers, named v1 hierarchies and the v2
// hierarchy of a hybrid layout), whether or not it exists.
func cgroupDirs(parent, id string) ([]string, error) {
	entries, err := os.ReadDir(cgroupRoot)
	if err != nil {
		return nil, err
	}
	var dirs []string
	for _, e := range entries {
		if e.IsDir() { // skips cpu,cpuacct-style symlinks to a hierarchy listed anyway
			dirs = append(dirs, filepath.Join(cgroupRoot, e.Name(), cgroupPath(parent, id)))
		}
	}
	// A pure v2 host mounts the hierarchy at cgroupRoot itself.
	if exists(filepath.Join(cgroupRoot, "cgroup.controllers")) {
		dirs = append(dirs, filepath.Join(cgroupRoot, cgroupPath(parent, id)))
	}
	return dirs, nil
}

// removeCgroups removes the instance's cgroups (runc normally has already);
// sub-cgroups the instance made go first. Absent ones are fine.
func removeCgroups(parent, id string) error {
	dirs, err := cgroupDirs(parent, id)
	if err != nil {
		return fmt.Errorf("removing cgroups: %w", err)
	}
	for _, dir := range dirs {
		if !exists(dir) {
			continue
		}
		var tree []string
		_ = filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
			if err == nil && e.IsDir() {
				tree = append(tree, path)
			}
			return nil
		})
		slices.Reverse(tree) // children before parents
		for _, p := range tree {
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("removing cgroup %s: %w", p, err)
			}
		}
	}
	return nil
}
