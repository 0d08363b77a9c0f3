package main

import (
	"context"
	"errors"
	"os"
	"strings"
	"time"
)

// Per-instance work with the metadata service. Before sshd starts (so that
// the first login finds it): the instance ID, when the host did not pass
// it, and the key pair's key. After sshd is up: the user data, which may
// run for minutes (packages) and must never delay a login.
const (
	imdsTimeout = 500 * time.Millisecond // per request: the service is on the host
	imdsBudget  = 2 * time.Second        // to reach it at all, per phase

	// firstBootMarker holds the ID of the instance whose first boot is done.
	firstBootMarker = "var/lib/nubo-init/first-boot-done"
	// userDataMarker holds the ID of the instance whose user data has run
	// (written before it runs: a script that reboots does not run again).
	userDataMarker = "var/lib/nubo-init/user-data-done"
	// hostKeysMarker holds the ID of the instance whose host keys were shown.
	hostKeysMarker = "var/lib/nubo-init/host-keys-shown"
	// bootFinished is cloud-init's sign that a boot's user data is done,
	// which many tools wait for; it is removed when a boot starts.
	bootFinished = "var/lib/cloud/instance/boot-finished"
)

// metadata returns the metadata client with a session token, or the error
// that kept it from getting one. A failure is remembered until forget, so
// that the boot does not wait for an absent service twice before sshd.
func (in *initd) metadata(ctx context.Context) (*imds, error) {
	if in.mdErr != nil {
		return nil, in.mdErr
	}
	if in.md == nil {
		in.md = newIMDS(in.imdsURL, imdsTimeout)
	}
	ctx, cancel := context.WithTimeout(ctx, imdsBudget)
	defer cancel()
	t0 := time.Now()
	if err := in.md.connect(ctx); err != nil {
		in.mdErr = err
		in.con.logf("instance metadata unavailable after %s: %v", since(t0), err)
		return nil, err
	}
	return in.md, nil
}

// identify sets the instance ID from the metadata service when the host
// did not pass it (NUBO_INSTANCE_ID): first-boot work is per instance, and
// an image made from an instance carries that instance's markers.
func (in *initd) identify(ctx context.Context) {
	if in.instanceID != "" {
		return
	}
	md, err := in.metadata(ctx)
	if err != nil {
		return
	}
	b, err := md.get(ctx, "meta-data/instance-id", 256)
	if err != nil {
		in.con.logf("cannot read the instance ID: %v", err)
		return
	}
	in.instanceID = strings.TrimSpace(string(b))
}

// installKeyPair installs the public key of the instance's key pair for
// the default user, and for root with the options that send root logins to
// it; false if the metadata service could not be asked.
func (in *initd) installKeyPair(ctx context.Context) bool {
	md, err := in.metadata(ctx)
	if err != nil {
		return false
	}
	b, err := md.get(ctx, "meta-data/public-keys/0/openssh-key", 16<<10)
	if errors.Is(err, errNotFound) {
		in.con.logf("no key pair: no SSH key to install")
		return true
	}
	if err != nil {
		in.con.logf("cannot read the key pair's key: %v", err)
		return false
	}
	keys := authorizedKeyLines(b)
	if len(keys) == 0 {
		in.con.logf("the key pair's key is not an SSH public key: not installed")
		return true
	}
	if err := addAuthorizedKeys(in.root, defaultUser, keys, ""); err != nil {
		in.con.logf("cannot install the key pair's key for %s: %v", defaultUser, err)
		return false
	}
	if err := addAuthorizedKeys(in.root, "root", keys, rootKeyOptions(defaultUser)); err != nil {
		in.con.logf("cannot install root's pointer to %s: %v", defaultUser, err)
	}
	in.con.logf("installed the key pair's key for %s", defaultUser)
	return true
}

