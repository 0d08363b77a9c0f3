package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

type entry struct {
	name     string
	typ      byte
	mode     int64
	uid, gid int
	body     string
	link     string
	xattrs   map[string]string
}

func makeTar(t *testing.T, entries []entry, gz bool) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	var w = &buf
	var zw *gzip.Writer
	tw := tar.NewWriter(w)
	if gz {
		zw = gzip.NewWriter(w)
		tw = tar.NewWriter(zw)
	}
	mtime := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Uid: e.uid, Gid: e.gid,
			Linkname: e.link, Size: int64(len(e.body)), ModTime: mtime, Format: tar.FormatPAX}
		if e.typ == tar.TypeChar {
			h.Devmajor, h.Devminor = 1, 3
		}
		if len(e.xattrs) > 0 {
			h.PAXRecords = map[string]string{}
			for k, v := range e.xattrs {
				h.PAXRecords["SCHILY.xattr."+k] = v
			}
		}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if zw != nil {
		zw.Close()
	}
	return &buf
}

// rootfsTar is a small root filesystem with the cases Import must get right.
func rootfsTar(t *testing.T, gz bool) *bytes.Buffer {
	return makeTar(t, []entry{
		{name: "./", typ: tar.TypeDir, mode: 0o755},
		{name: "./etc/", typ: tar.TypeDir, mode: 0o755},
		{name: "./etc/shadow", typ: tar.TypeReg, mode: 0o640, gid: 42, body: "root:*:1::::::\n"},
		{name: "./sbin/", typ: tar.TypeDir, mode: 0o755},
		{name: "./sbin/init", typ: tar.TypeReg, mode: 0o755, body: "#!/bin/sh\n"},
		{name: "./usr/bin/passwd", typ: tar.TypeReg, mode: 0o4755, body: "suid"}, // parent dirs implied
		{name: "./usr/bin/passwd2", typ: tar.TypeLink, link: "usr/bin/passwd"},
		{name: "./usr/bin/ping", typ: tar.TypeReg, mode: 0o755, body: "ping",
			xattrs: map[string]string{capabilityXattr: string(capNetRaw())}},
		{name: "./home/user/", typ: tar.TypeDir, mode: 0o750, uid: 1000, gid: 1000},
		{name: "./home/user/notes", typ: tar.TypeReg, mode: 0o600, uid: 1000, gid: 1000, body: "hi"},
		{name: "./etc/localtime", typ: tar.TypeSymlink, link: "/usr/share/zoneinfo/UTC"},
		{name: "./host-etc", typ: tar.TypeSymlink, link: "/etc"},
		// Writes through a symlink stay inside the root.
		{name: "./host-etc/nubo-escape", typ: tar.TypeReg, mode: 0o644, body: "inside"},
		// So do paths that climb out.
		{name: "../../nubo-escape2", typ: tar.TypeReg, mode: 0o644, body: "inside too"},
		{name: "./dev/null", typ: tar.TypeChar, mode: 0o666},
		{name: "./run/initctl", typ: tar.TypeFifo, mode: 0o600},
	}, gz)
}

