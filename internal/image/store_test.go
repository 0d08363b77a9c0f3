package image

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeFakeImage lays out a complete image by hand, as a finished build would.
func writeFakeImage(t *testing.T, b *Builder, name string) Manifest {
	t.Helper()
	os.MkdirAll(b.RootFS(name), 0o755)
	m := Manifest{Version: manifestVersion, Name: name, Description: "fake", Architecture: "x86_64",
		Created: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), UIDBase: DefaultUIDBase,
		Init: []string{"/sbin/nubo-init"}, RootDeviceName: "/dev/xvda", Source: "build", Recipe: "fake"}
	data, _ := json.Marshal(m)
	if err := os.WriteFile(filepath.Join(b.Dir, name, "manifest.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	m.RootFS = b.RootFS(name)
	return m
}

func TestManifestIsTheCommitPoint(t *testing.T) {
	b := &Builder{Dir: t.TempDir()}
	// A build that died before writing its manifest.
	os.MkdirAll(filepath.Join(b.RootFS("half"), "etc"), 0o755)
	// A leftover temporary manifest from a crash inside writeFileAtomic.
	os.WriteFile(filepath.Join(b.Dir, "half", ".manifest.json.tmp123"), []byte(`{"name":`), 0o644)
	done := writeFakeImage(t, b, "done")

	if _, err := b.Get("half"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(half) = %v, want ErrNotFound", err)
	}
	list, err := b.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Name != "done" || list[0].RootFS != done.RootFS {
		t.Fatalf("List = %+v", list)
	}
	if _, err := b.Get("nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(nope) = %v", err)
	}
	if _, err := b.Get("a/b"); !errors.Is(err, ErrInvalidName) {
		t.Errorf("Get(a/b) = %v", err)
	}

	// The next attempt at "half" starts from scratch.
	rootfs, abort, err := b.begin("half")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(b.RootFS("half"), "etc")); !os.IsNotExist(err) {
		t.Error("begin kept the old rootfs")
	}
	if rootfs != b.RootFS("half") {
		t.Errorf("rootfs %q", rootfs)
	}
	abort()
	if _, err := os.Stat(filepath.Join(b.Dir, "half")); !os.IsNotExist(err) {
		t.Error("abort left the image dir")
	}

	if err := b.Remove("done"); err != nil {
		t.Fatal(err)
	}
	if err := b.Remove("done"); err != nil {
		t.Errorf("second Remove: %v", err)
	}
	if list, _ := b.List(); len(list) != 0 {
		t.Errorf("after Remove: %+v", list)
	}
}

func TestWriteFileAtomic(t *testing.T) {
	d := t.TempDir()
	p := filepath.Join(d, "manifest.json")
	for _, s := range []string{"one", "two"} {
		if err := writeFileAtomic(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(p); string(b) != s {
			t.Fatalf("content %q", b)
		}
	}
	if ents, _ := os.ReadDir(d); len(ents) != 1 {
		t.Errorf("%d entries, want 1 (temporary files left?)", len(ents))
	}
	if err := writeFileAtomic(filepath.Join(d, "missing/x"), nil, 0o644); err == nil {
		t.Error("write into a missing dir succeeded")
	}
}

func TestBuildReturnsCachedImage(t *testing.T) {
	b := &Builder{Dir: t.TempDir()} // no InitBinary, no mirror: building would fail
	want := writeFakeImage(t, b, "debian-12-minimal")
	t0 := time.Now()
	got, err := b.Build(context.Background(), "debian-12-minimal", nil)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(t0); d > time.Second {
		t.Errorf("cached Build took %s", d)
	}
	if !got.Created.Equal(want.Created) || got.Recipe != "fake" || got.RootFS != want.RootFS {
		t.Errorf("Build = %+v, want the cached %+v", got, want)
	}
	if _, err := b.Build(context.Background(), "windows-2022", nil); !errors.Is(err, ErrNoRecipe) {
		t.Errorf("unknown recipe: %v", err)
	}
	if rs := Recipes(); strings.Join(rs, ",") != "debian-12,debian-12-minimal" {
		t.Errorf("Recipes = %v", rs)
	}
}

func requireBuildTools(t *testing.T) {
	t.Helper()
	requireRoot(t)
	for _, tool := range []string{"mmdebstrap", "unshare"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s", tool)
		}
	}
}

// TestBuildFailureCleansUp: a mirror that refuses connections (on loopback)
// fails the build, and nothing of it is left.
func TestBuildFailureCleansUp(t *testing.T) {
	requireBuildTools(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // now refusing
	b := &Builder{Dir: t.TempDir(), InitBinary: "/bin/true", Mirror: "http://" + addr + "/debian",
		SecurityMirror: "http://" + addr + "/debian-security"}
	var progress strings.Builder
	_, err = b.Build(context.Background(), "debian-12-minimal", &progress)
	if err == nil {
		t.Fatal("build against a dead mirror succeeded")
	}
	if !strings.Contains(progress.String(), "mmdebstrap") {
		t.Errorf("no progress shown: %q", progress.String())
	}
	if _, err := os.Stat(filepath.Join(b.Dir, "debian-12-minimal")); !os.IsNotExist(err) {
		t.Errorf("failed build left its directory: %v", err)
	}
}

// TestBuildCancelCleansUp: cancelling a build stuck on a mirror that never
// answers stops mmdebstrap, and nothing of it is left (no mounts, no
// directory, no processes).
func TestBuildCancelCleansUp(t *testing.T) {
	requireBuildTools(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() { // accept and say nothing
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	b := &Builder{Dir: t.TempDir(), InitBinary: "/bin/true", Mirror: "http://" + l.Addr().String() + "/debian",
		SecurityMirror: "http://" + l.Addr().String() + "/debian-security"}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	t0 := time.Now()
	_, err = b.Build(ctx, "debian-12-minimal", nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want deadline exceeded", err)
	}
	if d := time.Since(t0); d > 25*time.Second {
		t.Errorf("cancel took %s", d)
	}
	dir := filepath.Join(b.Dir, "debian-12-minimal")
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("cancelled build left its directory: %v", err)
	}
	if m, _ := mountsUnder(b.Dir); len(m) > 0 {
		t.Errorf("mounts left: %v", m)
	}
	if err := checkNoHostDaemons(dir); err != nil {
		t.Error(err)
	}
}
