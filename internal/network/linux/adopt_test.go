package linux_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"nubo/internal/network"
	"nubo/internal/network/netns"
	"nubo/internal/network/networktest"
)

// TestAdoptedNamespace: a namespace the runtime made (here, one of a
// process of the test's own) is plumbed like the driver's own, and
// outlives neither its process nor Detach in the driver's directory.
func TestAdoptedNamespace(t *testing.T) {
	d := newDriver(t)
	n := net10{t, d}
	n.vpc("vpc-a", "10.0.0.0/16")
	n.subnet("vpc-a", "subnet-1", "10.0.1.0/24", false)
	holder := exec.Command("unshare", "--net", "sh", "-c", "echo ready; exec sleep 300")
	ready, err := holder.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { holder.Process.Kill(); holder.Wait() })
	if _, err := bufio.NewReader(ready).ReadString('\n'); err != nil { // in its namespace
		t.Fatal(err)
	}
	own := fmt.Sprintf("/proc/%d/ns/net", holder.Process.Pid)
	if err := d.Adopt(context.Background(), "i-own", own); err != nil {
		t.Fatal(err)
	}
	if err := d.Adopt(context.Background(), "i-own", own); err != nil {
		t.Fatalf("adopting it again: %v", err)
	}
	path := n.attach("vpc-a", "subnet-1", "i-own", "10.0.1.10/24")
	peer := n.attach("vpc-a", "subnet-1", "i-peer", "10.0.1.20/24")
	if err := d.Adopt(context.Background(), "i-peer", own); !errors.Is(err, network.ErrConflict) {
		t.Fatalf("adopting another namespace for an instance that has one: %v, want ErrConflict", err)
	}
	out, err := exec.Command("nsenter", "--net="+own, "ip", "-br", "addr", "show", "eth0").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "10.0.1.10/24") {
		t.Fatalf("eth0 in the process's own namespace: %s %v", out, err)
	}
	networktest.ServeWho(t, path, "own", "0.0.0.0:8080")
	if name, _, err := networktest.Ask(ctxT(t), peer, "10.0.1.10:8080"); err != nil || name != "own" {
		t.Fatalf("peer → adopted instance: %q, %v", name, err)
	}
	if err := d.Detach(context.Background(), "i-own"); err != nil {
		t.Fatal(err)
	}
	if ok, err := netns.IsNS(path); err != nil || ok {
		t.Fatalf("after Detach, %s is still a namespace (%v)", path, err)
	}
	if out, err := exec.Command("nsenter", "--net="+own, "ip", "-br", "link").CombinedOutput(); err != nil || strings.Contains(string(out), "eth0") {
		t.Fatalf("the process's namespace after Detach: %s %v", out, err)
	}
}
