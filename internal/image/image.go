// Package image builds, imports and caches the root filesystems that nubo's
// instances boot from: its AMIs.
//
// An image is a directory tree owned by the host IDs that instance root maps
// to in the instance's user namespace (uid and gid base, 100000 by default),
// so that runc can use it unprivileged without shifting it per launch. The
// ownership is shifted once, when the image is made.
//
// # Layout
//
//	<Dir>/<name>/rootfs/          the root filesystem, already shifted
//	<Dir>/<name>/manifest.json    Manifest, written last, atomically
//	<Dir>/.locks/<name>.lock      flock(2) held while an image is made or removed
//
// An image exists exactly when its manifest.json does: a build that crashed
// or failed leaves a directory without one, which Get and List ignore and the
// next Build or Import removes before starting again. Remove deletes the
// manifest first for the same reason.
//
// # Names
//
// Build knows the recipes in Recipes ("debian-12-minimal": Debian 12 with
// OpenSSH and nubo-init as PID 1; "debian-12": systemd and cloud-init, as a
// stock Debian cloud image boots). Import takes a user's own root filesystem
// under any name not taken.
//
// # Using an image
//
// A rootfs is shared by every instance made from it and must stay as it is:
// give each instance a writable layer over it (overlayfs with the rootfs as
// lowerdir, or a copy). Dir and the image directories are mode 0755 so that
// the instances' root users (host uids from the base up) can reach the
// rootfs. Start PID 1 with Manifest.Init. debian-12-minimal's nubo-init
// exits 0 when the instance powered off and 129 when it asked for a reboot
// (see cmd/nubo-init); booting it is tested here in user, mount, PID,
// network, UTS and IPC namespaces over an overlay, with the host's /dev
// nodes bound in (nodes inside a filesystem mounted in a user namespace
// cannot be opened). debian-12 boots systemd as PID 1, unprivileged, under
// the runc driver (tested there: internal/runtime/runc, TestBootDebian12);
// its nubo-ready.service prints "nubo-init: ready (systemd)" on the console
// once sshd is up, and cloud-init stays disabled until nubo serves instance
// metadata.
package image

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"syscall"
	"time"
)

// DefaultUIDBase is the host uid and gid that an image's root (0) is owned by
// when Builder.UIDBase is zero.
const DefaultUIDBase = 100000

// Errors, to be tested with errors.Is.
var (
	ErrNotFound    = errors.New("image not found")
	ErrExists      = errors.New("image already exists")
	ErrNoRecipe    = errors.New("no recipe to build this image")
	ErrInvalidName = errors.New("invalid image name")
)

// manifestVersion is the schema version of manifest.json.
const manifestVersion = 1

// Manifest describes a complete image; it is <Dir>/<name>/manifest.json.
type Manifest struct {
	Version        int       `json:"version"`
	Name           string    `json:"name"`
	Description    string    `json:"description"`
	Architecture   string    `json:"architecture"` // EC2's spelling: x86_64, arm64
	Created        time.Time `json:"created"`
	SizeBytes      int64     `json:"sizeBytes"` // apparent size of the rootfs, hard links once
	UIDBase        uint32    `json:"uidBase"`   // host uid and gid of the image's root
	Init           []string  `json:"init"`      // PID 1 and its arguments
	RootDeviceName string    `json:"rootDeviceName"`
	Source         string    `json:"source"`           // "build" or "import"
	Recipe         string    `json:"recipe,omitempty"` // recipe version of a built image
	BuildSeconds   float64   `json:"buildSeconds"`

	// RootFS is the absolute path of the root filesystem; filled in by the
	// Builder, not stored.
	RootFS string `json:"-"`
}

// Builder makes and keeps images under Dir. Its methods are safe to call
// concurrently, also from several processes sharing Dir.
type Builder struct {
	Dir        string       // e.g. DATA_DIR/images
	Log        *slog.Logger // nil: no logging
	InitBinary string       // the static nubo-init installed in debian-12-minimal

	UIDBase        uint32 // 0: DefaultUIDBase
	Mirror         string // Debian mirror; "": http://deb.debian.org/debian
	SecurityMirror string // "": http://deb.debian.org/debian-security
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

func checkName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("%w: %q (letters, digits, '.', '_', '-'; at most 128)", ErrInvalidName, name)
	}
	return nil
}

func (b *Builder) imageDir(name string) string { return filepath.Join(b.Dir, name) }

// RootFS returns where the root filesystem of image name is (or would be).
func (b *Builder) RootFS(name string) string { return filepath.Join(b.imageDir(name), "rootfs") }

func (b *Builder) uidBase() uint32 {
	if b.UIDBase == 0 {
		return DefaultUIDBase
	}
	return b.UIDBase
}

