package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestPID1UserData boots the real nubo-init as PID 1 against a fake
// metadata service: the key pair's key is in place before sshd starts, the
// user data runs once sshd is up and only at the instance's first boot, the
// host key block is printed once, and an instance made from this one's disk
// (another instance ID) is a first boot again.
func TestPID1UserData(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: unshare --pid")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("needs unshare (util-linux)")
	}
	bin := buildInit(t)
	root := fakeRoot(t, bin)
	acc := accountsRoot(t)
	for _, p := range []string{"etc/passwd", "etc/group", "usr/sbin/useradd", "usr/sbin/groupadd"} {
		b, _ := os.ReadFile(filepath.Join(acc, p))
		writeTestFile(t, filepath.Join(root, p), string(b), 0o755)
	}
	os.MkdirAll(filepath.Join(root, "home/admin"), 0o755)
	os.Chown(filepath.Join(root, "home/admin"), adminUID(), adminUID())
	f := newFakeIMDS(t, map[string]string{
		"meta-data/instance-id":               "i-0aaaaaaaaaaaaaaaa",
		"meta-data/public-keys/0/openssh-key": testKey + "\n",
		"user-data":                           "#!/bin/sh\necho \"ran for $(cat " + root + "/var/lib/nubo-init/user-data-done)\" >> " + root + "/ud-trace\necho user-data-on-console\n",
	})
	udTrace := func() string { b, _ := os.ReadFile(filepath.Join(root, "ud-trace")); return string(b) }
	// No NUBO_INSTANCE_ID: the instance ID comes from the metadata service.
	boot := func() *pid1 { return bootPID1Env(t, bin, root, nil, "-imds", f.URL, "-grace", "1s") }

	p := boot()
	p.waitFor("nubo-init: user data done")
	p.waitFor("-----END SSH HOST KEY KEYS-----")
	out := p.output()
	keyAt, sshdAt := strings.Index(out, "installed the key pair's key for admin"), strings.Index(out, "nubo-init: starting sshd")
	if keyAt < 0 || sshdAt < keyAt {
		t.Errorf("the key pair's key was not installed before sshd started:\n%s", out)
	}
	if readyAt, udAt := strings.Index(out, "nubo-init: ready"), strings.Index(out, "user-data-on-console"); udAt < readyAt {
		t.Errorf("user data ran before readiness:\n%s", out)
	}
	if blockAt := strings.Index(out, "nubo-init: -----BEGIN SSH HOST KEY FINGERPRINTS-----"); blockAt < strings.Index(out, "-t rsa") {
		t.Errorf("host key block before the RSA key was made:\n%s", out)
	}
	if got := readFile(t, filepath.Join(root, "home/admin/.ssh/authorized_keys")); got != testKey+"\n" {
		t.Errorf("admin's keys %q", got)
	}
	if got := udTrace(); got != "ran for i-0aaaaaaaaaaaaaaaa\n" {
		t.Errorf("user data trace %q", got)
	}
	if log := readFile(t, filepath.Join(root, outputLog)); !strings.Contains(log, "user-data-on-console") || !strings.Contains(log, "BEGIN SSH HOST KEY KEYS") {
		t.Errorf("output log:\n%s", log)
	}
	if _, err := os.Stat(filepath.Join(root, bootFinished)); err != nil {
		t.Errorf("boot-finished: %v", err)
	}
	if got := readFile(t, filepath.Join(root, "var/lib/nubo-init/first-boot-done")); got != "i-0aaaaaaaaaaaaaaaa\n" {
		t.Errorf("first-boot marker %q", got)
	}
	reqs := strings.Join(f.log(), "\n")
	if n := strings.Count(reqs, "PUT /latest/api/token"); n != 1 {
		t.Errorf("%d token requests in one boot, want 1:\n%s", n, reqs)
	}
	if testing.Verbose() {
		t.Logf("console of the first boot:\n%s", p.output())
	}
	syscall.Kill(p.hostPID, syscall.SIGINT)
	if code := p.exit(); code != 129 {
		t.Fatalf("reboot: exit %d\n%s", code, p.output())
	}

	// Reboot, with other user data meanwhile: nothing runs again.
	f.set("user-data", "#!/bin/sh\necho changed >> "+root+"/ud-trace\n")
	p = boot()
	p.waitFor("nubo-init: ready")
	waitFile(t, filepath.Join(root, bootFinished))
	syscall.Kill(p.hostPID, syscall.SIGTERM)
	p.exit()
	if out := p.output(); strings.Contains(out, "first boot") || strings.Contains(out, "HOST KEY") || strings.Contains(out, "user data") {
		t.Errorf("later boot did first-boot work:\n%s", out)
	}
	if got := udTrace(); got != "ran for i-0aaaaaaaaaaaaaaaa\n" {
		t.Errorf("user data ran again: %q", got)
	}

	// The same disk as another instance (an AMI made from this one).
	f.set("meta-data/instance-id", "i-0bbbbbbbbbbbbbbbb")
	p = boot()
	p.waitFor("nubo-init: user data done")
	if got := udTrace(); got != "ran for i-0aaaaaaaaaaaaaaaa\nchanged\n" {
		t.Errorf("user data of the new instance: %q", got)
	}
	if !strings.Contains(p.output(), "first boot: preparing the instance") {
		t.Errorf("not a first boot:\n%s", p.output())
	}
}

func writeTestFile(t *testing.T, p, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

// waitFile waits for p to exist.
func waitFile(t *testing.T, p string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(p); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not appear", p)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
