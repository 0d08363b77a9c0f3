package image

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ImportOption adjusts Import.
type ImportOption func(*importConfig)

type importConfig struct {
	init        []string
	description string
}

// WithInit sets the command the instance's PID 1 runs (default /sbin/init).
func WithInit(argv ...string) ImportOption {
	return func(c *importConfig) { c.init = argv }
}

// WithDescription sets the image's description.
func WithDescription(s string) ImportOption {
	return func(c *importConfig) { c.description = s }
}

// Import makes image name from a root filesystem tarball (plain or gzip),
// such as `docker export` writes, keeping owners, modes, hard links, symlinks,
// and extended attributes (file capabilities), then shifting ownership like
// a built image. Device nodes are skipped: the runtime provides /dev. Paths
// and links that would reach outside the root are confined to it. The init
// command (WithInit, default /sbin/init) must exist in the tarball. Importing
// over an existing image fails with ErrExists.
func (b *Builder) Import(ctx context.Context, name string, tarball io.Reader, opts ...ImportOption) (Manifest, error) {
	cfg := importConfig{init: []string{"/sbin/init"}}
	for _, o := range opts {
		o(&cfg)
	}
	if err := checkName(name); err != nil {
		return Manifest{}, err
	}
	if len(cfg.init) == 0 || !strings.HasPrefix(cfg.init[0], "/") {
		return Manifest{}, fmt.Errorf("import %s: init must be an absolute path, got %q", name, cfg.init)
	}
	if cfg.description == "" {
		cfg.description = "imported root filesystem"
	}
	unlock, err := b.lock(ctx, name)
	if err != nil {
		return Manifest{}, err
	}
	defer unlock()
	if _, err := b.Get(name); err == nil {
		return Manifest{}, fmt.Errorf("import %s: %w", name, ErrExists)
	} else if !errors.Is(err, ErrNotFound) {
		return Manifest{}, err
	}
	t0 := time.Now()
	rootfs, abort, err := b.begin(name)
	if err != nil {
		return Manifest{}, err
	}
	ok := false
	defer func() {
		if !ok {
			abort()
		}
	}()
	if err := os.Mkdir(rootfs, 0o755); err != nil {
		return Manifest{}, err
	}
	st, err := extractTar(ctx, rootfs, tarball)
	if err != nil {
		return Manifest{}, fmt.Errorf("import %s: %w", name, err)
	}
	if st.skipped > 0 {
		b.log().Info("import skipped entries", "image", name, "devices and others", st.skipped)
	}
	if err := checkInit(rootfs, cfg.init[0]); err != nil {
		return Manifest{}, fmt.Errorf("import %s: %w", name, err)
	}
	m, err := b.commit(Manifest{
		Name:        name,
		Description: cfg.description,
		Init:        cfg.init,
		Source:      "import",
	}, t0, io.Discard)
	if err != nil {
		return Manifest{}, err
	}
	ok = true
	return m, nil
}

// checkInit verifies that init resolves inside rootfs to an executable file.
func checkInit(rootfs, init string) error {
	p, err := resolveInRoot(rootfs, init)
	if err != nil {
		return err
	}
	fi, err := os.Stat(p)
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("init %s is not an executable file in the root filesystem (see WithInit)", init)
	}
	return nil
}

type extractStats struct {
	entries, skipped int
}

