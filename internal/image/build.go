package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Build makes image name from its recipe, showing mmdebstrap's output on
// progress (nil: discarded). An image that already exists is returned at once,
// as it is: images are immutable, so a new recipe or nubo-init reaches an
// image only through Remove and Build. Whatever a failed or interrupted
// build left behind is removed, and the build starts over.
//
// Building needs root, mmdebstrap and unshare (util-linux) on the host, and
// Debian's mirror; it takes 20-60 s for debian-12-minimal.
func (b *Builder) Build(ctx context.Context, name string, progress io.Writer) (Manifest, error) {
	r, ok := recipes[name]
	if !ok {
		return Manifest{}, fmt.Errorf("%w: %q (known: %s)", ErrNoRecipe, name, strings.Join(Recipes(), ", "))
	}
	if m, err := b.Get(name); err == nil {
		return m, nil
	}
	if progress == nil {
		progress = io.Discard
	}
	unlock, err := b.lock(ctx, name)
	if err != nil {
		return Manifest{}, err
	}
	defer unlock()
	if m, err := b.Get(name); err == nil { // built while we waited for the lock
		return m, nil
	} else if !errors.Is(err, ErrNotFound) {
		return Manifest{}, err
	}
	if r.needsInit && b.InitBinary == "" {
		return Manifest{}, fmt.Errorf("build %s: Builder.InitBinary (nubo-init) is not set", name)
	}
	t0 := time.Now()
	b.log().Info("building image", "image", name, "recipe", r.version)
	rootfs, abort, err := b.begin(name)
	if err != nil {
		return Manifest{}, err
	}
	built := false
	defer func() {
		if !built {
			abort()
		}
	}()
	if err := b.mmdebstrap(ctx, r, rootfs, progress); err != nil {
		return Manifest{}, fmt.Errorf("build %s: %w", name, err)
	}
	if err := checkNoHostDaemons(rootfs); err != nil {
		return Manifest{}, fmt.Errorf("build %s: %w", name, err)
	}
	fmt.Fprintf(progress, "image: customizing %s\n", name)
	if err := r.customize(ctx, b, rootfs); err != nil {
		return Manifest{}, fmt.Errorf("build %s: customize: %w", name, err)
	}
	if err := ctx.Err(); err != nil {
		return Manifest{}, err
	}
	m, err := b.commit(Manifest{
		Name:        name,
		Description: r.description,
		Init:        r.init,
		Source:      "build",
		Recipe:      r.version,
	}, t0, progress)
	if err != nil {
		return Manifest{}, err
	}
	built = true
	return m, nil
}

// RecipeVersion is the version of the recipe that builds name ("" if none):
// it changes whenever what the recipe makes changes.
func RecipeVersion(name string) string { return recipes[name].version }

// Recipes lists the names Build can make.
func Recipes() []string {
	var out []string
	for n := range recipes {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// mmdebstrap runs mmdebstrap for r into rootfs. It runs in a mount
// namespace of its own, so that the /dev, /proc and /sys it mounts in the
// chroot vanish with it even if it is killed; a policy-rc.d that forbids
// starting services is in place while packages are installed (mmdebstrap
// sets one up too, and removes it at the end).
func (b *Builder) mmdebstrap(ctx context.Context, r recipe, rootfs string, progress io.Writer) error {
	for _, tool := range []string{"mmdebstrap", "unshare"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s is needed to build images: %w", tool, err)
		}
	}
	mirror := b.Mirror
	if mirror == "" {
		mirror = "http://deb.debian.org/debian"
	}
	security := b.SecurityMirror
	if security == "" {
		security = "http://deb.debian.org/debian-security"
	}
	args := []string{
		"--mount", "--propagation", "private", "--",
		"mmdebstrap",
		"--variant=" + r.variant,
		"--mode=root",
		"--format=directory",
		"--include=" + strings.Join(r.packages, ","),
		`--essential-hook=printf '#!/bin/sh\nexit 101\n' > "$1/usr/sbin/policy-rc.d" && chmod 0755 "$1/usr/sbin/policy-rc.d"`,
	}
	for _, opt := range r.dpkgOpts {
		args = append(args, "--dpkgopt="+opt)
	}
	// merged-usr: /bin, /sbin, /lib as symlinks into /usr without the
	// usrmerge package, which would pull in perl (50 MB). eatmydata: no
	// fsync during the build (the image is synced once it is complete).
	for _, hook := range []string{"merged-usr", "eatmydata"} {
		dir := "/usr/share/mmdebstrap/hooks/" + hook
		if _, err := os.Stat(dir); err == nil {
			args = append(args, "--hook-dir="+dir)
		}
	}
	args = append(args, r.suite, rootfs,
		fmt.Sprintf("deb %s %s main", mirror, r.suite),
		fmt.Sprintf("deb %s %s-updates main", mirror, r.suite),
		fmt.Sprintf("deb %s %s-security main", security, r.suite),
	)
	cmd := exec.CommandContext(ctx, "unshare", args...)
	cmd.Stdout, cmd.Stderr = progress, progress
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive", "LC_ALL=C.UTF-8")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { // let mmdebstrap clean up, then make sure
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	}
	cmd.WaitDelay = 15 * time.Second
	fmt.Fprintf(progress, "image: mmdebstrap %s (%s) into %s\n", r.suite, r.variant, rootfs)
	err := runOnLockedThread(cmd)
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // stragglers: apt, dpkg, hooks
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		return fmt.Errorf("mmdebstrap: %w", err)
	}
	return nil
}

// checkNoHostDaemons fails (after killing them) if processes run chrooted
// in rootfs: a package's service started despite policy-rc.d.
func checkNoHostDaemons(rootfs string) error {
	abs, err := filepath.Abs(rootfs)
	if err != nil {
		return err
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return err
	}
	var found []string
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		root, err := os.Readlink("/proc/" + e.Name() + "/root")
		if err != nil || (root != abs && !strings.HasPrefix(root, abs+"/")) {
			continue
		}
		comm, _ := os.ReadFile("/proc/" + e.Name() + "/comm")
		found = append(found, fmt.Sprintf("%d (%s)", pid, strings.TrimSpace(string(comm))))
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	if len(found) > 0 {
		return fmt.Errorf("processes were left running in the image (killed): %s", strings.Join(found, ", "))
	}
	return nil
}

// runOnLockedThread runs cmd from an OS thread that stays alive until it
// exits: Pdeathsig fires when the thread that started a child ends, and Go
// ends threads that other goroutines leave locked (network namespace work).
func runOnLockedThread(cmd *exec.Cmd) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		errc <- cmd.Run()
	}()
	return <-errc
}
