package linux_test

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/vishvananda/netlink"

	"nubo/internal/network"
	"nubo/internal/network/networktest"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// Two instances in one VPC, in different subnets, reach each other by
// private IP and resolve each other's names through VPC base + 2.
func TestInstancesAcrossSubnets(t *testing.T) {
	d := newDriver(t)
	n := net10{t, d}
	n.vpc("vpc-a", "10.0.0.0/16")
	n.subnet("vpc-a", "subnet-a1", "10.0.1.0/24", false)
	n.subnet("vpc-a", "subnet-a2", "10.0.2.0/24", false)
	a1 := n.attach("vpc-a", "subnet-a1", "i-a1", "10.0.1.10/24")
	a2 := n.attach("vpc-a", "subnet-a2", "i-a2", "10.0.2.20/24")
	a3 := n.attach("vpc-a", "subnet-a1", "i-a3", "10.0.1.30/24")
	networktest.ServeWho(t, a1, "a1", "10.0.1.10:8080")
	networktest.ServeWho(t, a2, "a2", "10.0.2.20:8080")

	for _, c := range []struct{ from, addr, want, src string }{
		{a1, "10.0.2.20:8080", "a2", "10.0.1.10"},
		{a2, "10.0.1.10:8080", "a1", "10.0.2.20"},
		{a3, "10.0.1.10:8080", "a1", "10.0.1.30"}, // same subnet
	} {
		name, client, err := networktest.Ask(ctxT(t), c.from, c.addr)
		if err != nil || name != c.want || client.Addr().String() != c.src {
			t.Errorf("ask %s: %q from %v, %v; want %q from %s", c.addr, name, client, err, c.want, c.src)
		}
	}

	err := d.SetDNS(context.Background(), "vpc-a", network.EC2DNS("us-east-1", []network.Host{
		{Private: netip.MustParseAddr("10.0.1.10")}, {Private: netip.MustParseAddr("10.0.2.20")},
	}))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		from, name string
		rcode      int
		want       string
	}{
		{a1, "ip-10-0-2-20.ec2.internal", dns.RcodeSuccess, "10.0.2.20"},
		{a1, "ip-10-0-2-20.us-east-1.compute.internal", dns.RcodeSuccess, "10.0.2.20"},
		{a2, "ip-10-0-1-10.ec2.internal", dns.RcodeSuccess, "10.0.1.10"},
		{a2, "ip-10-0-9-9.ec2.internal", dns.RcodeNameError, ""},
		{a2, "example.com", dns.RcodeRefused, ""},
	} {
		addrs, rcode, err := networktest.Lookup(ctxT(t), c.from, "10.0.0.2:53", c.name)
		got := ""
		if len(addrs) > 0 {
			got = addrs[0].String()
		}
		if err != nil || rcode != c.rcode || got != c.want {
			t.Errorf("lookup %s: %q rcode %s, %v; want %q %s", c.name, got, dns.RcodeToString[rcode], err, c.want, dns.RcodeToString[c.rcode])
		}
	}
}

