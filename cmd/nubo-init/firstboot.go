package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// The marker's content is the instance ID it was written for ("" when the
// host did not say), followed by a newline.

// firstBootNeeded reports whether the first-boot work must run: no marker,
// or (when instanceID is known) a marker written for another instance.
func firstBootNeeded(marker, instanceID string) (bool, error) {
	b, err := os.ReadFile(marker)
	if errors.Is(err, fs.ErrNotExist) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	return instanceID != "" && strings.TrimSpace(string(b)) != instanceID, nil
}

// markFirstBootDone writes the marker atomically and durably.
func markFirstBootDone(marker, instanceID string) error {
	return writeFileAtomic(marker, []byte(instanceID+"\n"), 0o644)
}

// ensureMachineID writes a random /etc/machine-id when the file is missing
// or empty (images ship it empty); it reports whether it wrote one.
func ensureMachineID(path string) (bool, error) {
	b, err := os.ReadFile(path)
	if err == nil && strings.TrimSpace(string(b)) != "" {
		return false, nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return false, err
	}
	return true, writeFileAtomic(path, []byte(hex.EncodeToString(id)+"\n"), 0o444)
}

// hostKeysMissing reports whether any of the standard SSH host keys is
// missing from sshDir.
func hostKeysMissing(sshDir string) bool {
	for _, t := range []string{"rsa", "ecdsa", "ed25519"} {
		if _, err := os.Stat(filepath.Join(sshDir, "ssh_host_"+t+"_key")); err != nil {
			return true
		}
	}
	return false
}

// writeFileAtomic writes data to a temporary file beside path, syncs it and
// renames it over path, then syncs the directory.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	return writeFileAtomicOwned(path, data, perm, -1, -1)
}

// writeFileAtomicOwned is writeFileAtomic with the file owned by uid:gid
// (-1 keeps nubo-init's), set before the file takes path's place.
func writeFileAtomicOwned(path string, data []byte, perm os.FileMode, uid, gid int) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after the rename
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if uid >= 0 || gid >= 0 {
		if err := f.Chown(uid, gid); err != nil {
			f.Close()
			return err
		}
	}
	if err := f.Chmod(perm); err != nil { // after chown, which clears setuid bits
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