func TestImport(t *testing.T) {
	requireRoot(t)
	for _, gz := range []bool{false, true} {
		t.Run(map[bool]string{false: "tar", true: "tar.gz"}[gz], func(t *testing.T) {
			b := &Builder{Dir: t.TempDir(), UIDBase: 200000}
			m, err := b.Import(context.Background(), "my-rootfs", rootfsTar(t, gz))
			if err != nil {
				t.Fatal(err)
			}
			if m.Name != "my-rootfs" || strings.Join(m.Init, " ") != "/sbin/init" || m.UIDBase != 200000 ||
				m.Source != "import" || m.RootDeviceName != "/dev/xvda" || m.Architecture == "" || m.SizeBytes == 0 {
				t.Errorf("manifest %+v", m)
			}
			r := m.RootFS
			if r != b.RootFS("my-rootfs") {
				t.Errorf("RootFS %q", r)
			}
			own := func(rel string, uid, gid uint32, mode uint32) {
				t.Helper()
				st := lstat(t, filepath.Join(r, rel))
				if st.Uid != uid || st.Gid != gid || (mode != 0 && st.Mode&0o7777 != mode) {
					t.Errorf("%s: %d:%d %o, want %d:%d %o", rel, st.Uid, st.Gid, st.Mode&0o7777, uid, gid, mode)
				}
			}
			own(".", 200000, 200000, 0o755)
			own("etc/shadow", 200000, 200042, 0o640)
			own("usr/bin/passwd", 200000, 200000, 0o4755)
			own("usr/bin/passwd2", 200000, 200000, 0o4755)
			own("home/user", 201000, 201000, 0o750)
			own("home/user/notes", 201000, 201000, 0o600)
			own("etc/localtime", 200000, 200000, 0)
			own("run/initctl", 200000, 200000, 0o600)
			if a, b := lstat(t, filepath.Join(r, "usr/bin/passwd")), lstat(t, filepath.Join(r, "usr/bin/passwd2")); a.Ino != b.Ino {
				t.Error("hard link became a copy")
			}
			if l, _ := os.Readlink(filepath.Join(r, "etc/localtime")); l != "/usr/share/zoneinfo/UTC" {
				t.Errorf("symlink target %q", l)
			}
			if caps, _ := getXattr(filepath.Join(r, "usr/bin/ping"), capabilityXattr); !bytes.Equal(caps, capNetRaw()) {
				t.Errorf("file capabilities %x", caps)
			}
			for _, p := range []string{"/etc/nubo-escape", "/nubo-escape2", filepath.Join(b.Dir, "nubo-escape2")} {
				if _, err := os.Lstat(p); err == nil {
					os.Remove(p)
					t.Errorf("tar entry escaped to %s", p)
				}
			}
			for _, rel := range []string{"etc/nubo-escape", "nubo-escape2"} {
				if _, err := os.Stat(filepath.Join(r, rel)); err != nil {
					t.Errorf("confined entry %s missing: %v", rel, err)
				}
			}
			if _, err := os.Lstat(filepath.Join(r, "dev/null")); err == nil {
				t.Error("device node imported")
			}
			st := lstat(t, filepath.Join(r, "etc/shadow"))
			if got := time.Unix(st.Mtim.Sec, 0).UTC(); got.Year() != 2024 {
				t.Errorf("mtime %v", got)
			}

			if _, err := b.Import(context.Background(), "my-rootfs", rootfsTar(t, gz)); !errors.Is(err, ErrExists) {
				t.Errorf("second import: %v", err)
			}
		})
	}
}

func TestImportInit(t *testing.T) {
	requireRoot(t)
	b := &Builder{Dir: t.TempDir()}
	tarball := func() *bytes.Buffer {
		return makeTar(t, []entry{
			{name: "bin/", typ: tar.TypeDir, mode: 0o755},
			{name: "bin/sh", typ: tar.TypeReg, mode: 0o755, body: "sh"},
			{name: "usr/", typ: tar.TypeDir, mode: 0o755},
			{name: "sbin", typ: tar.TypeSymlink, link: "bin"},
		}, false)
	}
	_, err := b.Import(context.Background(), "no-init", tarball())
	if err == nil || !strings.Contains(err.Error(), "/sbin/init") {
		t.Fatalf("missing init: %v", err)
	}
	if _, err := os.Stat(filepath.Join(b.Dir, "no-init")); !os.IsNotExist(err) {
		t.Errorf("failed import left %v", err)
	}
	m, err := b.Import(context.Background(), "with-init", tarball(), WithInit("/sbin/sh", "-c", "exec sleep infinity"), WithDescription("custom"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(m.Init, " ") != "/sbin/sh -c exec sleep infinity" || m.Description != "custom" {
		t.Errorf("manifest %+v", m)
	}
	if m.UIDBase != DefaultUIDBase {
		t.Errorf("uid base %d", m.UIDBase)
	}
	if _, err := b.Import(context.Background(), "../evil", tarball()); !errors.Is(err, ErrInvalidName) {
		t.Errorf("bad name: %v", err)
	}
	if _, err := b.Import(context.Background(), "rel-init", tarball(), WithInit("sh")); err == nil {
		t.Error("relative init accepted")
	}
}

// TestImportConcurrent: two imports of one name; one wins, the other sees it.
func TestImportConcurrent(t *testing.T) {
	requireRoot(t)
	b := &Builder{Dir: t.TempDir()}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		tarball := rootfsTar(t, false)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = b.Import(context.Background(), "same", tarball)
		}()
	}
	wg.Wait()
	won, exists := 0, 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case errors.Is(err, ErrExists):
			exists++
		default:
			t.Error(err)
		}
	}
	if won != 1 || exists != 1 {
		t.Errorf("won %d, exists %d", won, exists)
	}
}

// TestImportTruncated: a broken tarball leaves nothing that looks like an image.
func TestImportTruncated(t *testing.T) {
	requireRoot(t)
	b := &Builder{Dir: t.TempDir()}
	full := rootfsTar(t, false).Bytes()
	_, err := b.Import(context.Background(), "broken", bytes.NewReader(full[:1500]))
	if err == nil {
		t.Fatal("truncated tarball imported")
	}
	if _, err := b.Get("broken"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after failed import: %v", err)
	}
	if _, err := os.Stat(filepath.Join(b.Dir, "broken")); !os.IsNotExist(err) {
		t.Errorf("failed import left its directory: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := b.Import(ctx, "cancelled", rootfsTar(t, false)); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled import: %v", err)
	}
}