// extractTar unpacks r into root, confined to root, with numeric owners.
func extractTar(ctx context.Context, root string, r io.Reader) (extractStats, error) {
	var st extractStats
	br := bufio.NewReaderSize(r, 64<<10)
	var src io.Reader = br
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return st, err
		}
		defer zr.Close()
		src = zr
	}
	tr := tar.NewReader(src)
	type dirTime struct {
		path  string
		mtime time.Time
	}
	var dirs []dirTime
	for {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return st, fmt.Errorf("read tarball: %w", err)
		}
		st.entries++
		target, err := entryPath(root, hdr.Name)
		if err != nil {
			return st, err
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if fi, err := os.Lstat(target); err == nil && !fi.IsDir() {
				if err := os.Remove(target); err != nil {
					return st, err
				}
			}
			if err := os.Mkdir(target, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
				return st, err
			}
			dirs = append(dirs, dirTime{target, hdr.ModTime})
		case tar.TypeReg:
			if err := replaceable(target); err != nil {
				return st, err
			}
			f, err := os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY|unix.O_NOFOLLOW, 0o600)
			if err != nil {
				return st, err
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return st, fmt.Errorf("%s: %w", hdr.Name, err)
			}
		case tar.TypeSymlink:
			if err := replaceable(target); err != nil {
				return st, err
			}
			if err := os.Symlink(hdr.Linkname, target); err != nil {
				return st, err
			}
		case tar.TypeLink:
			oldname, err := entryPath(root, hdr.Linkname)
			if err != nil {
				return st, err
			}
			if fi, err := os.Lstat(oldname); err != nil || fi.IsDir() {
				return st, fmt.Errorf("%s: bad hard link to %s", hdr.Name, hdr.Linkname)
			}
			if err := replaceable(target); err != nil {
				return st, err
			}
			if err := os.Link(oldname, target); err != nil {
				return st, err
			}
			continue // the inode's metadata came with the first name
		case tar.TypeFifo:
			if err := replaceable(target); err != nil {
				return st, err
			}
			if err := unix.Mkfifo(target, 0o600); err != nil {
				return st, err
			}
		default: // devices (the runtime provides /dev), and anything exotic
			st.skipped++
			continue
		}
		if err := applyMetadata(target, hdr); err != nil {
			return st, fmt.Errorf("%s: %w", hdr.Name, err)
		}
	}
	for i := len(dirs) - 1; i >= 0; i-- { // children first changed their parents' mtime
		ts := []unix.Timespec{unix.NsecToTimespec(dirs[i].mtime.UnixNano()), unix.NsecToTimespec(dirs[i].mtime.UnixNano())}
		_ = unix.UtimesNanoAt(unix.AT_FDCWD, dirs[i].path, ts, unix.AT_SYMLINK_NOFOLLOW)
	}
	return st, nil
}

// entryPath maps a tar entry name to a host path in root whose parent
// directories exist and are inside root; the last component itself is not
// resolved, so a symlink there is replaced, never followed.
func entryPath(root, name string) (string, error) {
	clean := path.Clean("/" + name)
	if clean == "/" {
		return root, nil
	}
	parent, err := resolveInRoot(root, path.Dir(clean))
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", err
	}
	return filepath.Join(parent, path.Base(clean)), nil
}

// replaceable removes whatever is at p so that a new entry can take its place.
func replaceable(p string) error {
	fi, err := os.Lstat(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return os.RemoveAll(p)
	}
	return os.Remove(p)
}

// applyMetadata sets owner, mode, extended attributes and times from hdr.
// The mode is set after chown, which would clear setuid bits, and xattrs
// after both, since chown also drops file capabilities.
func applyMetadata(p string, hdr *tar.Header) error {
	if err := unix.Lchown(p, hdr.Uid, hdr.Gid); err != nil {
		return err
	}
	if hdr.Typeflag != tar.TypeSymlink {
		if err := unix.Chmod(p, uint32(hdr.Mode)&0o7777); err != nil {
			return err
		}
	}
	for k, v := range hdr.PAXRecords {
		if name, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
			if err := unix.Lsetxattr(p, name, []byte(v), 0); err != nil {
				return fmt.Errorf("set xattr %s: %w", name, err)
			}
		}
	}
	if hdr.Typeflag != tar.TypeDir {
		at := hdr.AccessTime
		if at.IsZero() {
			at = hdr.ModTime
		}
		ts := []unix.Timespec{unix.NsecToTimespec(at.UnixNano()), unix.NsecToTimespec(hdr.ModTime.UnixNano())}
		_ = unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
	}
	return nil
}
