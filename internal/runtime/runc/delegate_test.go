package runc

import (
	"strings"
	"testing"
)

func TestHierarchyKey(t *testing.T) {
	for in, want := range map[string]string{
		"":                 "",
		"memory":           "memory",
		"cpuacct,cpu":      "cpu,cpuacct",
		"name=systemd":     "name=systemd",
		"net_prio,net_cls": "net_cls,net_prio",
	} {
		if got := hierarchyKey(in); got != want {
			t.Errorf("hierarchyKey(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestDelegateRefusesRoot: a process in a hierarchy's root cgroup (as
// kthreadd, PID 2, is in all of them) is never given its cgroup: that would
// hand over the host's.
func TestDelegateRefusesRoot(t *testing.T) {
	mounts, err := cgroupMounts()
	if err != nil || len(mounts) == 0 {
		t.Skipf("no cgroup hierarchies mounted: %v", err)
	}
	_, err = cgroupsOf(2)
	if err == nil || !strings.Contains(err.Error(), "root cgroup") {
		t.Fatalf("cgroupsOf(2) = %v, want a refusal of the root cgroup", err)
	}
}
