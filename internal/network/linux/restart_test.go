package linux_test

import (
	"context"
	"net/netip"
	"os/exec"
	"reflect"
	"strings"
	"testing"

	"nubo/internal/network"
	"nubo/internal/network/linux"
	"nubo/internal/network/networktest"
)

func ip(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// A restarted nubo (a new driver with the same config) observes what the
// old one made, traffic flows meanwhile, and EnsureVPC and SetDNS bring
// the resolver back.
func TestRestart(t *testing.T) {
	d1 := newDriver(t)
	n := net10{t, d1}
	n.vpc("vpc-a", "10.0.0.0/16")
	n.subnet("vpc-a", "subnet-1", "10.0.1.0/24", true)
	a := n.attach("vpc-a", "subnet-1", "i-a", "10.0.1.10/24")
	n.public("vpc-a", "10.0.1.10", pub(d1, 1))
	dns := network.EC2DNS("eu-west-1", []network.Host{{Private: mustAddr("10.0.1.10"), Public: mustAddr(pub(d1, 1))}})
	if err := d1.SetDNS(context.Background(), "vpc-a", dns); err != nil {
		t.Fatal(err)
	}
	before, err := d1.Observe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := d1.Close(); err != nil { // nubo stops; the kernel state stays
		t.Fatal(err)
	}

	d2, err := linux.New(d1.Config())
	if err != nil {
		t.Fatal(err)
	}
	after, err := d2.Observe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	before.VPCs[0].DNS = nil // the resolver lived in the old process
	if !reflect.DeepEqual(after, before) {
		t.Errorf("a new driver observes\n%+v\nthe old one\n%+v", after, before)
	}
	networktest.ServeWho(t, a, "a", "10.0.1.10:8080")
	if name, _, err := networktest.Ask(ctxT(t), "", pub(d1, 1)+":8080"); err != nil || name != "a" {
		t.Errorf("host → public IP with no nubo running: %q, %v", name, err)
	}
	for _, step := range []error{
		d2.EnsureHost(context.Background()),
		d2.EnsureVPC(context.Background(), network.VPC{ID: "vpc-a", CIDR: netip.MustParsePrefix("10.0.0.0/16")}),
		d2.SetDNS(context.Background(), "vpc-a", dns),
	} {
		if step != nil {
			t.Fatal(step)
		}
	}
	name := network.PrivateDNSNames("eu-west-1", mustAddr("10.0.1.10"))[0]
	if addrs, _, err := networktest.Lookup(ctxT(t), a, "10.0.0.2:53", name); err != nil || len(addrs) != 1 || addrs[0].String() != "10.0.1.10" {
		t.Errorf("lookup %s after restart: %v, %v", name, addrs, err)
	}
	d2.Close()
}

// Every Ensure puts back what was broken by hand (or by a crash).
func TestRepair(t *testing.T) {
	d := newDriver(t)
	n := net10{t, d}
	pfx := d.Config().Prefix
	n.vpc("vpc-a", "10.0.0.0/16")
	n.subnet("vpc-a", "subnet-1", "10.0.1.0/24", true)
	a := n.attach("vpc-a", "subnet-1", "i-a", "10.0.1.10/24")
	n.public("vpc-a", "10.0.1.10", pub(d, 1))
	networktest.ServeWho(t, a, "a", "10.0.1.10:8080")
	works := func(what string) {
		t.Helper()
		if name, _, err := networktest.Ask(ctxT(t), "", pub(d, 1)+":8080"); err != nil || name != "a" {
			t.Errorf("%s: host → public IP: %q, %v", what, name, err)
		}
	}
	works("before")

	ip(t, "route", "del", d.Config().PublicRange.String())
	ip(t, "-n", pfx+"-gw", "addr", "flush", "dev", "host0")
	if err := d.EnsureHost(context.Background()); err != nil {
		t.Fatal(err)
	}
	works("EnsureHost after the host route and the gateway's address went")

	ip(t, "-n", pfx+"-vpc-a", "link", "del", "gw0") // the transit link, and the public IP's route with it
	ip(t, "-n", pfx+"-vpc-a", "addr", "flush", "dev", "lo")
	if err := d.EnsureVPC(context.Background(), network.VPC{ID: "vpc-a", CIDR: netip.MustParsePrefix("10.0.0.0/16")}); err != nil {
		t.Fatal(err)
	}
	n.subnet("vpc-a", "subnet-1", "10.0.1.0/24", true) // its gateway address was on lo
	works("EnsureVPC after the transit link went")

	ip(t, "-n", pfx+"-vpc-a", "route", "del", "10.0.1.10/32")
	ip(t, "-n", pfx+"-i-a", "route", "del", "default")
	n.attach("vpc-a", "subnet-1", "i-a", "10.0.1.10/24")
	works("Attach after routes went")

	out, err := exec.Command("ip", "netns", "exec", pfx+"-vpc-a", "nft", "delete", "element", "ip", "nubo", "to_private", "{", pub(d, 1), "}").CombinedOutput()
	if err != nil {
		t.Fatalf("nft: %v: %s", err, out)
	}
	n.public("vpc-a", "10.0.1.10", pub(d, 1))
	works("SetPublicIP after a map element went")
}

// A crash in the middle of a move leaves the public IP in the old router's
// maps too; the gateway's route says who owns it, Observe reports only the
// owner, and the old VPC's next EnsureVPC removes the stale entry.
func TestStalePublicIP(t *testing.T) {
	d := newDriver(t)
	n := net10{t, d}
	pfx := d.Config().Prefix
	n.vpc("vpc-a", "10.0.0.0/16")
	n.vpc("vpc-b", "10.0.0.0/16")
	p := pub(d, 1)
	n.public("vpc-a", "10.0.1.10", p)
	script := "add element ip nubo to_private { " + p + " : 10.0.1.99 }\n" +
		"add element ip nubo to_public { 10.0.1.99 : " + p + " }\nadd element ip nubo natted { 10.0.1.99 }\n"
	inject := func() {
		t.Helper()
		c := exec.Command("ip", "netns", "exec", pfx+"-vpc-b", "nft", "-f", "-")
		c.Stdin = strings.NewReader(script)
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("nft: %v: %s", err, out)
		}
	}
	inject()
	st, err := d.Observe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range st.VPCs {
		if want := map[string]int{"vpc-a": 1, "vpc-b": 0}[v.VPC.ID]; len(v.PublicIPs) != want {
			t.Errorf("Observe: %s has public IPs %v, want %d", v.VPC.ID, v.PublicIPs, want)
		}
	}
	n.vpc("vpc-b", "10.0.0.0/16")
	out, err := exec.Command("ip", "netns", "exec", pfx+"-vpc-b", "nft", "list", "map", "ip", "nubo", "to_private").CombinedOutput()
	if err != nil || strings.Contains(string(out), p) {
		t.Errorf("vpc-b's map after EnsureVPC: %s %v", out, err)
	}
	inject()
	if err := d.DeleteVPC(context.Background(), "vpc-b"); err != nil {
		t.Errorf("DeleteVPC with only a stale public IP: %v", err)
	}
}
