package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFirstBootMarker(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "var/lib/nubo-init/first-boot-done")
	need := func(id string) bool {
		t.Helper()
		b, err := firstBootNeeded(marker, id)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if !need("") || !need("i-0123") {
		t.Fatal("no marker must mean first boot")
	}
	if err := markFirstBootDone(marker, "i-0123"); err != nil {
		t.Fatal(err)
	}
	if need("i-0123") {
		t.Error("same instance: not a first boot")
	}
	if need("") {
		t.Error("unknown instance ID with a marker: not a first boot")
	}
	if !need("i-0456") {
		t.Error("marker of another instance (image made from an instance) must mean first boot")
	}
	// Rewriting is atomic and leaves no temporary files behind.
	if err := markFirstBootDone(marker, "i-0456"); err != nil {
		t.Fatal(err)
	}
	if need("i-0456") {
		t.Error("rewritten marker not honoured")
	}
	ents, _ := os.ReadDir(filepath.Dir(marker))
	if len(ents) != 1 {
		t.Errorf("marker dir holds %d entries, want 1", len(ents))
	}
	// An unreadable marker (a directory here) is an error, not a first boot.
	bad := filepath.Join(t.TempDir(), "dir")
	os.Mkdir(bad, 0o755)
	if b, err := firstBootNeeded(bad, ""); err == nil || b {
		t.Errorf("unreadable marker: %v, %v", b, err)
	}
}

func TestEnsureMachineID(t *testing.T) {
	p := filepath.Join(t.TempDir(), "etc/machine-id")
	os.MkdirAll(filepath.Dir(p), 0o755)
	os.WriteFile(p, nil, 0o444) // images ship it empty
	made, err := ensureMachineID(p)
	if err != nil || !made {
		t.Fatalf("empty: made=%v err=%v", made, err)
	}
	b, _ := os.ReadFile(p)
	id := strings.TrimSpace(string(b))
	if len(id) != 32 || strings.Trim(id, "0123456789abcdef") != "" {
		t.Fatalf("machine-id %q", id)
	}
	if made, err := ensureMachineID(p); err != nil || made {
		t.Fatalf("second call: made=%v err=%v", made, err)
	}
	b2, _ := os.ReadFile(p)
	if string(b2) != string(b) {
		t.Error("existing machine-id changed")
	}
}

func TestHostKeysMissing(t *testing.T) {
	d := t.TempDir()
	if !hostKeysMissing(d) {
		t.Fatal("empty dir has all keys?")
	}
	for _, k := range []string{"rsa", "ecdsa", "ed25519"} {
		os.WriteFile(filepath.Join(d, "ssh_host_"+k+"_key"), []byte("k"), 0o600)
	}
	if hostKeysMissing(d) {
		t.Fatal("all keys present")
	}
}
