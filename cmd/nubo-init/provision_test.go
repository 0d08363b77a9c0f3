package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// lockedBuffer is a console that the output's copier and the test share.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// adminUID is the default user's uid in test roots: 1000 when the test can
// chown (root), else the test's own.
func adminUID() int {
	if os.Geteuid() == 0 {
		return 1000
	}
	return os.Getuid()
}

// accountsRoot lays out a root with root and admin accounts, and fake
// useradd, groupadd, usermod, visudo and apt-get that log to R/trace (and
// update passwd and group as the real ones would).
func accountsRoot(t *testing.T) string {
	t.Helper()
	r := t.TempDir()
	u := adminUID()
	files := map[string]string{
		"etc/passwd": fmt.Sprintf("root:x:0:0:root:/root:/bin/bash\nadmin:x:%d:%d:Debian:/home/admin:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n", u, u),
		"etc/group":  fmt.Sprintf("root:x:0:\nadm:x:4:admin\nsudo:x:27:admin\nadmin:x:%d:\n", u),
	}
	for p, c := range files {
		os.MkdirAll(filepath.Join(r, filepath.Dir(p)), 0o755)
		os.WriteFile(filepath.Join(r, p), []byte(c), 0o644)
	}
	os.MkdirAll(filepath.Join(r, "root"), 0o700)
	os.MkdirAll(filepath.Join(r, "home/admin"), 0o755)
	os.Chown(filepath.Join(r, "home/admin"), u, u)
	tr := "echo \"$(basename $0) $*\" >> " + r + "/trace\n"
	writeScript(t, filepath.Join(r, "usr/sbin/useradd"), tr+
		`mkdir -p `+r+`/home/$1; echo "$1:x:`+fmt.Sprint(u)+`:`+fmt.Sprint(u)+`::/home/$1:/bin/sh" >> `+r+`/etc/passwd`, 0o755)
	writeScript(t, filepath.Join(r, "usr/sbin/groupadd"), tr+`echo "$1:x:1500:" >> `+r+`/etc/group`, 0o755)
	writeScript(t, filepath.Join(r, "usr/sbin/usermod"), tr, 0o755)
	writeScript(t, filepath.Join(r, "usr/sbin/visudo"), tr+`for f; do :; done; ! grep -q BAD "$f"`, 0o755)
	writeScript(t, filepath.Join(r, "usr/bin/apt-get"), tr+`echo "apt-get: DEBIAN_FRONTEND=$DEBIAN_FRONTEND"; case "$*" in *missing-pkg*) echo "E: Unable to locate package missing-pkg"; exit 100;; esac`, 0o755)
	return r
}

