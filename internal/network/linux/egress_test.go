package linux_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"nubo/internal/network/linux"
	"nubo/internal/network/netns"
	"nubo/internal/network/networktest"
)

// outside makes a stand-in for the world beyond the machine: a namespace
// joined to the host by a veth, 203.0.113.2 there and 203.0.113.1 on the
// host side (TEST-NET-3, routed nowhere). It is gone at the test's end.
func outside(t *testing.T, prefix string) string {
	t.Helper()
	path := filepath.Join(netns.DefaultDir, prefix+"-outside")
	if _, err := netns.Create(path); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { netns.Delete(path) })
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	name := prefix + "o"
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: "eth0", PeerNamespace: netlink.NsFd(int(f.Fd()))}
	if err := netlink.LinkAdd(veth); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if l, err := netlink.LinkByName(name); err == nil {
			netlink.LinkDel(l)
		}
	})
	host, _ := netlink.LinkByName(name)
	addr, _ := netlink.ParseAddr("203.0.113.1/30")
	if err := netlink.AddrAdd(host, addr); err != nil {
		t.Fatal(err)
	}
	netlink.LinkSetUp(host)
	h, err := netns.NewHandle(path)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	eth0, _ := h.LinkByName("eth0")
	addr, _ = netlink.ParseAddr("203.0.113.2/30")
	if err := h.AddrAdd(eth0, addr); err != nil {
		t.Fatal(err)
	}
	h.LinkSetUp(eth0)
	return path
}

func ipForward(t *testing.T) string {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// Off by default, nothing leaves the machine; with Config.Egress an
// instance with a public IP reaches the outside, seen from the host's
// address there (masquerade), and Teardown puts the host back as it was.
func TestEgress(t *testing.T) {
	networktest.RequireRoot(t)
	if routes, _ := netlink.RouteGet(net.ParseIP("203.0.113.2")); len(routes) > 0 && routes[0].Gw == nil && routes[0].LinkIndex != 0 {
		if l, _ := netlink.LinkByIndex(routes[0].LinkIndex); l != nil && !strings.HasSuffix(l.Attrs().Name, "o") {
			t.Skip("203.0.113.0/30 is on this host's own link " + l.Attrs().Name)
		}
	}
	before := ipForward(t)
	for _, egress := range []bool{false, true} {
		cfg, err := linux.EphemeralConfig()
		if err != nil {
			t.Fatal(err)
		}
		cfg.Egress = egress
		d, err := linux.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		out := outside(t, cfg.Prefix)
		networktest.ServeWho(t, out, "outside", "203.0.113.2:80")
		if err := d.EnsureHost(context.Background()); err != nil {
			t.Fatal(err)
		}
		n := net10{t, d}
		n.vpc("vpc-a", "10.0.0.0/16")
		n.subnet("vpc-a", "subnet-1", "10.0.1.0/24", true)
		a := n.attach("vpc-a", "subnet-1", "i-a", "10.0.1.10/24")
		priv := n.attach("vpc-a", "subnet-1", "i-p", "10.0.1.20/24") // no public IP
		n.public("vpc-a", "10.0.1.10", pub(d, 1))

		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		name, client, err := networktest.Ask(ctx, a, "203.0.113.2:80")
		cancel()
		switch {
		case egress && (err != nil || name != "outside" || client.Addr().String() != "203.0.113.1"):
			t.Errorf("egress on: %q from %v, %v; want outside from 203.0.113.1", name, client, err)
		case !egress && err == nil:
			t.Errorf("egress off: an instance reached the outside")
		}
		if err := networktest.Unreachable(priv, "203.0.113.2:80", 500*time.Millisecond); err != nil {
			t.Errorf("egress %v: an instance without a public IP reached the outside", egress)
		}
		if egress && ipForward(t) != "1" {
			t.Errorf("egress on: ip_forward is %s", ipForward(t))
		}
		if err := d.Teardown(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got := ipForward(t); got != before {
			t.Errorf("after Teardown: ip_forward %s, was %s", got, before)
		}
	}
}
