package image

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// How users log in to both images, as to AWS's Debian AMIs: by SSH key
// only, as the default user admin, who has passwordless sudo. The key
// pair's key is installed at first boot (by nubo-init, or cloud-init in
// debian-12) for admin, and for root only behind a command that says to log
// in as admin. EC2 Instance Connect keys (SendSSHPublicKey) reach sshd
// through its AuthorizedKeysCommand, nubo-eic-keys, which asks the instance
// metadata service.

// defaultUser is the images' login, with the groups of Debian's cloud
// images' default user.
const (
	defaultUser   = "admin"
	defaultGroups = "adm,audio,cdrom,dialout,dip,floppy,netdev,plugdev,sudo,video"
)

// eicCommand is nubo-init under the name that makes it print a user's
// Instance Connect keys.
const eicCommand = "/usr/sbin/nubo-eic-keys"

const sshdNuboConf = `# nubo: logins by key only, as on AWS's Debian AMIs: the key pair's key is
# admin's (root's copy only says to log in as admin). EC2 Instance Connect
# keys come from the instance metadata service, through nubo-eic-keys.
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
AuthorizedKeysCommand ` + eicCommand + ` %u
AuthorizedKeysCommandUser nobody
`

const sudoersNubo = `# nubo: the default user has passwordless sudo, as on AWS's Debian AMIs.
` + defaultUser + ` ALL=(ALL) NOPASSWD:ALL
`

// installInit installs Builder.InitBinary as /usr/sbin/nubo-init, with
// nubo-eic-keys linked to it; it returns the host path of /sbin.
func installInit(b *Builder, rootfs string) (string, error) {
	if err := checkStatic(b.InitBinary); err != nil {
		return "", err
	}
	sbin, err := resolveInRoot(rootfs, "/sbin")
	if err != nil {
		return "", err
	}
	if err := copyFile(b.InitBinary, filepath.Join(sbin, "nubo-init"), 0o755); err != nil {
		return "", fmt.Errorf("install nubo-init: %w", err)
	}
	eic, err := resolveInRoot(rootfs, eicCommand)
	if err != nil {
		return "", err
	}
	if err := replaceSymlink("nubo-init", eic); err != nil {
		return "", err
	}
	return sbin, nil
}

// setupLogin makes the default user, its sudo rule and sshd's settings.
// Files are written as host root, before the tree is shifted.
func setupLogin(ctx context.Context, rootfs string) error {
	// The accounts tools of the image itself, chrooted: useradd picks the
	// uid (1000), copies /etc/skel and keeps shadow and gshadow in step.
	script := `set -e
getent group netdev >/dev/null || groupadd --system netdev
useradd --create-home --shell /bin/bash --comment Debian --groups "$1" "$2"
rm -f /etc/passwd- /etc/group- /etc/shadow- /etc/gshadow-
`
	cmd := exec.CommandContext(ctx, "chroot", rootfs, "/bin/sh", "-c", script, "sh", defaultGroups, defaultUser)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("adding user %s: %w: %s", defaultUser, err, strings.TrimSpace(string(out)))
	}
	if err := writeFiles(rootfs, map[string]string{
		"etc/ssh/sshd_config.d/10-nubo.conf": sshdNuboConf,
		"etc/sudoers.d/90-nubo-admin":        sudoersNubo,
	}); err != nil {
		return err
	}
	// sudo wants its files read-only (visudo says 0440).
	return os.Chmod(filepath.Join(rootfs, "etc/sudoers.d/90-nubo-admin"), 0o440)
}
