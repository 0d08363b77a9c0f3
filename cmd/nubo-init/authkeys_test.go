package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestMergeAuthorizedKeys(t *testing.T) {
	old := "# mine\nssh-ed25519 AAAAkeyA a@x\nfrom=\"10.0.0.1\" ssh-rsa AAAAkeyB b@y\n"
	got := string(mergeAuthorizedKeys([]byte(old), []string{"no-pty ssh-rsa AAAAkeyB b@new", "ssh-ed25519 AAAAkeyC c"}))
	want := "# mine\nssh-ed25519 AAAAkeyA a@x\nno-pty ssh-rsa AAAAkeyB b@new\nssh-ed25519 AAAAkeyC c\n"
	if got != want {
		t.Errorf("merged:\n%s\nwant:\n%s", got, want)
	}
	if got := string(mergeAuthorizedKeys(nil, []string{"ssh-ed25519 AAAAkeyA"})); got != "ssh-ed25519 AAAAkeyA\n" {
		t.Errorf("into nothing: %q", got)
	}
}

func TestAddAuthorizedKeys(t *testing.T) {
	root := accountsRoot(t)
	if err := addAuthorizedKeys(root, "admin", []string{"", "# c", testKey}, ""); err != nil {
		t.Fatal(err)
	}
	// Again, with another key: one copy of each.
	if err := addAuthorizedKeys(root, "admin", []string{testKey, "ssh-ed25519 AAAAother o"}, ""); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(root, "home/admin/.ssh/authorized_keys")); got != testKey+"\nssh-ed25519 AAAAother o\n" {
		t.Errorf("authorized_keys %q", got)
	}
	if err := addAuthorizedKeys(root, "nosuchuser", []string{testKey}, ""); err == nil {
		t.Error("keys for a missing user")
	}
	// A symlinked authorized_keys is not followed (as root, it could write
	// anywhere).
	os.MkdirAll(filepath.Join(root, "root/.ssh"), 0o700)
	os.Symlink("/etc/passwd", filepath.Join(root, "root/.ssh/authorized_keys"))
	if err := addAuthorizedKeys(root, "root", []string{testKey}, ""); err == nil {
		t.Error("wrote through a symlink")
	}
}

func TestHostKeyBlock(t *testing.T) {
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		t.Skip("needs ssh-keygen")
	}
	dir := t.TempDir()
	var want []string
	for typ, bits := range map[string]string{"ed25519": "", "ecdsa": "384", "rsa": "2048"} {
		args := []string{"-q", "-N", "", "-t", typ, "-C", "root@ip-10-0-0-5", "-f", filepath.Join(dir, "ssh_host_"+typ+"_key")}
		if bits != "" {
			args = append(args, "-b", bits)
		}
		if out, err := exec.Command("ssh-keygen", args...).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen %s: %v %s", typ, err, out)
		}
	}
	for _, typ := range []string{"ecdsa", "ed25519", "rsa"} { // the glob's order
		out, err := exec.Command("ssh-keygen", "-l", "-f", filepath.Join(dir, "ssh_host_"+typ+"_key.pub")).Output()
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, "nubo-init: "+strings.TrimSpace(string(out)))
	}
	block := hostKeyBlock(dir)
	lines := strings.Split(strings.TrimSpace(block), "\n")
	if len(lines) != 12 || lines[1] != "nubo-init: -----BEGIN SSH HOST KEY FINGERPRINTS-----" ||
		lines[5] != "nubo-init: -----END SSH HOST KEY FINGERPRINTS-----" ||
		lines[7] != "-----BEGIN SSH HOST KEY KEYS-----" || lines[11] != "-----END SSH HOST KEY KEYS-----" {
		t.Fatalf("block:\n%s", block)
	}
	if got := strings.Join(lines[2:5], "\n"); got != strings.Join(want, "\n") {
		t.Errorf("fingerprints:\n%s\nwant (ssh-keygen -l):\n%s", got, strings.Join(want, "\n"))
	}
	pub, _ := os.ReadFile(filepath.Join(dir, "ssh_host_rsa_key.pub"))
	if lines[10] != strings.TrimSpace(string(pub)) {
		t.Errorf("RSA key line %q", lines[10])
	}
	if hostKeyBlock(t.TempDir()) != "" {
		t.Error("a block without keys")
	}
}
