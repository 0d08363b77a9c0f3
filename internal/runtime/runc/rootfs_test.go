package runc_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// uidBase is where instance root maps to on the host in these tests.
const uidBase = 100000

// initScript is the test instances' PID 1: it says it is up (on the console
// and in /tmp/up), exits 0 on SIGTERM (unless /ignore-term exists), and on
// SIGUSR1 exits with the code in /exit-code (a poweroff with a status).
// `wait` lets traps run at once.
const initScript = `#!/bin/sh
trap 'exit 0' TERM
[ -e /ignore-term ] && trap '' TERM
trap 'exit $(cat /exit-code)' USR1
echo "init up as pid $$ on $(hostname)"
echo up > /tmp/up
while :; do sleep 1000 & wait $!; done
`

// newRootFS builds a tiny root filesystem from busybox-static, owned by
// uidBase, in a directory the instance's root can reach.
func newRootFS(t *testing.T) (string, uint32) {
	t.Helper()
	root := filepath.Join(reachableTempDir(t), "rootfs")
	for _, d := range []string{"bin", "sbin", "etc", "root", "tmp", "proc", "sys", "dev", "run", "usr/bin", "usr/sbin"} {
		mkdir(t, filepath.Join(root, d), 0o755)
	}
	if err := os.Chmod(filepath.Join(root, "tmp"), 0o1777); err != nil {
		t.Fatal(err)
	}
	bb, err := os.ReadFile(busybox)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(root, "bin/busybox"), string(bb), 0o755)
	out, err := exec.Command(busybox, "--list").Output()
	if err != nil {
		t.Fatalf("busybox --list: %v", err)
	}
	for _, applet := range strings.Fields(string(out)) {
		if applet == "init" || applet == "busybox" {
			continue
		}
		if err := os.Symlink("busybox", filepath.Join(root, "bin", applet)); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(root, "sbin/init"), initScript, 0o755)
	writeFile(t, filepath.Join(root, "etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n", 0o644)
	writeFile(t, filepath.Join(root, "etc/group"), "root:x:0:\ntty:x:5:\n", 0o644)
	err = filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uidBase, uidBase)
	})
	if err != nil {
		t.Fatal(err)
	}
	return root, uidBase
}

// reachableTempDir is a t.TempDir that instance root (an unprivileged host
// UID) may traverse: runc sets up the root filesystem from inside the user
// namespace, so every directory above it needs o+x.
func reachableTempDir(t *testing.T) string {
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func mkdir(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(path, mode); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, path, data string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
}
