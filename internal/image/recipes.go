package image

import (
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
	customize   func(b *Builder, rootfs string) error
}

var recipes = map[string]recipe{
	"debian-12-minimal": {
		version:     "debian-12-minimal/1",
		description: "Debian 12 (bookworm) minimal: OpenSSH, nubo-init as PID 1",
		suite:       "bookworm",
		variant:     "minbase",
		packages:    []string{"openssh-server", "iproute2", "ca-certificates", "netbase", "less", "iputils-ping"},
		dpkgOpts:    slimDpkgOpts,
		init:        []string{"/sbin/nubo-init"},
		needsInit:   true,
		customize:   customizeMinimal,
	},
	"debian-12": {
		version:     "debian-12/2",
		description: "Debian 12 (bookworm): systemd, cloud-init, OpenSSH, as a stock Debian cloud image",
		suite:       "bookworm",
		variant:     "minbase",
		packages: []string{"systemd-sysv", "dbus", "cloud-init", "openssh-server", "sudo",
			"iproute2", "ca-certificates", "netbase", "less", "procps", "iputils-ping", "ifupdown"},
		init:      []string{"/sbin/init"},
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

const sshdNuboConf = `# nubo: root logs in with the instance's key pair only, as on EC2.
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
`

const dpkgSlimConf = `# nubo: debian-12-minimal leaves manual pages, documentation and translations
# out, also of packages installed later. Delete this file to have them again.
`

// customizeMinimal makes a debootstrapped tree into debian-12-minimal.
func customizeMinimal(b *Builder, rootfs string) error {
	if err := checkStatic(b.InitBinary); err != nil {
		return err
	}
	if err := cleanForImage(rootfs); err != nil {
		return err
	}
	sbin, err := resolveInRoot(rootfs, "/sbin")
	if err != nil {
		return err
	}
	if err := copyFile(b.InitBinary, filepath.Join(sbin, "nubo-init"), 0o755); err != nil {
		return fmt.Errorf("install nubo-init: %w", err)
	}
	for _, c := range []string{"poweroff", "halt", "reboot", "shutdown"} {
		p := filepath.Join(sbin, c)
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		if err := os.Symlink("nubo-init", p); err != nil {
			return err
		}
	}
	for _, d := range []string{"etc/nubo-init/first-boot.d", "etc/nubo-init/boot.d", "var/lib/nubo-init"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			return err
		}
	}
	files := map[string]string{
		"etc/ssh/sshd_config.d/10-nubo.conf": sshdNuboConf,
	}
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

// customizeCloud prepares the systemd + cloud-init image to boot as a
// system container (see cloudFiles): cloud-init starts from a clean state,
// leaves the network to nubo, and stays off until nubo has a metadata
// service.
func customizeCloud(b *Builder, rootfs string) error {
	if err := cleanForImage(rootfs); err != nil {
		return err
	}
	if err := emptyDir(filepath.Join(rootfs, "var/lib/cloud")); err != nil {
		return err
	}
	if err := writeFiles(rootfs, cloudFiles); err != nil {
		return err
	}
	for link, target := range cloudLinks {
		p := filepath.Join(rootfs, link)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		if err := os.Symlink(target, p); err != nil {
			return err
		}
	}
	return nil
}

// readyUnit is the systemd unit of debian-12 that prints the readiness line
// the host waits for ("nubo-init: ready", as nubo-init prints it) on the
// console once the boot is done and sshd is up, or has failed for good.
const readyUnit = "nubo-ready.service"

// cloudFiles are what customizeCloud adds to debian-12.
var cloudFiles = map[string]string{
	// cloud-init finds no datasource in a nubo instance yet: ds-identify
	// would disable it at each boot, but only as long as nothing in the
	// host's DMI data suggests a cloud (on a host that runs in EC2 it would
	// wait minutes for an unreachable metadata service before sshd
	// starts). Off until nubo serves instance metadata.
	"etc/cloud/cloud-init.disabled":     "# nubo: cloud-init stays off until nubo serves instance metadata.\n",
	"etc/cloud/cloud.cfg.d/90-nubo.cfg": "# nubo configures the instance's network from the host.\nnetwork:\n  config: disabled\n",
	// Empty: systemd keeps the hostname the runtime gave the instance
	// (ip-…) instead of setting "localhost".
	"etc/hostname":                       "",
	"etc/ssh/sshd_config.d/10-nubo.conf": sshdNuboConf,
	// Host keys are made at first boot; cloud-init would make them, but it
	// is off, and ssh.service's own `sshd -t` fails without them.
	"etc/systemd/system/ssh.service.d/10-nubo-hostkeys.conf": `# nubo: make missing SSH host keys (first boot) before sshd checks its config.
[Service]
ExecStartPre=
ExecStartPre=/usr/bin/ssh-keygen -A
ExecStartPre=/usr/sbin/sshd -t
`,
	"etc/systemd/system/" + readyUnit: `# nubo: tells the host on the console that the instance is up.
[Unit]
Description=Tell nubo the instance is ready
After=multi-user.target ssh.service
Wants=ssh.service

[Service]
Type=oneshot
ExecStart=/bin/sh -c 'echo "nubo-init: ready (systemd)" > /dev/console'

[Install]
WantedBy=multi-user.target
`,
}

// cloudLinks are the symlinks customizeCloud makes: units enabled and masked.
var cloudLinks = map[string]string{
	"etc/systemd/system/multi-user.target.wants/" + readyUnit: "/etc/systemd/system/" + readyUnit,
	// A getty on the console would hang up the console pty (vhangup) and
	// read from it; nobody can type on a nubo console.
	"etc/systemd/system/console-getty.service": "/dev/null",
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