func (b *Builder) log() *slog.Logger {
	if b.Log == nil {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return b.Log
}

// Get returns the manifest of a complete image, or ErrNotFound.
func (b *Builder) Get(name string) (Manifest, error) {
	if err := checkName(name); err != nil {
		return Manifest{}, err
	}
	data, err := os.ReadFile(filepath.Join(b.imageDir(name), "manifest.json"))
	if errors.Is(err, os.ErrNotExist) {
		return Manifest{}, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	if err != nil {
		return Manifest{}, err
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return Manifest{}, fmt.Errorf("image %s: bad manifest: %w", name, err)
	}
	m.RootFS = b.RootFS(name)
	return m, nil
}

// List returns the complete images, sorted by name.
func (b *Builder) List() ([]Manifest, error) {
	ents, err := os.ReadDir(b.Dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Manifest
	for _, e := range ents {
		if !e.IsDir() || checkName(e.Name()) != nil {
			continue
		}
		m, err := b.Get(e.Name())
		if errors.Is(err, ErrNotFound) {
			continue // being made, or a failed attempt
		}
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Remove deletes an image; removing an absent image is not an error. It
// waits for a build of the same image to end, and must not be used while
// instances run from the image's rootfs.
func (b *Builder) Remove(name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	unlock, err := b.lock(context.Background(), name)
	if err != nil {
		return err
	}
	defer unlock()
	dir := b.imageDir(name)
	if err := os.Remove(filepath.Join(dir, "manifest.json")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := removeTree(dir); err != nil {
		return fmt.Errorf("remove image %s: %w", name, err)
	}
	b.log().Info("image removed", "image", name)
	return nil
}

// lock takes the image's lock file, waiting for another builder (in this
// process or another) as long as ctx allows.
func (b *Builder) lock(ctx context.Context, name string) (unlock func(), err error) {
	// Dir itself must be searchable by the instances' root users (the uid
	// bases), whose runtimes reach the rootfs through it.
	if err := os.MkdirAll(b.Dir, 0o755); err != nil {
		return nil, err
	}
	dir := filepath.Join(b.Dir, ".locks")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, name+".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil // closing releases the lock
		}
		if err != syscall.EWOULDBLOCK && err != syscall.EINTR {
			f.Close()
			return nil, fmt.Errorf("lock image %s: %w", name, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// begin prepares <Dir>/<name> for making an image: it removes what a failed
// attempt left and creates an empty rootfs. The returned abort removes it
// all again.
func (b *Builder) begin(name string) (rootfs string, abort func(), err error) {
	dir := b.imageDir(name)
	if _, err := os.Lstat(dir); err == nil {
		b.log().Info("removing incomplete image", "image", name)
		if err := removeTree(dir); err != nil {
			return "", nil, fmt.Errorf("remove incomplete image %s: %w", name, err)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", nil, err
	}
	return filepath.Join(dir, "rootfs"), func() {
		if err := removeTree(dir); err != nil {
			b.log().Error("cannot remove failed image", "image", name, "err", err)
		}
	}, nil
}

// commit shifts the rootfs, measures it and writes the manifest: the step
// that makes the image exist.
func (b *Builder) commit(m Manifest, t0 time.Time, progress io.Writer) (Manifest, error) {
	rootfs := b.RootFS(m.Name)
	base := b.uidBase()
	fmt.Fprintf(progress, "image: shifting ownership of %s by %d\n", m.Name, base)
	ts := time.Now()
	size, err := ShiftOwnership(rootfs, base)
	if err != nil {
		return Manifest{}, fmt.Errorf("shift image %s: %w", m.Name, err)
	}
	b.log().Debug("ownership shifted", "image", m.Name, "base", base, "took", time.Since(ts))
	// The build wrote without fsync (eatmydata): make the tree durable before
	// the manifest says it is complete.
	if err := syncFS(rootfs); err != nil {
		return Manifest{}, fmt.Errorf("sync image %s: %w", m.Name, err)
	}
	m.Version = manifestVersion
	m.Architecture = architecture()
	m.Created = time.Now().UTC().Truncate(time.Second)
	m.SizeBytes = size
	m.UIDBase = base
	m.RootDeviceName = "/dev/xvda"
	m.BuildSeconds = time.Since(t0).Round(time.Millisecond).Seconds()
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return Manifest{}, err
	}
	if err := writeFileAtomic(filepath.Join(b.imageDir(m.Name), "manifest.json"), append(data, '\n'), 0o644); err != nil {
		return Manifest{}, err
	}
	m.RootFS = rootfs
	fmt.Fprintf(progress, "image: %s ready: %d bytes in %.1fs\n", m.Name, m.SizeBytes, m.BuildSeconds)
	b.log().Info("image ready", "image", m.Name, "bytes", m.SizeBytes, "seconds", m.BuildSeconds)
	return m, nil
}

// architecture is this host's architecture in EC2's spelling.
func architecture() string {
	switch runtime.GOARCH {
	case "amd64":
		return "x86_64"
	case "arm64":
		return "arm64"
	}
	return runtime.GOARCH
}
