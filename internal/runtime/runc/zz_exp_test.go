package runc_test

import (
	"os"
	"fmt"
	"testing"
)

func TestZZExp(t *testing.T) {
	requireHost(t)
	d, spec := startInstance(t, nil)
	pid := pid1(t, d, spec.ID)
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	t.Logf("cgroup:\n%s", b)
	t.Logf("inside:\n%s", mustExec(t, d, spec.ID, "cat /proc/self/mountinfo; cat /proc/1/cgroup; ls -la /sys/fs/cgroup/ /sys/fs/cgroup/systemd/; cat /proc/sys/net/ipv4/ip_unprivileged_port_start"))
}
