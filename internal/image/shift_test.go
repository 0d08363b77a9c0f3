package image

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: chown to the shifted range")
	}
}

// capNetRaw is a VFS_CAP_REVISION_2 security.capability value granting
// cap_net_raw+ep, as setcap writes it.
func capNetRaw() []byte {
	var b bytes.Buffer
	for _, v := range []uint32{0x02000000 | 1 /* revision 2, effective */, 1 << 13, 0, 0, 0} {
		binary.Write(&b, binary.LittleEndian, v)
	}
	return b.Bytes()
}

func lstat(t *testing.T, p string) *syscall.Stat_t {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return &st
}

func TestShiftOwnership(t *testing.T) {
	requireRoot(t)
	const base = 100000
	outside := filepath.Join(t.TempDir(), "outside")
	os.WriteFile(outside, []byte("host file"), 0o644)
	root := filepath.Join(t.TempDir(), "rootfs")

	mk := func(rel string, mode os.FileMode, uid, gid int, data string) string {
		p := filepath.Join(root, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Lchown(p, uid, gid); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Chmod(p, uint32(mode)); err != nil { // raw bits: setuid included
			t.Fatal(err)
		}
		return p
	}
	mk("etc/passwd", 0o644, 0, 0, "root:x:0:0::/root:/bin/sh\n")
	su := mk("usr/bin/su", 0o4755, 0, 0, "setuid")
	wall := mk("usr/bin/wall", 0o2755, 0, 5, "setgid")
	user := mk("home/user/file", 0o640, 1000, 1000, "12345")
	hard := filepath.Join(root, "usr/bin/su-hardlink")
	if err := os.Link(su, hard); err != nil {
		t.Fatal(err)
	}
	ping := mk("usr/bin/ping", 0o755, 0, 0, "caps")
	if err := unix.Setxattr(ping, capabilityXattr, capNetRaw(), 0); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(root, "escape")
	os.Symlink(outside, link) // absolute, leading out of the tree
	os.Symlink("/", filepath.Join(root, "rootlink"))
	sgidDir := filepath.Join(root, "var/mail")
	os.MkdirAll(sgidDir, 0o755)
	os.Chown(sgidDir, 0, 8)
	syscall.Chmod(sgidDir, 0o2775)

	size, err := ShiftOwnership(root, base)
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(len("root:x:0:0::/root:/bin/sh\n") + len("setuid") + len("setgid") + 5 + len("caps")); size != want {
		t.Errorf("size %d, want %d (hard link once)", size, want)
	}
	check := func(p string, uid, gid uint32, mode uint32) {
		t.Helper()
		st := lstat(t, p)
		if st.Uid != uid || st.Gid != gid {
			t.Errorf("%s owned by %d:%d, want %d:%d", p, st.Uid, st.Gid, uid, gid)
		}
		if mode != 0 && st.Mode&0o7777 != mode {
			t.Errorf("%s mode %o, want %o", p, st.Mode&0o7777, mode)
		}
	}
	check(root, base, base, 0)
	check(filepath.Join(root, "etc/passwd"), base, base, 0o644)
	check(su, base, base, 0o4755)
	check(hard, base, base, 0o4755) // not shifted twice
	check(wall, base, base+5, 0o2755)
	check(user, base+1000, base+1000, 0o640)
	check(sgidDir, base, base+8, 0o2775)
	check(link, base, base, 0)
	check(outside, 0, 0, 0o644) // the symlink was not followed
	if l, _ := os.Readlink(link); l != outside {
		t.Errorf("symlink now points to %q", l)
	}
	got, err := getXattr(ping, capabilityXattr)
	if err != nil || !bytes.Equal(got, capNetRaw()) {
		t.Errorf("file capabilities after shift: %x, %v; want %x", got, err, capNetRaw())
	}
	// The host's / was not touched through rootlink.
	if st := lstat(t, "/"); st.Uid != 0 {
		t.Fatalf("host / owned by %d", st.Uid)
	}
}

func TestShiftOwnershipOverflow(t *testing.T) {
	requireRoot(t)
	root := t.TempDir()
	p := filepath.Join(root, "f")
	os.WriteFile(p, nil, 0o644)
	os.Chown(p, 1<<31, 0)
	if _, err := ShiftOwnership(root, 1<<31); err == nil || !strings.Contains(err.Error(), "overflows") {
		t.Fatalf("err = %v", err)
	}
}

// TestMountsUnderRootfs: a mount left inside a rootfs (as a killed build
// could leave) stops the shift, and removeTree detaches it instead of
// deleting through it.
func TestMountsUnderRootfs(t *testing.T) {
	requireRoot(t)
	root := filepath.Join(t.TempDir(), "img")
	dev := filepath.Join(root, "rootfs/dev")
	os.MkdirAll(dev, 0o755)
	hostSide := t.TempDir()
	keep := filepath.Join(hostSide, "precious")
	os.WriteFile(keep, []byte("x"), 0o644)
	if err := syscall.Mount(hostSide, dev, "", syscall.MS_BIND, ""); err != nil {
		t.Skipf("cannot bind mount: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dev, syscall.MNT_DETACH) })

	if _, err := ShiftOwnership(filepath.Join(root, "rootfs"), 100000); err == nil || !strings.Contains(err.Error(), "mount point") {
		t.Errorf("shift across a mount: %v", err)
	}
	if m, err := mountsUnder(root); err != nil || len(m) != 1 || m[0] != dev {
		t.Fatalf("mountsUnder = %v, %v", m, err)
	}
	if err := removeTree(root); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(keep); err != nil {
		t.Fatalf("removeTree deleted through a mount: %v", err)
	}
	if _, err := os.Stat(root); !os.IsNotExist(err) {
		t.Fatalf("tree left: %v", err)
	}
	if st := lstat(t, keep); st.Uid != 0 {
		t.Fatal("host file shifted")
	}
}

func TestResolveInRoot(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "usr/sbin"), 0o755)
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.Symlink("usr/sbin", filepath.Join(root, "sbin"))
	os.Symlink("/etc", filepath.Join(root, "abs-etc"))
	os.Symlink("../../../../../etc", filepath.Join(root, "usr/up"))
	os.Symlink("loop2", filepath.Join(root, "loop1"))
	os.Symlink("loop1", filepath.Join(root, "loop2"))
	for in, want := range map[string]string{
		"/sbin/nubo-init":       "usr/sbin/nubo-init",
		"sbin":                  "usr/sbin",
		"/abs-etc/passwd":       "etc/passwd",
		"/usr/up/shadow":        "etc/shadow",
		"/../../etc/x":          "etc/x",
		"/new/dir/../file":      "new/file",
		"/usr/sbin/../../../..": "",
	} {
		got, err := resolveInRoot(root, in)
		if err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		if w := filepath.Join(root, want); got != w {
			t.Errorf("resolveInRoot(%q) = %q, want %q", in, got, w)
		}
	}
	if _, err := resolveInRoot(root, "/loop1/x"); err == nil {
		t.Error("symlink loop not detected")
	}
}