// provision runs the instance's user data (once per instance; boot hooks
// and bootcmd every boot), with its output on the console and in
// /var/log/cloud-init-output.log, then marks the boot finished.
func (in *initd) provision(ctx context.Context) {
	out, err := openOutput(in.root, in.out)
	if err != nil {
		in.con.logf("cannot open /%s: %v; user data not run", outputLog, err)
		return
	}
	defer out.close()
	t0 := time.Now()
	p := &provisioner{root: in.root, out: out, run: in.procs.run, stop: in.procs.isClosed, instanceID: in.instanceID}
	saved := in.path(instanceDir + "/user-data.txt")
	marker := in.path(userDataMarker)
	ran := false
	if need, err := firstBootNeeded(marker, in.instanceID); err != nil {
		out.logf("cannot read %s: %v", userDataMarker, err)
	} else if need {
		ran = in.provisionInstance(ctx, p, marker, saved)
	} else if raw, err := os.ReadFile(saved); err == nil {
		if ud, err := parseUserData(raw); err == nil {
			cfg := p.config(ud, false)
			ran = len(ud.boothooks) > 0 || len(cfg.BootCmd) > 0
			p.perBoot(ud, cfg)
		}
	}
	if in.procs.isClosed() {
		return
	}
	stamp := time.Now().UTC().Format(time.RFC3339) + " - nubo-init\n"
	if err := writeFileAtomic(in.path(bootFinished), []byte(stamp), 0o644); err != nil {
		out.logf("cannot write /%s: %v", bootFinished, err)
	}
	if ran {
		out.logf("user data done in %s (%d failed)", since(t0), p.failed)
	}
}

// provisionInstance fetches the instance's user data and runs all of it;
// false if there was nothing to run.
func (in *initd) provisionInstance(ctx context.Context, p *provisioner, marker, saved string) bool {
	in.mdErr = nil // the service may have come up since the boot began
	md, err := in.metadata(ctx)
	if err != nil {
		p.out.logf("user data not read (no instance metadata); trying again at the next boot")
		return false
	}
	if p.instanceID == "" {
		// The service was not there when the boot began: the ID is the
		// markers' (the first boot's too, so that its work is not done
		// again at the next boot, which will know the ID).
		b, err := md.get(ctx, "meta-data/instance-id", 256)
		if err != nil {
			p.out.logf("cannot read the instance ID: %v; trying again at the next boot", err)
			return false
		}
		p.instanceID = strings.TrimSpace(string(b))
		if need, err := firstBootNeeded(marker, p.instanceID); err == nil && !need {
			return false
		}
		first := in.path(firstBootMarker)
		if b, err := os.ReadFile(first); err == nil && strings.TrimSpace(string(b)) == "" {
			_ = markFirstBootDone(first, p.instanceID)
		}
	}
	if !in.keysInstalled {
		in.keysInstalled = in.installKeyPair(ctx)
	}
	raw, err := md.get(ctx, "user-data", userDataLimit)
	if err != nil && !errors.Is(err, errNotFound) {
		p.out.logf("cannot read the user data: %v; trying again at the next boot", err)
		return false
	}
	// From here on the user data counts as run for this instance, whatever
	// it does (a script may reboot, or never end).
	if err := emptyDir(in.path(instanceDir)); err != nil {
		p.out.logf("cannot clear /%s: %v", instanceDir, err)
	}
	if len(raw) > 0 {
		if err := writeFileAtomic(saved, raw, 0o600); err != nil {
			p.out.logf("cannot keep the user data: %v", err)
		}
	}
	if err := markFirstBootDone(marker, p.instanceID); err != nil {
		p.out.logf("cannot write /%s: %v", userDataMarker, err)
	}
	if len(raw) == 0 {
		return false
	}
	ud, err := parseUserData(raw)
	if err != nil {
		p.out.logf("user data not run: %v", err)
		return true
	}
	for _, ig := range ud.ignored {
		p.out.logf("user data: ignored %s", ig)
	}
	p.out.logf("running user data (%d bytes: %d script(s), %d cloud-config part(s), %d boot hook(s))",
		len(raw), len(ud.scripts), ud.configs, len(ud.boothooks))
	p.perInstance(ud)
	return true
}

// printHostKeysOnce prints the host key block (see hostKeyBlock) on the
// console and in the output log once per instance, as cloud-init does at
// an instance's first boot: once all keys exist, which may be a later boot
// if the first one ended before the slow key was made.
func (in *initd) printHostKeysOnce() {
	marker := in.path(hostKeysMarker)
	if need, err := firstBootNeeded(marker, in.instanceID); err != nil || !need {
		return
	}
	block := hostKeyBlock(in.path("etc/ssh"))
	if block == "" {
		return
	}
	if err := markFirstBootDone(marker, in.instanceID); err != nil {
		in.con.logf("cannot write /%s: %v", hostKeysMarker, err)
	}
	in.con.write(block)
	if f, err := os.OpenFile(in.path(outputLog), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640); err == nil {
		_, _ = f.WriteString(block)
		f.Close()
	}
}

// emptyDir removes what dir holds, keeping dir (missing is fine).
func emptyDir(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	for _, e := range ents {
		if err := os.RemoveAll(dir + "/" + e.Name()); err != nil {
			return err
		}
	}
	return nil
}
