package netns_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"nubo/internal/network/netns"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces")
	}
}

// tempDir is a directory for namespaces; Create makes it a mount point (as
// `ip netns` does /run/netns), unmounted at cleanup.
func tempDir(t *testing.T) string {
	dir := t.TempDir()
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	return dir
}

// Namespaces are made under a directory of the test's own (not
// /run/netns), entered, adopted when they exist, and removed.
func TestLifecycle(t *testing.T) {
	requireRoot(t)
	dir := tempDir(t)
	path := filepath.Join(dir, "a")
	t.Cleanup(func() { netns.Delete(path) })

	made, err := netns.Create(path)
	if err != nil || !made {
		t.Fatalf("Create: %v, %v", made, err)
	}
	if made, err := netns.Create(path); err != nil || made {
		t.Fatalf("Create again: made %v, %v; want adopted", made, err)
	}
	if ok, err := netns.IsNS(path); !ok || err != nil {
		t.Fatalf("IsNS: %v, %v", ok, err)
	}
	// A new namespace has only lo, and a sysctl set in it stays in it.
	h, err := netns.NewHandle(path)
	if err != nil {
		t.Fatal(err)
	}
	links, err := h.LinkList()
	h.Close()
	if err != nil || len(links) != 1 || links[0].Attrs().Name != "lo" {
		t.Fatalf("links in a new namespace: %v, %v", links, err)
	}
	if err := netns.SetSysctls(path, netns.Sysctl{Key: "net/ipv4/ip_unprivileged_port_start", Value: "0"}); err != nil {
		t.Fatal(err)
	}
	var inside string
	err = netns.Do(path, func() error {
		b, err := os.ReadFile("/proc/sys/net/ipv4/ip_unprivileged_port_start")
		inside = strings.TrimSpace(string(b))
		return err
	})
	outside, _ := os.ReadFile("/proc/sys/net/ipv4/ip_unprivileged_port_start")
	if err != nil || inside != "0" || strings.TrimSpace(string(outside)) == "0" {
		t.Errorf("sysctl inside %q (%v), outside %q", inside, err, outside)
	}
	// This goroutine's thread is still in the test's namespace.
	if _, err := netlink.LinkByName("lo"); err != nil {
		t.Fatal(err)
	}
	if names, err := netns.List(dir, "a"); err != nil || len(names) != 1 {
		t.Errorf("List: %v, %v", names, err)
	}

	if err := netns.Delete(path); err != nil {
		t.Fatal(err)
	}
	if err := netns.Delete(path); err != nil {
		t.Fatalf("Delete again: %v", err)
	}
	if ok, _ := netns.IsNS(path); ok {
		t.Error("still a namespace after Delete")
	}
}

// A leftover empty file (a crash between creating it and mounting) is
// adopted by Create.
func TestLeftoverFile(t *testing.T) {
	requireRoot(t)
	path := filepath.Join(tempDir(t), "b")
	t.Cleanup(func() { netns.Delete(path) })
	if err := os.WriteFile(path, nil, 0o444); err != nil {
		t.Fatal(err)
	}
	if made, err := netns.Create(path); err != nil || !made {
		t.Fatalf("Create over a leftover file: %v, %v", made, err)
	}
}

func TestDialNeedsIP(t *testing.T) {
	if _, err := netns.Dial(t.Context(), "/nonexistent", nil, "tcp", "example.com:80"); err == nil || !strings.Contains(err.Error(), "not an IP") {
		t.Errorf("Dial by name: %v", err)
	}
}
