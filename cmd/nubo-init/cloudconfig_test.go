package main

import (
	"encoding/base64"
	"os"
	"reflect"
	"strings"
	"testing"
)

func decodeOne(t *testing.T, doc string) (cloudConfig, []string, []string) {
	t.Helper()
	m, err := parseCloudConfig([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return decodeCloudConfig(m)
}

func TestCloudConfigDecode(t *testing.T) {
	cfg, ignored, problems := decodeOne(t, `#cloud-config
users:
  - default
  - name: bob
    gecos: Bob B
    groups: adm, sudo
    sudo: ALL=(ALL) NOPASSWD:ALL
    shell: /bin/bash
    ssh_authorized_keys:
      - ssh-ed25519 AAAAC3Nza bob@laptop
  - name: carol
    groups: [docker]
    sudo: false
    lock_passwd: false
    passwd: $6$salt$hash
  - name: dave
    sudo: ["ALL=(ALL) ALL", "ALL=(root) NOPASSWD:/usr/bin/id"]
    uid: 2000
    system: yes
ssh_authorized_keys:
  - ssh-rsa AAAAB3 me@desk
write_files:
  - path: /etc/a
    content: hello
    permissions: 0600
  - path: /etc/b
    permissions: '0755'
    owner: bob:adm
    encoding: b64
    content: aGk=
    append: true
    defer: true
bootcmd:
  - echo boot
  - [sh, -c, "echo $INSTANCE_ID > /run/id"]
runcmd:
  - [ls, -l, /]
  - echo "a b" > /tmp/x
  - [echo, "it's"]
packages:
  - jq
  - [curl, 7.88.1-10+deb12u5]
package_update: true
apt_upgrade: no
hostname: ignored-host
timezone: Europe/Paris
`)
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	if got := strings.Join(ignored, ","); got != "hostname,timezone" {
		t.Errorf("ignored %q", got)
	}
	if len(cfg.Users) != 4 || !cfg.Users[0].isDefault || cfg.Users[0].Name != "admin" {
		t.Fatalf("users %+v", cfg.Users)
	}
	bob, carol, dave := cfg.Users[1], cfg.Users[2], cfg.Users[3]
	if want := []string{"bob", "--comment", "Bob B", "--groups", "adm,sudo", "--shell", "/bin/bash", "-m"}; !reflect.DeepEqual(bob.useraddArgs(), want) {
		t.Errorf("bob: useradd %q, want %q", bob.useraddArgs(), want)
	}
	if !reflect.DeepEqual([]string(bob.Sudo), []string{"ALL=(ALL) NOPASSWD:ALL"}) || len(bob.SSHAuthorizedKeys) != 1 {
		t.Errorf("bob %+v", bob)
	}
	if want := []string{"carol", "--groups", "docker", "--password", "$6$salt$hash", "-m"}; !reflect.DeepEqual(carol.useraddArgs(), want) || carol.Sudo != nil {
		t.Errorf("carol: useradd %q, sudo %q", carol.useraddArgs(), carol.Sudo)
	}
	if want := []string{"dave", "--uid", "2000", "--system", "-M"}; !reflect.DeepEqual(dave.useraddArgs(), want) || len(dave.Sudo) != 2 {
		t.Errorf("dave: useradd %q, sudo %q", dave.useraddArgs(), dave.Sudo)
	}
	if len(cfg.WriteFiles) != 2 {
		t.Fatalf("write_files %+v", cfg.WriteFiles)
	}
	for i, want := range []os.FileMode{0o600, 0o755} {
		if m, err := decodePerms(cfg.WriteFiles[i].Permissions); err != nil || m != want {
			t.Errorf("write_files[%d] permissions %v → %o, %v; want %o", i, cfg.WriteFiles[i].Permissions, m, err, want)
		}
	}
	if f := cfg.WriteFiles[1]; !f.Append || !f.Defer || f.Owner != "bob:adm" {
		t.Errorf("write_files[1] %+v", f)
	}
	if got := string(shellScript(cfg.BootCmd)); got != "#!/bin/sh\necho boot\nsh -c 'echo $INSTANCE_ID > /run/id'\n" {
		t.Errorf("bootcmd script %q", got)
	}
	if got := string(shellScript(cfg.RunCmd)); got != "#!/bin/sh\nls -l /\necho \"a b\" > /tmp/x\necho 'it'\"'\"'s'\n" {
		t.Errorf("runcmd script %q", got)
	}
	if got := []pkgSpec{"jq", "curl=7.88.1-10+deb12u5"}; !reflect.DeepEqual(cfg.Packages, got) {
		t.Errorf("packages %q", cfg.Packages)
	}
	if !cfg.PackageUpdate || cfg.AptUpgrade {
		t.Errorf("package_update %v apt_upgrade %v", cfg.PackageUpdate, cfg.AptUpgrade)
	}
}

func TestCloudConfigForms(t *testing.T) {
	cfg, _, problems := decodeOne(t, "#cloud-config\nusers: default, eve\nruncmd: []\ngroups:\n  - ops: [eve]\n  - dev\n")
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	if len(cfg.Users) != 2 || !cfg.Users[0].isDefault || cfg.Users[1].Name != "eve" {
		t.Errorf("users %+v", cfg.Users)
	}
	if len(cfg.Groups) != 2 || cfg.Groups[0].name != "ops" || cfg.Groups[0].members[0] != "eve" || cfg.Groups[1].name != "dev" {
		t.Errorf("groups %+v", cfg.Groups)
	}
	// A key of the wrong type is reported and left out; the rest stays.
	cfg, _, problems = decodeOne(t, "#cloud-config\nruncmd: {a: b}\npackages: [jq]\nusers:\n  - name: x\n    sudo: true\n")
	if len(problems) == 0 || len(cfg.Packages) != 1 {
		t.Errorf("problems %q, packages %q", problems, cfg.Packages)
	}
	if _, _, problems := decodeOne(t, "#cloud-config\n"); problems != nil {
		t.Errorf("empty cloud-config: %q", problems)
	}
}

func TestDecodeContent(t *testing.T) {
	gzb64 := func(s string) string { return b64(gz(t, s)) }
	for _, tc := range []struct{ content, enc, want string }{
		{"plain", "", "plain"},
		{"plain", "text/plain", "plain"},
		{"aGVs\nbG8=", "b64", "hello"},
		{"aGVsbG8=", "base64", "hello"},
		{gzb64("zipped"), "gz+b64", "zipped"},
		{gzb64("zipped"), "gzip+base64", "zipped"},
		{string(gz(t, "raw gzip")), "gzip", "raw gzip"},
	} {
		got, err := decodeContent(tc.content, tc.enc)
		if err != nil || string(got) != tc.want {
			t.Errorf("%q %s: %q %v, want %q", tc.content, tc.enc, got, err, tc.want)
		}
	}
	if _, err := decodeContent("x", "rot13"); err == nil {
		t.Error("unknown encoding accepted")
	}
	for _, bad := range []any{"9", "rw", -1, 0o10000, 1.5} {
		if _, err := decodePerms(bad); err == nil {
			t.Errorf("permissions %v accepted", bad)
		}
	}
	if m, _ := decodePerms("4755"); m != 0o755|os.ModeSetuid {
		t.Errorf("4755 → %v", m)
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{"": "''", "abc": "abc", "a b": "'a b'", "it's": `'it'"'"'s'`, "/usr/bin:x=1,@%+": "/usr/bin:x=1,@%+", "$HOME": "'$HOME'"} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %q, want %q", in, got, want)
		}
	}
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
