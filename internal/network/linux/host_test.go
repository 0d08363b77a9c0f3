package linux_test

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"nubo/internal/network"
	"nubo/internal/network/linux"
	"nubo/internal/network/netns"
	"nubo/internal/network/networktest"
)

var (
	// Names other tests on this host may be making and removing meanwhile:
	// other ephemeral drivers (nt + 6 hex), the runtime's tests' namespaces.
	othersNames = regexp.MustCompile(`nt[0-9a-f]{6}|nubo-test-`)
	nsid        = regexp.MustCompile(` \(id: \d+\)| link-netnsid \d+`)
)

// hostView is what the host shows of its network, one line per object,
// without other tests' objects (parallel test packages) but with ours.
func hostView(t *testing.T, cfg linux.Config) []string {
	t.Helper()
	var lines []string
	for _, args := range [][]string{
		{"ip", "-o", "link"}, {"ip", "-o", "addr"}, {"ip", "route"}, {"ip", "netns"}, {"nft", "list", "tables"},
	} {
		out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if line == "" || othersNames.MatchString(line) && !ours(cfg, line) {
				continue
			}
			lines = append(lines, strings.Join(args[1:], " ")+": "+nsid.ReplaceAllString(line, ""))
		}
	}
	return lines
}

// ours reports whether a line of hostView is about this driver's objects.
func ours(cfg linux.Config, line string) bool {
	rangePrefix := strings.TrimSuffix(cfg.PublicRange.Masked().Addr().String(), "0")
	return strings.Contains(line, cfg.Prefix) || strings.Contains(line, cfg.HostLink) || strings.Contains(line, rangePrefix)
}

func count(lines []string, f func(string) bool) int {
	n := 0
	for _, l := range lines {
		if f(l) {
			n++
		}
	}
	return n
}

// Teardown leaves the host as it found it, and while nubo runs the host has
// exactly one more link and one more route.
func TestTeardownRestoresHost(t *testing.T) {
	networktest.RequireRoot(t)
	cfg, err := linux.EphemeralConfig()
	if err != nil {
		t.Fatal(err)
	}
	d, err := linux.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Teardown(context.Background()) })
	before := hostView(t, cfg)
	routesBefore := count(before, func(l string) bool { return strings.HasPrefix(l, "route: ") })

	if err := d.EnsureHost(context.Background()); err != nil {
		t.Fatal(err)
	}
	n := net10{t, d}
	n.vpc("vpc-a", "10.0.0.0/16")
	n.subnet("vpc-a", "subnet-a", "10.0.1.0/24", true)
	a := n.attach("vpc-a", "subnet-a", "i-a", "10.0.1.10/24")
	n.public("vpc-a", "10.0.1.10", pub(d, 1))
	networktest.ServeWho(t, a, "a", "10.0.1.10:8080")
	if name, _, err := networktest.Ask(ctxT(t), "", pub(d, 1)+":8080"); err != nil || name != "a" {
		t.Fatalf("host → public IP: %q, %v", name, err)
	}

	during := hostView(t, cfg)
	links := count(during, func(l string) bool { return strings.HasPrefix(l, "-o link: ") && ours(cfg, l) })
	routes := count(during, func(l string) bool { return strings.HasPrefix(l, "route: ") })
	ourRoutes := count(during, func(l string) bool { return strings.HasPrefix(l, "route: ") && ours(cfg, l) })
	if links != 1 || ourRoutes != 1 || routes != routesBefore+1 {
		t.Errorf("while running: %d links and %d routes of ours, %d routes (before: %d); want 1 link, 1 route\n%s",
			links, ourRoutes, routes, routesBefore, strings.Join(during, "\n"))
	}
	t.Logf("what the host sees while the driver runs:\n%s", strings.Join(during, "\n"))

	if err := d.Teardown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := d.Teardown(context.Background()); err != nil {
		t.Fatalf("Teardown again: %v", err)
	}
	after := hostView(t, cfg)
	for _, l := range after {
		if ours(cfg, l) {
			t.Errorf("left on the host after Teardown: %s", l)
		}
	}
	for _, l := range before {
		if !slices.Contains(after, l) {
			t.Errorf("gone from the host after a driver's life: %s", l)
		}
	}
	for _, l := range after {
		if !slices.Contains(before, l) {
			t.Logf("new on the host (not ours: another test's?): %s", l)
		}
	}
}

