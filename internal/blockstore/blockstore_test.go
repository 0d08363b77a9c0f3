package blockstore

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

const mib = 1 << 20

var ctx = context.Background()

func TestLifecycle(t *testing.T) {
	s := openStore(t, testDir(t))
	key := newKey(t)
	const id = "vol-0123456789abcdef0"
	if err := s.Create(ctx, id, 64*mib, key); err != nil {
		t.Fatal(err)
	}
	dev, err := s.Attach(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := s.Attach(ctx, id); err != nil || again != dev {
		t.Fatalf("second Attach = %v, %v; want %v", again, err, dev)
	}
	if n := devSize(t, dev); n != 64*mib {
		t.Fatalf("device of %d bytes, want %d", n, 64*mib)
	}
	first, last := alignedBuf(t, mib, []byte("first MiB ")), alignedBuf(t, mib, []byte("last MiB "))
	writeDev(t, dev, 0, first)
	writeDev(t, dev, 63*mib, last)
	checkDev(t, dev, 0, first)
	if err := s.Detach(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := s.Detach(ctx, id); err != nil {
		t.Fatalf("second Detach: %v", err)
	}
	if dev, err = s.Attach(ctx, id); err != nil {
		t.Fatal(err)
	}
	checkDev(t, dev, 0, first)
	checkDev(t, dev, 63*mib, last)

	st, err := s.Observe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Volumes) != 1 {
		t.Fatalf("Observe: %+v", st.Volumes)
	}
	v := st.Volumes[0]
	if v.ID != id || v.Size != 64*mib || !v.Encrypted || v.Locked || v.Device == nil || *v.Device != dev || v.Allocated < 2*mib {
		t.Fatalf("Observe: %+v", v)
	}
	if st.Pool.Size < testPool*9/10 || st.Pool.Device != s.Pool() || st.Pool.HostFree <= 0 {
		t.Fatalf("Observe pool: %+v", st.Pool)
	}

	for _, bad := range []string{"", "vol-", "../vol-01234567", "vol-0123456G", "vol-0123456789ABCDEF0", "i-01234567", "vol-01234567/x"} {
		if err := s.Create(ctx, bad, mib, nil); !errors.Is(err, ErrInvalid) {
			t.Errorf("Create(%q) = %v, want ErrInvalid", bad, err)
		}
	}
	for _, c := range []struct {
		name      string
		err, want error
	}{
		{"exists", s.Create(ctx, id, mib, nil), ErrExists},
		{"short key", s.Create(ctx, "vol-00000001", mib, key[:32]), ErrInvalid},
		{"size", s.Create(ctx, "vol-00000001", 1000, nil), ErrInvalid},
		{"key reused", s.Create(ctx, "vol-00000001", mib, key), ErrKeyInUse},
		{"detach no volume", s.Detach(ctx, "vol-00000009"), nil},
		{"delete no volume", s.Delete(ctx, "vol-00000009"), nil},
	} {
		if !errors.Is(c.err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, c.err, c.want)
		}
	}
	if _, err := s.Attach(ctx, "vol-00000009"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Attach of no volume: %v", err)
	}
	if err := s.Create(ctx, "vol-00000001", mib, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Unlock(ctx, "vol-00000001", key); !errors.Is(err, ErrNotEncrypted) {
		t.Errorf("Unlock of a plain volume: %v", err)
	}
	if err := s.Teardown(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestResizeAttached(t *testing.T) {
	s := openStore(t, testDir(t))
	const id = "vol-00000001"
	if err := s.Create(ctx, id, 32*mib, newKey(t)); err != nil {
		t.Fatal(err)
	}
	dev, err := s.Attach(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	old := alignedBuf(t, mib, []byte("end of the old size "))
	writeDev(t, dev, 31*mib, old)
	if err := s.Resize(ctx, id, 96*mib); err != nil {
		t.Fatal(err)
	}
	if n := devSize(t, dev); n != 96*mib {
		t.Fatalf("attached device of %d bytes after Resize, want %d", n, 96*mib)
	}
	grown := alignedBuf(t, mib, []byte("end of the new size "))
	writeDev(t, dev, 95*mib, grown)
	checkDev(t, dev, 31*mib, old)
	checkDev(t, dev, 95*mib, grown)
	checkDev(t, dev, 64*mib, make([]byte, mib)) // grown space reads as zeros
	if err := s.Resize(ctx, id, 64*mib); !errors.Is(err, ErrShrink) {
		t.Fatalf("shrinking: %v, want ErrShrink", err)
	}
	if err := s.Resize(ctx, id, 96*mib); err != nil {
		t.Fatalf("same size: %v", err)
	}
	// Detached and attached again: the new size stays.
	if err := s.Detach(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := s.Resize(ctx, id, 128*mib); err != nil {
		t.Fatal(err)
	}
	if dev, err = s.Attach(ctx, id); err != nil {
		t.Fatal(err)
	}
	if n := devSize(t, dev); n != 128*mib {
		t.Fatalf("device of %d bytes, want %d", n, 128*mib)
	}
	checkDev(t, dev, 95*mib, grown)
}

func TestDeleteCryptoErase(t *testing.T) {
	s := openStore(t, testDir(t))
	const id = "vol-00000001"
	key := newKey(t)
	if err := s.Create(ctx, id, 64*mib, key); err != nil {
		t.Fatal(err)
	}
	dev, err := s.Attach(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	data := alignedBuf(t, 32*mib, []byte("secret volume data "))
	writeDev(t, dev, 0, data)
	if err := s.Delete(ctx, id); !errors.Is(err, ErrAttached) {
		t.Fatalf("Delete while attached: %v, want ErrAttached", err)
	}
	if err := s.Lock(ctx, id); !errors.Is(err, ErrAttached) {
		t.Fatalf("Lock while attached: %v, want ErrAttached", err)
	}
	if err := s.Detach(ctx, id); err != nil {
		t.Fatal(err)
	}
	before, _ := s.Observe(ctx)
	kid, _ := keyIdentifier(key)
	if ok, err := keyPresent(s.rootDir, kid); err != nil || !ok {
		t.Fatalf("key present before Delete: %v %v", ok, err)
	}
	if err := s.Delete(ctx, id); err != nil {
		t.Fatal(err)
	}
	if ok, err := keyPresent(s.rootDir, kid); err != nil || ok {
		t.Fatalf("key present after Delete: %v %v", ok, err)
	}
	if _, err := os.Stat(s.volDir(id)); !os.IsNotExist(err) {
		t.Fatalf("volume directory after Delete: %v", err)
	}
	after, _ := s.Observe(ctx)
	if len(after.Volumes) != 0 {
		t.Fatalf("volumes after Delete: %+v", after.Volumes)
	}
	// The pool discarded the volume's blocks: holes in the image again.
	if freed := before.Pool.Allocated - after.Pool.Allocated; freed < 16*mib {
		t.Errorf("Delete freed %d bytes of the image, want about %d", freed, 32*mib)
	}
	if _, err := s.Attach(ctx, id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Attach after Delete: %v", err)
	}
	if err := s.Unlock(ctx, id, key); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Unlock after Delete: %v", err)
	}
	if err := s.Delete(ctx, id); err != nil {
		t.Fatalf("second Delete: %v", err)
	}
	// A new volume of the same ID shows nothing of the old one.
	if err := s.Create(ctx, id, 64*mib, newKey(t)); err != nil {
		t.Fatal(err)
	}
	if dev, err = s.Attach(ctx, id); err != nil {
		t.Fatal(err)
	}
	checkDev(t, dev, 0, make([]byte, mib))
}

func TestRestart(t *testing.T) {
	dir := testDir(t)
	s := openStore(t, dir)
	if _, err := Open(ctx, Config{Dir: dir, PoolSize: testPool}); err == nil {
		t.Fatal("a second store opened the same directory")
	}
	keys := map[string][]byte{"vol-0000000a": newKey(t), "vol-0000000b": newKey(t), "vol-0000000c": nil}
	data := map[string][]byte{}
	var devA Device
	for id, key := range keys {
		if err := s.Create(ctx, id, 16*mib, key); err != nil {
			t.Fatal(err)
		}
		dev, err := s.Attach(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		data[id] = alignedBuf(t, mib, []byte("data of "+id+" "))
		writeDev(t, dev, 4*mib, data[id])
		if id == "vol-0000000a" {
			devA = dev // stays attached
		} else if err := s.Detach(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	pool := s.Pool()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// A nubo restart: the pool and vol-a's device are adopted; vol-b, detached
	// at Close, is locked.
	s = openStore(t, dir)
	if s.Pool() != pool {
		t.Fatalf("pool %v after reopening, was %v", s.Pool(), pool)
	}
	want := map[string]VolumeState{
		"vol-0000000a": {Encrypted: true, Device: &devA},
		"vol-0000000b": {Encrypted: true, Locked: true},
		"vol-0000000c": {},
	}
	checkObserved(t, s, want)
	checkDev(t, devA, 4*mib, data["vol-0000000a"])
	if dev, err := s.Attach(ctx, "vol-0000000a"); err != nil || dev != devA {
		t.Fatalf("Attach of the adopted volume: %v %v", dev, err)
	}
	if _, err := s.Attach(ctx, "vol-0000000b"); !errors.Is(err, ErrLocked) {
		t.Fatalf("Attach of a locked volume: %v", err)
	}
	if err := s.Resize(ctx, "vol-0000000b", 32*mib); !errors.Is(err, ErrLocked) {
		t.Fatalf("Resize of a locked volume: %v", err)
	}
	if err := s.Unlock(ctx, "vol-0000000b", keys["vol-0000000a"]); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("Unlock with another volume's key: %v", err)
	}
	if err := s.Unlock(ctx, "vol-0000000b", keys["vol-0000000b"]); err != nil {
		t.Fatal(err)
	}
	if err := s.Unlock(ctx, "vol-0000000b", keys["vol-0000000b"]); err != nil {
		t.Fatalf("second Unlock: %v", err)
	}
	dev, err := s.Attach(ctx, "vol-0000000b")
	if err != nil {
		t.Fatal(err)
	}
	checkDev(t, dev, 4*mib, data["vol-0000000b"])

	// A host restart: the pool mounted anew has no keys.
	if err := s.Teardown(ctx); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir)
	checkObserved(t, s, map[string]VolumeState{
		"vol-0000000a": {Encrypted: true, Locked: true},
		"vol-0000000b": {Encrypted: true, Locked: true},
		"vol-0000000c": {},
	})
	for id, key := range keys {
		if key != nil {
			if _, err := s.Attach(ctx, id); !errors.Is(err, ErrLocked) {
				t.Fatalf("Attach of %s before Unlock: %v", id, err)
			}
			if err := s.Unlock(ctx, id, key); err != nil {
				t.Fatal(err)
			}
		}
		dev, err := s.Attach(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		checkDev(t, dev, 4*mib, data[id])
	}
	if err := s.Teardown(ctx); err != nil {
		t.Fatal(err)
	}
}

// checkObserved compares what Observe says of each volume with want
// (Encrypted, Locked, Device: nil for detached, non-nil for attached).
func checkObserved(t *testing.T, s *Store, want map[string]VolumeState) {
	t.Helper()
	st, err := s.Observe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Volumes) != len(want) {
		t.Fatalf("Observe: %d volumes, want %d", len(st.Volumes), len(want))
	}
	for _, v := range st.Volumes {
		w := want[v.ID]
		if v.Encrypted != w.Encrypted || v.Locked != w.Locked || (v.Device == nil) != (w.Device == nil) ||
			(w.Device != nil && *v.Device != *w.Device) {
			t.Errorf("Observe %s: %+v, want %+v", v.ID, v, w)
		}
	}
}

func TestEncryptionAtRest(t *testing.T) {
	dir := testDir(t)
	s := openStore(t, dir)
	markers := map[string][]byte{
		"vol-0000000e": []byte("nubo-marker-ENCRYPTED-7f3a91c2 "),
		"vol-0000000f": []byte("nubo-marker-PLAINTEXT-7f3a91c2 "),
	}
	for id, marker := range markers {
		var key []byte
		if id == "vol-0000000e" {
			key = newKey(t)
		}
		if err := s.Create(ctx, id, 32*mib, key); err != nil {
			t.Fatal(err)
		}
		dev, err := s.Attach(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		writeDev(t, dev, 2*mib, alignedBuf(t, 8*mib, marker))
	}
	check := func(when string) {
		t.Helper()
		if found := hostFilesContaining(t, dir, markers["vol-0000000f"]); len(found) == 0 {
			t.Fatalf("%s: the unencrypted volume's marker is in no host file under %s: the search does not work", when, dir)
		}
		if found := hostFilesContaining(t, dir, markers["vol-0000000e"]); len(found) > 0 {
			t.Fatalf("%s: the encrypted volume's marker is in plaintext in %v", when, found)
		}
	}
	check("attached")
	// Everything flushed and unmounted: still nowhere in plaintext.
	if err := s.Teardown(ctx); err != nil {
		t.Fatal(err)
	}
	check("torn down")
}

func TestConcurrent(t *testing.T) {
	s := openStore(t, testDir(t))
	ids := []string{"vol-00000001", "vol-00000002"}
	for _, id := range ids {
		if err := s.Create(ctx, id, 64*mib, newKey(t)); err != nil {
			t.Fatal(err)
		}
	}
	// Racing Attach calls for one volume all get the same device.
	devs := make([]Device, 8)
	var wg sync.WaitGroup
	for i := range devs {
		wg.Go(func() {
			d, err := s.Attach(ctx, ids[i%2])
			if err != nil {
				t.Error(err)
			}
			devs[i] = d
		})
	}
	wg.Wait()
	for i, d := range devs {
		if d != devs[i%2] {
			t.Fatalf("Attach %d: %v, want %v", i, d, devs[i%2])
		}
	}
	if devs[0] == devs[1] {
		t.Fatalf("two volumes on one device %v", devs[0])
	}
	// Both written at once, each with its own data.
	bufs := [][]byte{alignedBuf(t, 16*mib, []byte("one ")), alignedBuf(t, 16*mib, []byte("two "))}
	for i := range 2 {
		wg.Go(func() {
			f, err := os.OpenFile(devs[i].Path, os.O_RDWR|unix.O_DIRECT, 0)
			if err != nil {
				t.Error(err)
				return
			}
			defer f.Close()
			for off := int64(0); off < 64*mib; off += 16 * mib {
				if _, err := f.WriteAt(bufs[i], off); err != nil {
					t.Error(err)
				}
			}
			if err := f.Sync(); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for i := range 2 {
		if err := s.Detach(ctx, ids[i]); err != nil {
			t.Fatal(err)
		}
		d, err := s.Attach(ctx, ids[i])
		if err != nil {
			t.Fatal(err)
		}
		checkDev(t, d, 48*mib, bufs[i])
	}
	if bytes.Equal(bufs[0], bufs[1]) {
		t.Fatal("same data")
	}
}

// A locked volume (no key in the kernel, its file's name unreadable) is
// still observed and can be deleted.
func TestDeleteLocked(t *testing.T) {
	s := openStore(t, testDir(t))
	const id = "vol-00000001"
	key := newKey(t)
	if err := s.Create(ctx, id, 16*mib, key); err != nil {
		t.Fatal(err)
	}
	if err := s.Lock(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := s.Lock(ctx, id); err != nil {
		t.Fatalf("second Lock: %v", err)
	}
	st, err := s.Observe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v := st.Volumes[0]; v.Size != 16*mib || !v.Locked || v.Device != nil {
		t.Fatalf("Observe of a locked volume: %+v", v)
	}
	if err := s.Delete(ctx, id); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.Observe(ctx); len(st.Volumes) != 0 {
		t.Fatalf("after Delete: %+v", st.Volumes)
	}
	// The ID and the key are free again.
	if err := s.Create(ctx, id, 16*mib, key); err != nil {
		t.Fatal(err)
	}
}

// What a crash in the middle of Create or Delete leaves is erased, keys
// included, when the store is opened again.
func TestUnfinished(t *testing.T) {
	dir := testDir(t)
	s := openStore(t, dir)
	keys := map[string][]byte{"vol-00000001": newKey(t), "vol-00000002": newKey(t)}
	for id, key := range keys {
		if err := s.Create(ctx, id, 16*mib, key); err != nil {
			t.Fatal(err)
		}
	}
	// Cut short: a Delete after its rename, a Create before its rename.
	for id, prefix := range map[string]string{"vol-00000001": ".del-", "vol-00000002": ".new-"} {
		if err := os.Rename(s.volDir(id), filepath.Join(s.root, prefix+id)); err != nil {
			t.Fatal(err)
		}
	}
	rootDir := s.rootDir
	s.rootDir = nil // closed as a crash would: keys left in the kernel
	s.lock.Close()
	defer rootDir.Close()
	s = openStore(t, dir)
	if entries, _ := os.ReadDir(s.root); len(entries) != 1 || entries[0].Name() != "lost+found" {
		t.Fatalf("pool after reopening: %v", entries)
	}
	for id, key := range keys {
		kid, _ := keyIdentifier(key)
		if ok, err := keyPresent(s.rootDir, kid); err != nil || ok {
			t.Errorf("%s's key present after reopening: %v %v", id, ok, err)
		}
	}
}
