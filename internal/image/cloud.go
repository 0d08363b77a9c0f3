package image

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
)

// customizeCloud prepares the systemd + cloud-init image to boot as a
// system container (see cloudFiles): cloud-init starts from a clean state,
// reads nubo's instance metadata service as it reads EC2's, leaves the
// network to nubo, and runs only the modules that mean something in a
// container.
func customizeCloud(ctx context.Context, b *Builder, rootfs string) error {
	if err := cleanForImage(rootfs); err != nil {
		return err
	}
	if err := emptyDir(filepath.Join(rootfs, "var/lib/cloud")); err != nil {
		return err
	}
	if _, err := installInit(b, rootfs); err != nil { // for nubo-eic-keys only
		return err
	}
	if err := setupLogin(ctx, rootfs); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(rootfs, "etc/cloud/cloud-init.disabled")); err != nil && !os.IsNotExist(err) {
		return err
	}
	if err := writeFiles(rootfs, cloudFiles); err != nil {
		return err
	}
	// The datasource module goes where python3 looks first, outside the
	// package's files (an upgrade of cloud-init keeps it).
	pys, err := filepath.Glob(filepath.Join(rootfs, "usr/lib/python3.[0-9]*"))
	if err != nil || len(pys) != 1 {
		return fmt.Errorf("finding the image's python3 (for cloud-init's datasource): %v %w", pys, err)
	}
	site := filepath.Join(rootfs, "usr/local/lib", filepath.Base(pys[0]), "dist-packages")
	if err := os.MkdirAll(site, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(site, "DataSourceEc2.py"), []byte(ec2Datasource), 0o644); err != nil {
		return err
	}
	for link, target := range cloudLinks {
		if err := replaceSymlink(target, filepath.Join(rootfs, link)); err != nil {
			return err
		}
	}
	return nil
}

// readyUnit is the systemd unit of debian-12 that prints the readiness line
// the host waits for ("nubo-init: ready", as nubo-init prints it) on the
// console once the boot is done and sshd is up, or has failed for good.
const readyUnit = "nubo-ready.service"

// cloudConfig is cloud-init's configuration for nubo (cloud.cfg.d/90-nubo.cfg).
//
// The Ec2 datasource (ec2Datasource), not strict: a container has no DMI
// data to tell EC2 by. It asks with IMDSv2 tokens, at the newest dated
// version it knows (/2021-03-23/). The service is on the host: it answers
// within milliseconds or is not there, so cloud-init waits 10 s for it
// (EC2's default is 120 s), then boots with the None datasource.
//
// Modules: EC2's Debian image's, less those that have nothing to act on in a
// system container (disks and partitions, mounts, the clock, keyboard,
// locale, bootloader, snap, LXD, fan, Landscape, RMC, configuration
// managers) and the hostname ones (nubo names the instance).
const cloudConfig = `# nubo: cloud-init reads nubo's instance metadata service as EC2's.
datasource_list: [ Ec2, None ]
datasource:
  Ec2:
    strict_id: false
    metadata_urls: [ 'http://169.254.169.254' ]
    timeout: 2
    max_wait: 10
    apply_full_imds_network_config: false

# nubo configures the instance's network (eth0) and hostname from the host.
network:
  config: disabled
preserve_hostname: true

# The default user of AWS's Debian AMIs.
system_info:
  default_user:
    name: ` + defaultUser + `
    lock_passwd: true
    gecos: Debian
    groups: [adm, audio, cdrom, dialout, dip, floppy, netdev, plugdev, sudo, video]
    sudo: ["ALL=(ALL) NOPASSWD:ALL"]
    shell: /bin/bash

# Host keys as on EC2's images: made by cloud-init at an instance's first
# boot, printed on the console; no DSA (OpenSSH no longer uses it).
ssh_genkeytypes: [rsa, ecdsa, ed25519]

cloud_init_modules:
 - migrator
 - seed_random
 - bootcmd
 - write-files
 - ca-certs
 - users-groups
 - ssh

cloud_config_modules:
 - ssh-import-id
 - set-passwords
 - apt-pipelining
 - apt-configure
 - timezone
 - disable-ec2-metadata
 - runcmd

cloud_final_modules:
 - package-update-upgrade-install
 - write-files-deferred
 - scripts-vendor
 - scripts-per-once
 - scripts-per-boot
 - scripts-per-instance
 - scripts-user
 - ssh-authkey-fingerprints
 - keys-to-console
 - phone-home
 - final-message
 - power-state-change
`

// ec2Datasource is cloud-init's Ec2 datasource, sure to be on EC2.
// cloud-init 22.4 tells EC2 by DMI data or /sys/hypervisor/uuid, which a
// nubo instance (a container) has neither of; it would then read the
// metadata service as it reads EC2 clones': IMDSv1 only, which an instance
// launched with HttpTokens=required refuses, and without the identity
// document. cloud-init looks for datasource modules at the top level before
// its own package (datasource_pkg_list), so this one, of the same name, is
// the Ec2 of datasource_list.
const ec2Datasource = `# nubo: cloud-init's Ec2 datasource, sure to be on EC2 (see
# internal/image/cloud.go in nubo): a container has no DMI data to say so.
from cloudinit import sources
from cloudinit.sources import DataSourceEc2 as ec2


class DataSourceEc2(ec2.DataSourceEc2):
    def _get_cloud_name(self):
        return ec2.CloudNames.AWS


# The local stage stays cloud-init's own: on EC2 it would run DHCP on eth0,
# which nubo configures from the host.
datasources = [
    (ec2.DataSourceEc2Local, (sources.DEP_FILESYSTEM,)),
    (DataSourceEc2, (sources.DEP_FILESYSTEM, sources.DEP_NETWORK)),
]


def get_datasource_list(depends):
    return sources.list_from_depends(depends, datasources)
`

// cloudFiles are what customizeCloud adds to debian-12.
var cloudFiles = map[string]string{
	"etc/cloud/cloud.cfg.d/90-nubo.cfg": cloudConfig,
	// Empty: systemd keeps the hostname the runtime gave the instance
	// (ip-…) instead of setting "localhost".
	"etc/hostname": "",
	// cloud-init makes the host keys before sshd starts; should it have
	// failed, ssh.service's own `sshd -t` would fail without them.
	"etc/systemd/system/ssh.service.d/10-nubo-hostkeys.conf": `# nubo: make missing SSH host keys before sshd checks its config.
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