// An instance cannot send from an address that is not its own.
func TestNoSpoofing(t *testing.T) {
	d := newDriver(t)
	n := net10{t, d}
	n.vpc("vpc-a", "10.0.0.0/16")
	n.subnet("vpc-a", "subnet-1", "10.0.1.0/24", false)
	n.subnet("vpc-a", "subnet-2", "10.0.2.0/24", false)
	evil := n.attach("vpc-a", "subnet-1", "i-evil", "10.0.1.10/24")
	n.attach("vpc-a", "subnet-1", "i-peer", "10.0.1.20/24")
	sink := n.attach("vpc-a", "subnet-2", "i-sink", "10.0.2.30/24")

	pc, err := netns.ListenPacket(sink, "udp4", "10.0.2.30:9999")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	got := make(chan string, 16)
	go func() {
		buf := make([]byte, 64)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			got <- fmt.Sprintf("%s from %s", buf[:n], from.(*net.UDPAddr).IP)
		}
	}()
	send := func(src, msg string) {
		t.Helper()
		err := netns.Do(evil, func() error {
			lc := net.ListenConfig{Control: func(_, _ string, c syscallRawConn) error {
				var serr error
				c.Control(func(fd uintptr) {
					serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_FREEBIND, 1)
					if serr == nil {
						serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_TRANSPARENT, 1)
					}
				})
				return serr
			}}
			s, err := lc.ListenPacket(context.Background(), "udp4", src+":0")
			if err != nil {
				return err
			}
			defer s.Close()
			_, err = s.WriteTo([]byte(msg), &net.UDPAddr{IP: net.ParseIP("10.0.2.30"), Port: 9999})
			return err
		})
		if err != nil {
			t.Fatalf("send from %s: %v", src, err)
		}
	}
	for _, src := range []string{"10.0.1.20", "10.0.2.99", "10.0.1.99", "192.0.2.2", d.HostIP().String()} {
		send(src, "spoofed")
	}
	send("10.0.1.10", "honest")
	select {
	case m := <-got:
		if m != "honest from 10.0.1.10" {
			t.Errorf("sink received %q", m)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the honest datagram did not arrive")
	}
	select {
	case m := <-got:
		t.Errorf("sink received %q", m)
	case <-time.After(300 * time.Millisecond):
	}
}

// An instance gets more interfaces (ENIs) in other subnets of its VPC,
// each reachable at its own address; only eth0 has the default route.
func TestSecondInterface(t *testing.T) {
	d := newDriver(t)
	n := net10{t, d}
	n.vpc("vpc-a", "10.0.0.0/16")
	n.subnet("vpc-a", "subnet-1", "10.0.1.0/24", false)
	n.subnet("vpc-a", "subnet-2", "10.0.2.0/24", false)
	multi := n.attach("vpc-a", "subnet-1", "i-multi", "10.0.1.10/24")
	peer := n.attach("vpc-a", "subnet-2", "i-peer", "10.0.2.20/24")
	path, err := d.Attach(context.Background(), network.Interface{
		InstanceID: "i-multi", VPCID: "vpc-a", SubnetID: "subnet-2", Device: 1,
		MAC: net.HardwareAddr{2, 0xbb, 0, 0, 0, 1}, PrivateIP: mustAddr("10.0.2.11"), PrefixLen: 24, Gateway: mustAddr("10.0.2.1"),
	})
	if err != nil || path != multi {
		t.Fatalf("Attach eth1: %q, %v; want %q", path, err, multi)
	}
	n.open("vpc-a", network.Port{InstanceID: "i-multi", Device: 1})
	networktest.ServeWho(t, multi, "multi", "0.0.0.0:8080")
	for _, addr := range []string{"10.0.1.10:8080", "10.0.2.11:8080"} {
		if name, _, err := networktest.Ask(ctxT(t), peer, addr); err != nil || name != "multi" {
			t.Errorf("peer → %s: %q, %v", addr, name, err)
		}
	}
	out, err := exec.Command("ip", "-n", d.Config().Prefix+"-i-multi", "route").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "default via 10.0.1.1 dev eth0") || strings.Contains(string(out), "default via 10.0.2.1") {
		t.Errorf("routes in the instance: %s %v", out, err)
	}
	out, err = exec.Command("ip", "netns", "exec", d.Config().Prefix+"-i-multi", "sysctl", "-n", "net.ipv4.ip_unprivileged_port_start").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "0" {
		t.Errorf("ip_unprivileged_port_start in the instance: %s %v", out, err)
	}
}

// Attach is quick, and quicker when the namespace exists.
func TestAttachLatency(t *testing.T) {
	d := newDriver(t)
	n := net10{t, d}
	n.vpc("vpc-a", "10.0.0.0/16")
	n.subnet("vpc-a", "subnet-1", "10.0.0.0/20", false)
	const count = 20
	var total, again time.Duration
	for i := range count {
		ifc := network.Interface{
			InstanceID: fmt.Sprintf("i-%d", i), VPCID: "vpc-a", SubnetID: "subnet-1",
			MAC: net.HardwareAddr{2, 0xcc, 0, 0, 0, byte(i + 1)}, PrivateIP: mustAddr(fmt.Sprintf("10.0.1.%d", i+10)),
			PrefixLen: 20, Gateway: mustAddr("10.0.0.1"),
		}
		start := time.Now()
		if _, err := d.Attach(context.Background(), ifc); err != nil {
			t.Fatal(err)
		}
		total += time.Since(start)
		start = time.Now()
		if _, err := d.Attach(context.Background(), ifc); err != nil {
			t.Fatal(err)
		}
		again += time.Since(start)
	}
	t.Logf("Attach: %v on average for a new instance, %v when it exists (%d instances)", total/count, again/count, count)
	start := time.Now()
	st, err := d.Observe(context.Background())
	if err != nil || len(st.Instances) != count {
		t.Fatalf("Observe: %d instances, %v", len(st.Instances), err)
	}
	t.Logf("Observe with %d instances: %v", count, time.Since(start))
}