// The host reaches an instance by its public IP, and the instance's own
// connections to the host come from its public IP. Instances without a
// public IP, or in a subnet that is not public, are cut off from the host.
func TestPublicIP(t *testing.T) {
	d := newDriver(t)
	n := net10{t, d}
	n.vpc("vpc-a", "10.0.0.0/16")
	n.subnet("vpc-a", "subnet-pub", "10.0.1.0/24", true)
	n.subnet("vpc-a", "subnet-priv", "10.0.2.0/24", false)
	web := n.attach("vpc-a", "subnet-pub", "i-web", "10.0.1.10/24")
	lone := n.attach("vpc-a", "subnet-pub", "i-lone", "10.0.1.11/24") // no public IP
	back := n.attach("vpc-a", "subnet-priv", "i-back", "10.0.2.10/24")
	pWeb, pBack := pub(d, 1), pub(d, 2)
	n.public("vpc-a", "10.0.1.10", pWeb)
	n.public("vpc-a", "10.0.2.10", pBack) // mapped, but its subnet is not public
	networktest.ServeWho(t, web, "web", "10.0.1.10:8080")
	networktest.ServeWho(t, back, "back", "10.0.2.10:8080")

	name, client, err := networktest.Ask(ctxT(t), "", pWeb+":8080")
	if err != nil || name != "web" || client.Addr() != d.HostIP() {
		t.Errorf("host → %s: %q from %v, %v; want web from %s", pWeb, name, client, err, d.HostIP())
	}
	host := d.HostIP().String() + ":18080"
	networktest.ServeWho(t, "", "host", host)
	name, client, err = networktest.Ask(ctxT(t), web, host)
	if err != nil || name != "host" || client.Addr().String() != pWeb {
		t.Errorf("web → host: %q from %v, %v; want host seeing %s", name, client, err, pWeb)
	}

	for _, c := range []struct{ what, from, addr string }{
		{"host → public IP of an instance in a private subnet", "", pBack + ":8080"},
		{"instance in a private subnet → host", back, host},
		{"instance without public IP → host", lone, host},
		{"host → unmapped public IP", "", pub(d, 3) + ":8080"},
	} {
		if err := networktest.Unreachable(c.from, c.addr, 300*time.Millisecond); err != nil {
			t.Errorf("%s: %v", c.what, err)
		}
	}

	// The host has no route to private IPs through nubo (asked of the
	// routing table: no packet is sent, it would leave through the uplink).
	if rs, err := netlink.RouteGet(net.ParseIP("10.0.1.10")); err == nil && len(rs) > 0 {
		if l, _ := netlink.LinkByIndex(rs[0].LinkIndex); l != nil && l.Attrs().Name == d.Config().HostLink {
			t.Errorf("the host routes a private IP through %s", l.Attrs().Name)
		}
	}

	// Making the subnet public opens it; clearing the public IP closes it.
	n.subnet("vpc-a", "subnet-priv", "10.0.2.0/24", true)
	if name, _, err := networktest.Ask(ctxT(t), "", pBack+":8080"); err != nil || name != "back" {
		t.Errorf("host → %s after the subnet became public: %q, %v", pBack, name, err)
	}
	if err := d.ClearPublicIP(context.Background(), netip.MustParseAddr(pBack)); err != nil {
		t.Fatal(err)
	}
	if err := networktest.Unreachable("", pBack+":8080", 300*time.Millisecond); err != nil {
		t.Errorf("host → %s after ClearPublicIP: %v", pBack, err)
	}
}

// Two VPCs with the same CIDR (and the same private IP in both) are
// separate: neither reaches the other, each public IP reaches its own.
func TestOverlappingVPCs(t *testing.T) {
	d := newDriver(t)
	n := net10{t, d}
	ns := map[string]string{}
	for _, v := range []string{"a", "b"} {
		n.vpc("vpc-"+v, "10.0.0.0/16")
		n.subnet("vpc-"+v, "subnet-"+v, "10.0.1.0/24", true)
		ns[v+"1"] = n.attach("vpc-"+v, "subnet-"+v, "i-"+v+"1", "10.0.1.10/24")
		networktest.ServeWho(t, ns[v+"1"], v+"1", "10.0.1.10:8080")
	}
	ns["b2"] = n.attach("vpc-b", "subnet-b", "i-b2", "10.0.1.20/24")
	networktest.ServeWho(t, ns["b2"], "b2", "10.0.1.20:8080")
	n.public("vpc-a", "10.0.1.10", pub(d, 1))
	n.public("vpc-b", "10.0.1.10", pub(d, 2))

	if name, _, err := networktest.Ask(ctxT(t), ns["b1"], "10.0.1.20:8080"); err != nil || name != "b2" {
		t.Errorf("b1 → b2: %q, %v", name, err)
	}
	if err := networktest.Unreachable(ns["a1"], "10.0.1.20:8080", 300*time.Millisecond); err != nil {
		t.Errorf("a1 → 10.0.1.20 (only in VPC b): %v", err)
	}
	if name, _, err := networktest.Ask(ctxT(t), ns["b2"], "10.0.1.10:8080"); err != nil || name != "b1" {
		t.Errorf("b2 → 10.0.1.10: %q, %v; want b1", name, err)
	}
	for i, want := range []string{"a1", "b1"} {
		if name, _, err := networktest.Ask(ctxT(t), "", pub(d, i+1)+":8080"); err != nil || name != want {
			t.Errorf("host → %s: %q, %v; want %s", pub(d, i+1), name, err, want)
		}
	}
}
