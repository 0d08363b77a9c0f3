package image

import (
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// recipe says how Build makes one image.
type recipe struct {
	version     string // bump whenever what the recipe makes changes
	description string
	suite       string
	variant     string
	packages    []string
	dpkgOpts    []string
	init        []string
	needsInit   bool // installs Builder.InitBinary
	customize   func(ctx context.Context, b *Builder, rootfs string) error
}

var recipes = map[string]recipe{
	"debian-12-minimal": {
		version:     "debian-12-minimal/3",
		description: "Debian 12 (bookworm) minimal: OpenSSH, nubo-init as PID 1",
		suite:       "bookworm",
		variant:     "minbase",
		// curl and python3 as on AWS's Debian images: what user data
		// scripts and people reach for first.
		packages: []string{"openssh-server", "sudo", "iproute2", "ca-certificates", "netbase", "less", "iputils-ping",
			"curl", "python3"},
		dpkgOpts:  slimDpkgOpts,
		init:      []string{"/sbin/nubo-init"},
		needsInit: true,
		customize: customizeMinimal,
	},
	"debian-12": {
		version:     "debian-12/7",
		description: "Debian 12 (bookworm): systemd, cloud-init, OpenSSH, as a stock Debian cloud image",
		suite:       "bookworm",
		variant:     "minbase",
		packages: []string{"systemd-sysv", "dbus", "cloud-init", "openssh-server", "sudo",
			"iproute2", "ca-certificates", "netbase", "less", "procps", "iputils-ping", "ifupdown", "curl"},
		init:      []string{"/sbin/init"},
		needsInit: true, // for nubo-eic-keys
		customize: customizeCloud,
	},
}

// slimDpkgOpts leaves documentation and translations out, now and for later
// installs in the instance (the file stays in /etc/dpkg/dpkg.cfg.d/).
var slimDpkgOpts = []string{
	"path-exclude=/usr/share/man/*",
	"path-exclude=/usr/share/info/*",
	"path-exclude=/usr/share/doc/*",
	"path-include=/usr/share/doc/*/copyright",
	"path-exclude=/usr/share/locale/*",
	"path-exclude=/usr/share/lintian/*",
}

const dpkgSlimConf = `# nubo: debian-12-minimal leaves manual pages, documentation and translations
# out, also of packages installed later. Delete this file to have them again.
`

// customizeMinimal makes a debootstrapped tree into debian-12-minimal.
func customizeMinimal(ctx context.Context, b *Builder, rootfs string) error {
	if err := cleanForImage(rootfs); err != nil {
		return err
	}
	sbin, err := installInit(b, rootfs)
	if err != nil {
		return err
	}
	for _, c := range []string{"poweroff", "halt", "reboot", "shutdown"} {
		if err := replaceSymlink("nubo-init", filepath.Join(sbin, c)); err != nil {
			return err
		}
	}
	for _, d := range []string{"etc/nubo-init/first-boot.d", "etc/nubo-init/boot.d", "var/lib/nubo-init"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			return err
		}
	}
	if err := setupLogin(ctx, rootfs); err != nil {
		return err
	}
	files := map[string]string{}
	if cfg := filepath.Join(rootfs, "etc/dpkg/dpkg.cfg.d/99mmdebstrap"); exists(cfg) {
		data, err := os.ReadFile(cfg)
		if err != nil {
			return err
		}
		files["etc/dpkg/dpkg.cfg.d/10-nubo-slim"] = dpkgSlimConf + string(data)
		if err := os.Remove(cfg); err != nil {
			return err
		}
	}
	return writeFiles(rootfs, files)
}

// cleanForImage removes what must not be shared by every instance of an
// image or leak from the build host: the policy-rc.d of the build, SSH host
// keys (first boot makes them), the machine ID (empty: first boot), apt's
// lists and caches, logs, the host's resolv.conf and hostname, temporary
// files. It also prepares /root/.ssh.
func cleanForImage(rootfs string) error {
	remove := []string{"usr/sbin/policy-rc.d", "var/lib/dbus/machine-id"}
	globs := []string{
		"etc/ssh/ssh_host_*",
		"var/lib/apt/lists/*_*", "var/cache/apt/*.bin", "var/cache/apt/archives/*.deb",
		"var/cache/debconf/*-old", "var/lib/dpkg/*-old",
		"var/log/*.log", "var/log/apt/*",
	}
	for _, g := range globs {
		m, err := filepath.Glob(filepath.Join(rootfs, g))
		if err != nil {
			return err
		}
		for _, p := range m {
			remove = append(remove, p[len(rootfs)+1:])
		}
	}
	for _, r := range remove {
		if err := os.RemoveAll(filepath.Join(rootfs, r)); err != nil {
			return err
		}
	}
	for _, d := range []string{"tmp", "var/tmp"} {
		if err := emptyDir(filepath.Join(rootfs, d)); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Join(rootfs, "root/.ssh"), 0o700); err != nil {
		return err
	}
	return writeFiles(rootfs, map[string]string{
		"etc/machine-id":  "",
		"etc/hostname":    "localhost\n",
		"etc/resolv.conf": "",
	})
}

// writeFiles writes each file (path relative to rootfs) with mode 0644,
// replacing what was there, symlinks included.
func writeFiles(rootfs string, files map[string]string) error {
	for rel, content := range files {
		p := filepath.Join(rootfs, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// replaceSymlink makes link point to target, replacing what was there.
func replaceSymlink(target, link string) error {
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		return err
	}
	if err := os.Remove(link); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return os.Symlink(target, link)
}

// emptyDir removes the contents of dir, keeping dir.
func emptyDir(dir string) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// checkStatic verifies that p is a statically linked ELF executable, as
// nubo-init must be (CGO_ENABLED=0).
func checkStatic(p string) error {
	f, err := elf.Open(p)
	if err != nil {
		return fmt.Errorf("nubo-init %s: %w", p, err)
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return fmt.Errorf("nubo-init %s is dynamically linked: build it with CGO_ENABLED=0", p)
		}
	}
	return nil
}
