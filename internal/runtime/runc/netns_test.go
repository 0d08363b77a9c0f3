package runc_test

import (
	"context"
	"os/exec"
	"strings"
	"testing"

	"nubo/internal/runtime"
	"nubo/internal/runtime/runtimetest"
)

// TestJoinNetNS runs an instance in a network namespace made outside it, as
// nubo's VPC code makes them, and checks the instance sees its interface.
func TestJoinNetNS(t *testing.T) {
	requireHost(t)
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs ip (Debian package iproute2)")
	}
	name := "nubo-test-" + runtimetest.NewID()[2:12]
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	run("netns", "add", name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	run("-n", name, "link", "add", "probe0", "type", "veth", "peer", "name", "probe1")

	d, spec := startInstance(t, func(s *runtime.Spec) { s.NetNS = "/run/netns/" + name })
	if out := mustExec(t, d, spec.ID, "ip -o link"); !strings.Contains(out, "probe0") {
		t.Fatalf("links inside = %q, want the namespace's probe0", out)
	}
	// Instance root has no CAP_NET_BIND_SERVICE in a namespace it does not
	// own: the driver opens the low ports (sshd binds 22).
	if out := mustExec(t, d, spec.ID, "cat /proc/sys/net/ipv4/ip_unprivileged_port_start"); out != "0" {
		t.Fatalf("ip_unprivileged_port_start inside = %q, want 0", out)
	}
	if out := mustExec(t, d, spec.ID, "ls /sys/kernel"); out == "" {
		t.Fatal("/sys is empty inside")
	}
	ctx := context.Background()
	if err := d.Stop(ctx, spec.ID, 0); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx, spec.ID); err != nil {
		t.Fatalf("restart in the same namespace: %v", err)
	}
}