func trace(t *testing.T, root string) string {
	b, _ := os.ReadFile(filepath.Join(root, "trace"))
	return string(b)
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func ownerOf(t *testing.T, p string) (int, int, os.FileMode) {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return int(st.Uid), int(st.Gid), fi.Mode()
}

// testInit is an initd over root that runs commands itself (not as PID 1)
// and asks the fake metadata service.
func testInit(t *testing.T, root string, f *fakeIMDS, con *lockedBuffer) (*initd, *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		b := make([]byte, 4096)
		for {
			n, err := r.Read(b)
			con.Write(b[:n])
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { w.Close() })
	return &initd{root: root, imdsURL: f.URL, con: &console{w: con}, out: w, procs: newProcs(), instanceID: "i-0123456789abcdef0"}, w
}

func newTestProvisioner(t *testing.T, in *initd, con *lockedBuffer) *provisioner {
	t.Helper()
	out, err := openOutput(in.root, con)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(out.close)
	return &provisioner{root: in.root, out: out, run: func(c *exec.Cmd) error { return c.Run() }, stop: func() bool { return false }, instanceID: in.instanceID}
}

const testKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKeyPairKey kp"

func TestProvisionCloudConfig(t *testing.T) {
	root := accountsRoot(t)
	f := newFakeIMDS(t, map[string]string{
		"meta-data/public-keys/0/openssh-key": testKey + "\n",
		"user-data": `#cloud-config
bootcmd:
  - echo "bootcmd $INSTANCE_ID" >> ` + root + `/order
write_files:
  - path: /etc/app/config
    content: |
      key=value
    permissions: '0640'
    owner: root:adm
  - path: /home/bob/notes
    content: deferred
    owner: bob
    defer: true
  - path: /etc/motd
    content: line two
    append: true
users:
  - default
  - name: bob
    groups: [ops, adm]
    shell: /bin/bash
    sudo: ALL=(ALL) NOPASSWD:ALL
    ssh_authorized_keys: [ssh-rsa AAAAB3BobKey bob@laptop]
  - name: mallory
    sudo: "BAD RULE"
ssh_authorized_keys:
  - ssh-ed25519 AAAAC3ExtraKey extra
packages: [jq, missing-pkg]
runcmd:
  - echo "runcmd as $(id -u)" >> ` + root + `/order
  - [sh, -c, "echo runcmd-list >> ` + root + `/order"]
timezone: UTC
`,
	})
	os.WriteFile(filepath.Join(root, "etc/motd"), []byte("line one\n"), 0o644)
	con := &lockedBuffer{}
	in, _ := testInit(t, root, f, con)
	p := newTestProvisioner(t, in, con)
	marker, saved := filepath.Join(root, userDataMarker), filepath.Join(root, instanceDir, "user-data.txt")
	if !in.provisionInstance(context.Background(), p, marker, saved) {
		t.Fatal("nothing ran")
	}
	p.out.close()
	out := con.String()
	if got := readFile(t, filepath.Join(root, "order")); got != "bootcmd i-0123456789abcdef0\nruncmd as "+fmt.Sprint(os.Getuid())+"\nruncmd-list\n" {
		t.Errorf("order of commands:\n%s", got)
	}
	if got := readFile(t, filepath.Join(root, "etc/app/config")); got != "key=value\n" {
		t.Errorf("write_files: %q", got)
	}
	if uid, gid, mode := ownerOf(t, filepath.Join(root, "etc/app/config")); mode.Perm() != 0o640 || (os.Geteuid() == 0 && (uid != 0 || gid != 4)) {
		t.Errorf("/etc/app/config: %d:%d %v", uid, gid, mode)
	}
	if got := readFile(t, filepath.Join(root, "etc/motd")); got != "line one\nline two" {
		t.Errorf("append: %q", got)
	}
	if got := readFile(t, filepath.Join(root, "home/bob/notes")); got != "deferred" {
		t.Errorf("deferred write: %q", got)
	}
	wantTrace := []string{"groupadd ops", "useradd bob --groups ops,adm --shell /bin/bash -m", "visudo -c -q -f",
		"apt-get --option=Dpkg::Options::=--force-confold --option=Acquire::http::Timeout=20 --assume-yes --quiet update",
		"--quiet install jq missing-pkg"}
	tr := trace(t, root)
	for _, w := range wantTrace {
		if !strings.Contains(tr, w) {
			t.Errorf("trace lacks %q:\n%s", w, tr)
		}
	}
	// mallory's bad rule is checked and left out; bob's stays.
	sudoers := readFile(t, filepath.Join(root, sudoersFile))
	if !strings.Contains(sudoers, "\nbob ALL=(ALL) NOPASSWD:ALL\n") || strings.Contains(sudoers, "BAD") {
		t.Errorf("sudoers:\n%s", sudoers)
	}
	bobKeys := readFile(t, filepath.Join(root, "home/bob/.ssh/authorized_keys"))
	if bobKeys != "ssh-rsa AAAAB3BobKey bob@laptop\n" {
		t.Errorf("bob's keys %q", bobKeys)
	}
	adminKeys := readFile(t, filepath.Join(root, "home/admin/.ssh/authorized_keys"))
	if adminKeys != testKey+"\nssh-ed25519 AAAAC3ExtraKey extra\n" {
		t.Errorf("admin's keys %q", adminKeys)
	}
	rootKeys := readFile(t, filepath.Join(root, "root/.ssh/authorized_keys"))
	if !strings.Contains(rootKeys, `command="echo 'Please login as the user \"admin\" rather than the user \"root\".';echo;sleep 10;exit 142" `+testKey) {
		t.Errorf("root's keys %q", rootKeys)
	}
	for _, want := range []string{
		"nubo-init: running user data (",
		"nubo-init: cloud-config: nubo-init does not act on timezone",
		"E: Unable to locate package missing-pkg",
		"nubo-init: apt-get install failed after",
		"packages need a way to Debian's mirror",
		"nubo-init: write_files: wrote /etc/app/config",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	log := readFile(t, filepath.Join(root, outputLog))
	for _, l := range strings.Split(strings.TrimSpace(log), "\n") {
		if !strings.Contains(out, l+"\n") {
			t.Errorf("output log line %q not on the console", l)
		}
	}
	if !strings.Contains(log, "E: Unable to locate package missing-pkg") {
		t.Errorf("output log:\n%s", log)
	}
	if got := readFile(t, marker); got != "i-0123456789abcdef0\n" {
		t.Errorf("marker %q", got)
	}
	if got := readFile(t, saved); !strings.HasPrefix(got, "#cloud-config") {
		t.Errorf("saved user data %q", got)
	}
	if p.failed < 2 {
		t.Errorf("%d failures counted (bad sudo rule, apt-get install)", p.failed)
	}
}

func TestSudoRules(t *testing.T) {
	root := accountsRoot(t)
	con := &lockedBuffer{}
	in, _ := testInit(t, root, newFakeIMDS(t, nil), con)
	p := newTestProvisioner(t, in, con)
	p.users(userList{{Name: "bob", Sudo: sudoRules{"ALL=(ALL) NOPASSWD:ALL"}}, {Name: "carol", Sudo: sudoRules{"ALL=(ALL) ALL"}}})
	got := readFile(t, filepath.Join(root, sudoersFile))
	if !strings.Contains(got, "\nbob ALL=(ALL) NOPASSWD:ALL\ncarol ALL=(ALL) ALL\n") {
		t.Errorf("sudoers:\n%s", got)
	}
	if _, _, mode := ownerOf(t, filepath.Join(root, sudoersFile)); mode.Perm() != 0o440 {
		t.Errorf("sudoers mode %v", mode)
	}
	if left, _ := filepath.Glob(filepath.Join(root, "etc/sudoers.d/.*")); len(left) > 0 {
		t.Errorf("check files left: %v", left)
	}
}

func TestProvisionScriptsAndMIME(t *testing.T) {
	root := accountsRoot(t)
	ud := string(mimeUserData(t))
	// The MIME parts write where the test can see them.
	ud = strings.ReplaceAll(ud, "echo first\n", "echo first >> "+root+"/order; echo to-stdout; echo to-stderr >&2\n")
	ud = strings.ReplaceAll(ud, "echo second\n", "echo second >> "+root+"/order; exit 3\n")
	f := newFakeIMDS(t, map[string]string{"user-data": ud})
	con := &lockedBuffer{}
	in, _ := testInit(t, root, f, con)
	p := newTestProvisioner(t, in, con)
	if !in.provisionInstance(context.Background(), p, filepath.Join(root, userDataMarker), filepath.Join(root, instanceDir, "user-data.txt")) {
		t.Fatal("nothing ran")
	}
	p.out.close()
	out := con.String()
	if got := readFile(t, filepath.Join(root, "order")); got != "first\nsecond\n" {
		t.Errorf("scripts ran: %q", got)
	}
	for _, want := range []string{"to-stdout", "to-stderr", "from-gzip-part", "hook",
		"nubo-init: scripts/b-second.sh failed after", "exit status 3", "ignored part-007: type text/x-include-url",
		"nubo-init: no key pair: no SSH key to install"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// runcmd comes from the later cloud-config part and runs after the
	// part-NNN scripts (its name sorts after theirs).
	if i, j := strings.Index(out, "from-gzip-part"), strings.Index(out, "from-b64-config"); i < 0 || j < i {
		t.Errorf("runcmd did not run after the scripts:\n%s", out)
	}
	if fi, err := os.Stat(filepath.Join(root, instanceDir, "scripts/a-first.sh")); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("script file: %v %v", fi, err)
	}
}

func TestProvisionWithoutUserData(t *testing.T) {
	root := accountsRoot(t)
	f := newFakeIMDS(t, map[string]string{"meta-data/public-keys/0/openssh-key": testKey})
	con := &lockedBuffer{}
	in, _ := testInit(t, root, f, con)
	p := newTestProvisioner(t, in, con)
	marker := filepath.Join(root, userDataMarker)
	if in.provisionInstance(context.Background(), p, marker, filepath.Join(root, instanceDir, "user-data.txt")) {
		t.Error("ran something without user data")
	}
	if got := readFile(t, marker); got != "i-0123456789abcdef0\n" {
		t.Errorf("marker %q: no user data counts as done", got)
	}
	if got := readFile(t, filepath.Join(root, "home/admin/.ssh/authorized_keys")); got != testKey+"\n" {
		t.Errorf("the key pair's key (installed late) %q", got)
	}
	uid, _, mode := ownerOf(t, filepath.Join(root, "home/admin/.ssh"))
	if uid != adminUID() || mode.Perm() != 0o700 {
		t.Errorf("~admin/.ssh: uid %d, %v", uid, mode)
	}
	uid, _, mode = ownerOf(t, filepath.Join(root, "home/admin/.ssh/authorized_keys"))
	if uid != adminUID() || mode.Perm() != 0o600 {
		t.Errorf("~admin/.ssh/authorized_keys: uid %d, %v", uid, mode)
	}
}

// TestProvisionLearnsInstanceID: when the metadata service was not there as
// the boot began, the instance ID it gives later is what the markers hold,
// the first boot's included (the next boot, knowing the ID, must not take
// itself for a first boot); user data already run for that ID is not run
// again.
func TestProvisionLearnsInstanceID(t *testing.T) {
	root := accountsRoot(t)
	f := newFakeIMDS(t, map[string]string{"meta-data/instance-id": "i-0late", "user-data": "#!/bin/sh\necho ran >> " + root + "/ran\n"})
	con := &lockedBuffer{}
	in, _ := testInit(t, root, f, con)
	in.instanceID = ""
	first, marker := filepath.Join(root, firstBootMarker), filepath.Join(root, userDataMarker)
	if err := markFirstBootDone(first, ""); err != nil {
		t.Fatal(err)
	}
	saved := filepath.Join(root, instanceDir, "user-data.txt")
	if !in.provisionInstance(context.Background(), newTestProvisioner(t, in, con), marker, saved) {
		t.Fatal("nothing ran")
	}
	for _, m := range []string{first, marker} {
		if got := readFile(t, m); got != "i-0late\n" {
			t.Errorf("%s: %q", m, got)
		}
	}
	// Asked again without the ID (the service late again): nothing runs.
	if in.provisionInstance(context.Background(), newTestProvisioner(t, in, con), marker, saved) {
		t.Error("user data ran twice")
	}
	if got := readFile(t, filepath.Join(root, "ran")); got != "ran\n" {
		t.Errorf("runs: %q", got)
	}
}
