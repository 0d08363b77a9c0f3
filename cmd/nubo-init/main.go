// Command nubo-init is PID 1 of nubo's debian-12-minimal image: a small,
// static init that boots an instance (a system container run by runc in a user
// namespace) to a working SSH server as fast as it can, and shuts it down
// cleanly.
//
// As PID 1 it
//
//   - brings the loopback interface up if it is down;
//   - reaps every zombie (it is also marked child subreaper, so orphans of its
//     descendants come back to it even when it is not PID 1);
//   - on an instance's first boot only, creates /etc/machine-id if empty,
//     generates missing SSH host keys (ssh-keygen -A) and runs the executable
//     files in /etc/nubo-init/first-boot.d/ in lexical order; then records
//     /var/lib/nubo-init/first-boot-done. If NUBO_INSTANCE_ID is set in its
//     environment the marker holds that ID, and a marker written by another
//     instance (an image made from a running instance) counts as no marker;
//   - on every boot runs the executable files in /etc/nubo-init/boot.d/;
//   - creates /run/sshd and runs /usr/sbin/sshd -D -e, restarting it with
//     exponential backoff (100 ms … 30 s) whenever it exits;
//   - logs one line per action on stdout, the instance's console, each
//     starting "nubo-init: ", and prints exactly one readiness line, starting
//     "nubo-init: ready", once sshd has a listening socket (or has stayed up
//     for a second without one).
//
// # Instance metadata
//
// nubo-init asks the instance metadata service (EC2's, at 169.254.169.254:
// IMDSv2, one session token per boot, short timeouts, a few quick retries
// for 2 s at most, none when there is no route to it or it is turned off):
//
//   - before the first-boot decision, the instance ID when NUBO_INSTANCE_ID
//     is not set, so that a disk made from another instance counts as a
//     first boot;
//   - at a first boot, before sshd starts, the key pair's public key
//     (meta-data/public-keys/0/openssh-key), installed for the default user
//     admin (~admin/.ssh/authorized_keys, 0700/0600) and for root behind a
//     command that says to log in as admin, as on AWS's Debian AMIs;
//   - once sshd is up, in the background, the user data: run once per
//     instance (see userdata.go and cloudconfig.go for what it may be: "#!"
//     scripts, a subset of #cloud-config, MIME multi-part, gzip), its
//     #cloud-boothook parts and bootcmd again at every boot. Its output goes
//     to the console and to /var/log/cloud-init-output.log, as cloud-init's;
//     /var/lib/cloud/instance/boot-finished marks the boot's end, as
//     cloud-init marks it.
//
// Once per instance, once all host keys exist, it prints the host key
// block EC2 users read with GetConsoleOutput ("-----BEGIN SSH HOST KEY
// FINGERPRINTS-----", "-----BEGIN SSH HOST KEY KEYS-----").
//
// Called as nubo-eic-keys (sshd's AuthorizedKeysCommand, a symlink), it
// prints the EC2 Instance Connect keys the metadata service holds for the
// user named by its argument, or nothing (see eic.go).
//
// Scripts and sshd inherit the console as stdout and stderr, /dev/null as
// stdin, and the environment of nubo-init (PATH gets a default if unset).
//
// # Signals and exit codes
//
// The host agent relies on these exit codes:
//
//	signal to PID 1                      sent by                     exit code
//	SIGTERM                              the host: stop the instance  0  powered off
//	SIGUSR2, SIGPWR                      poweroff, shutdown -h/-P     0  powered off
//	SIGUSR1                              halt, shutdown -H            0  powered off (halt)
//	SIGINT                               reboot, shutdown -r, C-A-D   129 reboot: start it again
//
// Any of these makes nubo-init stop starting processes, send SIGTERM (and
// SIGCONT) to every process of the instance, wait up to 5 s (-grace) for them
// to exit, SIGKILL what is left, sync(2), and exit with the code above. Exit
// code 2 means nubo-init could not run (bad flags). Should a process with
// CAP_SYS_BOOT call reboot(2) itself, the kernel kills PID 1 with SIGHUP
// (restart) or SIGINT (power off, halt), which runc reports as 129 and 130:
// 129 keeps meaning reboot, and 130 means powered off.
//
// # Shutdown commands
//
// The image links /sbin/poweroff, /sbin/halt, /sbin/reboot and /sbin/shutdown
// to this binary, which, called by those names (or as "nubo-init poweroff",
// …), signals PID 1 as in the table above. They accept the usual flags:
// "shutdown -h now", "shutdown -P now", "shutdown -r now", "shutdown now",
// "poweroff", "reboot", "halt -p". Delayed shutdown ("+5", "23:00") is not
// supported.
//
// # Flags
//
//	-root DIR     prefix for every path nubo-init reads or writes (tests only)
//	-grace DUR    how long to wait for processes after SIGTERM (default 5s)
//	-imds URL     the instance metadata service (tests only)
package main

import (
	"os"
	"path/filepath"
)

func main() {
	if filepath.Base(os.Args[0]) == eicCommand {
		os.Exit(eicMain(os.Args[1:], os.Stdout))
	}
	if cmd := filepath.Base(os.Args[0]); isPowerCommand(cmd) {
		os.Exit(powerCommand(cmd, os.Args[1:], os.Stderr, signalInit))
	}
	if len(os.Args) > 1 && isPowerCommand(os.Args[1]) {
		os.Exit(powerCommand(os.Args[1], os.Args[2:], os.Stderr, signalInit))
	}
	os.Exit(runInit(os.Args[1:], os.Stdout))
}
