package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// instanceDir keeps the current instance's user data and the files made
// from it (scripts), as /var/lib/cloud/instance does for cloud-init.
const instanceDir = "var/lib/nubo-init/instance"

// provisioner carries out user data below root, with its output in out.
type provisioner struct {
	root       string
	out        *output
	run        func(*exec.Cmd) error // procs.run as PID 1, exec.Cmd.Run in tests
	stop       func() bool           // true once shutdown has begun
	instanceID string
	failed     int // steps that failed, for the summary
}

func (p *provisioner) path(rel string) string { return filepath.Join(p.root, rel) }

// perInstance runs everything user data asks for at an instance's first
// boot, in cloud-init's order (see cloudConfig).
func (p *provisioner) perInstance(ud *userData) {
	cfg := p.config(ud, true)
	p.perBoot(ud, cfg)
	p.writeFiles(cfg.WriteFiles, false)
	p.groups(cfg.Groups)
	p.users(cfg.Users)
	if len(cfg.SSHAuthorizedKeys) > 0 {
		p.defaultUserKeys(cfg.SSHAuthorizedKeys)
	}
	p.packages(cfg)
	p.writeFiles(cfg.WriteFiles, true)
	scripts := append([]userPart(nil), ud.scripts...)
	if len(cfg.RunCmd) > 0 {
		scripts = append(scripts, userPart{name: "runcmd", body: shellScript(cfg.RunCmd)})
		sort.SliceStable(scripts, func(i, j int) bool { return scripts[i].name < scripts[j].name })
	}
	for _, s := range scripts {
		p.script("scripts", s, nil)
	}
}

// perBoot runs what user data asks for at every boot: boot hooks, then
// bootcmd.
func (p *provisioner) perBoot(ud *userData, cfg cloudConfig) {
	env := []string{"INSTANCE_ID=" + p.instanceID}
	for _, h := range ud.boothooks {
		p.script("boothooks", h, env)
	}
	if len(cfg.BootCmd) > 0 {
		p.script("bootcmd", userPart{name: "bootcmd", body: shellScript(cfg.BootCmd)}, env)
	}
}

// config decodes the merged cloud-config (logging what it leaves out when
// verbose: the first boot, not every later one).
func (p *provisioner) config(ud *userData, verbose bool) cloudConfig {
	if ud.config == nil {
		return cloudConfig{}
	}
	cfg, ignored, problems := decodeCloudConfig(ud.config)
	if verbose {
		for _, pr := range problems {
			p.out.logf("cloud-config: %s (left out)", pr)
			p.failed++
		}
		if len(ignored) > 0 {
			p.out.logf("cloud-config: nubo-init does not act on %s (the debian-12 image runs the full cloud-init)", strings.Join(ignored, ", "))
		}
	}
	return cfg
}

// script writes one script to instanceDir/<kind>/<name> and runs it.
func (p *provisioner) script(kind string, s userPart, env []string) bool {
	if p.stop() {
		return false
	}
	file := p.path(filepath.Join(instanceDir, kind, s.name))
	if err := writeFileAtomic(file, s.body, 0o700); err != nil {
		p.out.logf("%s/%s: %v", kind, s.name, err)
		p.failed++
		return false
	}
	return p.command(kind+"/"+s.name, env, file)
}

// command runs argv with the output log as stdout and stderr; false if it
// failed (logged).
func (p *provisioner) command(label string, env []string, argv ...string) bool {
	if p.stop() {
		return false
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = p.root
	cmd.Env = append(append(os.Environ(), "HOME=/root"), env...)
	cmd.Stdout, cmd.Stderr = p.out.w, p.out.w
	p.out.logf("running %s", label)
	t0 := time.Now()
	err := p.run(cmd)
	if errors.Is(err, errShuttingDown) {
		return false
	}
	if err != nil {
		if errors.Is(err, syscall.ENOEXEC) {
			err = fmt.Errorf("%w (a script must start with #!)", err)
		}
		p.out.logf("%s failed after %s: %v", label, since(t0), err)
		p.failed++
		return false
	}
	p.out.logf("%s done in %s", label, since(t0))
	return true
}

// packages installs cloud-config packages with apt-get, after updating
// the package lists (the images ship none). Instances reach Debian's
// mirror only with a public IP, a host that lets them out and a resolver
// that answers for the mirror's name.
func (p *provisioner) packages(cfg cloudConfig) {
	upgrade := cfg.PackageUpgrade || cfg.AptUpgrade
	if !(cfg.PackageUpdate || cfg.AptUpdate || upgrade || len(cfg.Packages) > 0) {
		return
	}
	aptGet := p.path("usr/bin/apt-get")
	env := []string{"DEBIAN_FRONTEND=noninteractive"}
	opts := []string{aptGet, "--option=Dpkg::Options::=--force-confold", "--option=Acquire::http::Timeout=20", "--assume-yes", "--quiet"}
	hint := "packages need a way to Debian's mirror: a public IP, a host that lets instances out (nubo serve --egress) and a resolver that knows deb.debian.org"
	if !p.command("apt-get update", env, append(opts, "update")...) {
		p.out.logf("%s", hint)
	}
	if upgrade && !p.command("apt-get dist-upgrade", env, append(opts, "dist-upgrade")...) {
		p.out.logf("%s", hint)
	}
	if len(cfg.Packages) > 0 {
		args := append(opts, "install")
		for _, pk := range cfg.Packages {
			args = append(args, string(pk))
		}
		if !p.command("apt-get install", env, args...) {
			p.out.logf("%s", hint)
		}
	}
}
