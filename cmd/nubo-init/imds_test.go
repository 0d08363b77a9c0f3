package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestIMDSClient(t *testing.T) {
	f := newFakeIMDS(t, map[string]string{"meta-data/instance-id": "i-0abc\n", "user-data": "#!/bin/sh\n"})
	f.refuse = 3 // the service answers a few tries late
	m := newIMDS(f.URL, time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := m.connect(ctx); err != nil {
		t.Fatal(err)
	}
	if b, err := m.get(ctx, "meta-data/instance-id", 256); err != nil || string(b) != "i-0abc\n" {
		t.Fatalf("instance-id %q %v", b, err)
	}
	if _, err := m.get(ctx, "meta-data/public-keys/0/openssh-key", 256); !errors.Is(err, errNotFound) {
		t.Fatalf("missing key: %v, want errNotFound", err)
	}
	if _, err := m.get(ctx, "user-data", 4); err == nil {
		t.Fatal("an item over the limit was accepted")
	}
	if f.tokenSeen != 1 {
		t.Errorf("%d tokens issued, want 1", f.tokenSeen)
	}
	if err := m.connect(ctx); err != nil || f.tokenSeen != 1 {
		t.Errorf("connect again: %v, %d tokens", err, f.tokenSeen)
	}

	// A service turned off for the instance: no waiting.
	f.mu.Lock()
	f.forbid = true
	f.mu.Unlock()
	m = newIMDS(f.URL, time.Second)
	t0 := time.Now()
	if err := m.connect(ctx); !errors.Is(err, errNoIMDS) || time.Since(t0) > 100*time.Millisecond {
		t.Errorf("service turned off: %v after %s", err, time.Since(t0))
	}

	// No service: connect gives up when its context ends.
	f.Close()
	m = newIMDS(f.URL, 100*time.Millisecond)
	ctx2, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	t0 = time.Now()
	if err := m.connect(ctx2); err == nil || time.Since(t0) > time.Second {
		t.Fatalf("connect to nothing: %v after %s", err, time.Since(t0))
	}
}

func TestEICKeys(t *testing.T) {
	f := newFakeIMDS(t, map[string]string{
		// EC2 interleaves metadata comments and signatures with the keys.
		"meta-data/managed-ssh-keys/active-keys/admin": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOne eic\n#Timestamp=1700000000\n#Instance=i-0abc\nc2lnbmF0dXJl\n\nno-pty ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ two\n",
	})
	got := eicKeys(context.Background(), newIMDS(f.URL, time.Second), "admin")
	want := []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOne eic", "no-pty ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ two"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("keys %q, want %q", got, want)
	}
	if got := eicKeys(context.Background(), newIMDS(f.URL, time.Second), "bob"); got != nil {
		t.Errorf("keys of a user without any: %q", got)
	}
	// The command prints nothing for a bad user name (and asks nothing:
	// tests send no traffic to the host's own 169.254.169.254).
	var out bytes.Buffer
	for _, args := range [][]string{nil, {"../admin"}, {"-x"}, {""}} {
		if code := eicMain(args, &out); code != 0 || out.Len() != 0 {
			t.Errorf("nubo-eic-keys %q: exit %d, printed %q", args, code, out.String())
		}
	}
}
