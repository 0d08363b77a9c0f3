package eic

import (
	"strings"
	"testing"
)

func TestValidUser(t *testing.T) {
	for name, want := range map[string]bool{
		"admin": true, "ec2-user": true, "Admin": true, "_svc": true, "first.last": true,
		"user@example.com": true, "samba$": true, "1st-user": true, "a": true,
		strings.Repeat("a", 32): true,

		"": false, "1000": false, "-admin": false, ".hidden": false, "..": false,
		"ad/min": false, "ad min": false, "a$b": false, "root\n": false,
		strings.Repeat("a", 33): false, "1" + strings.Repeat("a", 32): false,
	} {
		if got := validUser(name); got != want {
			t.Errorf("validUser(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestParseKeyNormalises(t *testing.T) {
	const b64 = "AAAAC3NzaC1lZDI1NTE5AAAAIGl0CvYkWlXJ9ZZ7pN8UtC4WbqF3k2fSDv3iN1b2JlZG"
	got, err := parseKey("  ssh-ed25519   " + b64 + "   me@host  \r\n")
	if err != nil {
		t.Fatal(err)
	}
	if want := "ssh-ed25519 " + b64 + " me@host"; got != want {
		t.Errorf("parseKey = %q, want %q", got, want)
	}
	for _, bad := range []string{
		"ssh-ed25519 " + b64 + " me\x00host",
		"ssh-ed25519 " + b64 + "\nssh-ed25519 " + b64,
		"# ssh-ed25519 " + b64 + " a comment line only",
		"ssh-dss " + b64 + " wrong type for the blob",
	} {
		if _, err := parseKey(bad); err == nil {
			t.Errorf("parseKey(%q) succeeded", bad)
		}
	}
}
