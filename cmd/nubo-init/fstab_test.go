package main

import "testing"

func TestHasMounts(t *testing.T) {
	for fstab, want := range map[string]bool{
		"":                                       false,
		"# UNCONFIGURED FSTAB FOR BASE SYSTEM\n": false,
		"/dev/root / ext4 defaults 0 1\n":        false,
		"/swapfile none swap sw 0 0\n":           false,
		"/dev/sdf /data ext4 defaults,nofail 0 2\n": true,
		"# /dev/sdf /data ext4 defaults 0 2\n":      false,
	} {
		if got := hasMounts([]byte(fstab)); got != want {
			t.Errorf("hasMounts(%q) = %v, want %v", fstab, got, want)
		}
	}
}
