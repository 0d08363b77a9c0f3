// Package networktest is the conformance suite of network.Driver, which
// every driver (linux, fake) runs from its own tests, and helpers for tests
// that send traffic through a real driver (servers and clients inside
// network namespaces).
//
//	func TestConformance(t *testing.T) {
//		networktest.Run(t, func(t *testing.T) networktest.Harness { … })
//	}
package networktest

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"reflect"
	"testing"

	"nubo/internal/network"
)

// Harness is one driver under test.
type Harness struct {
	// Driver is fresh (nothing made, not even the host) and torn down by
	// whoever made it at the test's cleanup.
	Driver network.Driver
	// PublicRange is the driver's; the suite maps addresses from it.
	PublicRange netip.Prefix
	// Traffic: the namespaces Attach returns are real, and the suite also
	// sends packets through them (TCP from one instance to another).
	Traffic bool
}

// Run runs the suite; newHarness makes a fresh driver for each test.
func Run(t *testing.T, newHarness func(t *testing.T) Harness) {
	s := &suite{newHarness: newHarness}
	for _, c := range []struct {
		name string
		f    func(*testing.T)
	}{
		{"Host", s.testHost},
		{"VPC", s.testVPC},
		{"Subnet", s.testSubnet},
		{"Attach", s.testAttach},
		{"SecondaryIPs", s.testSecondaryIPs},
		{"ReassignSecondaryIP", s.testReassign},
		{"SecondInterface", s.testSecondInterface},
		{"PublicIP", s.testPublicIP},
		{"DNS", s.testDNS},
		{"Teardown", s.testTeardown},
	} {
		t.Run(c.name, c.f)
	}
}

type suite struct {
	newHarness func(t *testing.T) Harness
}

var bg = context.Background()

// env is a driver with its host made and a helper for public IPs.
type env struct {
	t       *testing.T
	d       network.Driver
	r       netip.Prefix
	traffic bool
}

func (s *suite) env(t *testing.T) env {
	h := s.newHarness(t)
	e := env{t, h.Driver, h.PublicRange, h.Traffic}
	e.ok("EnsureHost", h.Driver.EnsureHost(bg))
	return e
}

// pub is the n-th instance address of the public range (n ≥ 1).
func (e env) pub(n int) netip.Addr {
	a := e.r.Addr()
	for range n + 3 {
		a = a.Next()
	}
	return a
}

func (e env) ok(what string, err error) {
	e.t.Helper()
	if err != nil {
		e.t.Fatalf("%s: %v", what, err)
	}
}

func (e env) is(what string, err, want error) {
	e.t.Helper()
	if !errors.Is(err, want) {
		e.t.Errorf("%s: error %v, want %v", what, err, want)
	}
}

func (e env) observe() network.State {
	e.t.Helper()
	st, err := e.d.Observe(bg)
	e.ok("Observe", err)
	return st
}

func (e env) vpcState(id string) network.VPCState {
	e.t.Helper()
	for _, v := range e.observe().VPCs {
		if v.VPC.ID == id {
			return v
		}
	}
	e.t.Fatalf("Observe: no VPC %s", id)
	return network.VPCState{}
}

func prefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func addr(s string) netip.Addr     { return netip.MustParseAddr(s) }

func (e env) vpc(id, cidr string) {
	e.t.Helper()
	e.ok("EnsureVPC "+id, e.d.EnsureVPC(bg, network.VPC{ID: id, CIDR: prefix(cidr)}))
}

func (e env) subnet(vpcID, id, cidr string, public bool) {
	e.t.Helper()
	e.ok("EnsureSubnet "+id, e.d.EnsureSubnet(bg, vpcID, network.Subnet{ID: id, CIDR: prefix(cidr), Public: public}))
}

func ifc(inst, vpcID, subnetID string, dev int, mac byte, ipPrefix string) network.Interface {
	p := prefix(ipPrefix)
	return network.Interface{
		InstanceID: inst, VPCID: vpcID, SubnetID: subnetID, Device: dev,
		MAC:       net.HardwareAddr{0x02, 0x42, 0, 0, 0, mac},
		PrivateIP: p.Addr(), PrefixLen: p.Bits(), Gateway: network.SubnetGateway(p.Masked()),
	}
}

func (s *suite) testHost(t *testing.T) {
	h := s.newHarness(t)
	e := env{t, h.Driver, h.PublicRange, h.Traffic}
	if st := e.observe(); st.Host || len(st.VPCs) > 0 || len(st.Instances) > 0 {
		t.Errorf("Observe of a new driver: %+v, want nothing", st)
	}
	e.is("EnsureVPC before EnsureHost", e.d.EnsureVPC(bg, network.VPC{ID: "vpc-1", CIDR: prefix("10.0.0.0/16")}), network.ErrNotFound)
	e.ok("EnsureHost", e.d.EnsureHost(bg))
	e.ok("EnsureHost again", e.d.EnsureHost(bg))
	if st := e.observe(); !st.Host {
		t.Errorf("Observe after EnsureHost: Host false")
	}
}

func (s *suite) testVPC(t *testing.T) {
	e := s.env(t)
	e.vpc("vpc-a", "10.0.0.0/16")
	e.vpc("vpc-a", "10.0.0.0/16")
	e.vpc("vpc-b", "10.0.0.0/16") // overlapping VPCs are fine
	e.is("same ID, other CIDR", e.d.EnsureVPC(bg, network.VPC{ID: "vpc-a", CIDR: prefix("10.1.0.0/16")}), network.ErrConflict)
	for _, bad := range []network.VPC{
		{ID: "a", CIDR: prefix("10.0.0.0/16")},
		{ID: "vpc-x", CIDR: prefix("10.0.0.0/8")},
		{ID: "vpc-x", CIDR: prefix("10.0.0.1/16")},
		{ID: "vpc-x", CIDR: prefix("169.254.0.0/16")},
		{ID: "vpc-x", CIDR: netip.PrefixFrom(e.r.Addr(), 28)},
	} {
		e.is("EnsureVPC "+bad.ID+" "+bad.CIDR.String(), e.d.EnsureVPC(bg, bad), network.ErrInvalid)
	}
	st := e.observe()
	var got []network.VPC
	for _, v := range st.VPCs {
		got = append(got, v.VPC)
		if v.DNS == nil {
			t.Errorf("VPC %s: no resolver running after EnsureVPC", v.VPC.ID)
		}
	}
	want := []network.VPC{{ID: "vpc-a", CIDR: prefix("10.0.0.0/16")}, {ID: "vpc-b", CIDR: prefix("10.0.0.0/16")}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("VPCs = %v, want %v", got, want)
	}
	e.ok("DeleteVPC", e.d.DeleteVPC(bg, "vpc-b"))
	e.ok("DeleteVPC again", e.d.DeleteVPC(bg, "vpc-b"))
	e.is("DeleteVPC bad ID", e.d.DeleteVPC(bg, "b"), network.ErrInvalid)
	if n := len(e.observe().VPCs); n != 1 {
		t.Errorf("after DeleteVPC: %d VPCs, want 1", n)
	}
}

func (s *suite) testSubnet(t *testing.T) {
	e := s.env(t)
	e.is("subnet of a missing VPC", e.d.EnsureSubnet(bg, "vpc-none", network.Subnet{ID: "subnet-1", CIDR: prefix("10.0.1.0/24")}), network.ErrNotFound)
	e.vpc("vpc-a", "10.0.0.0/16")
	e.subnet("vpc-a", "subnet-1", "10.0.1.0/24", true)
	e.subnet("vpc-a", "subnet-1", "10.0.1.0/24", true)
	e.subnet("vpc-a", "subnet-2", "10.0.2.0/24", false)
	e.subnet("vpc-a", "subnet-3", "10.0.3.0/24", false) // adjacent to 2: not merged
	e.is("outside the VPC", e.d.EnsureSubnet(bg, "vpc-a", network.Subnet{ID: "subnet-x", CIDR: prefix("10.1.0.0/24")}), network.ErrInvalid)
	e.is("bad ID", e.d.EnsureSubnet(bg, "vpc-a", network.Subnet{ID: "x", CIDR: prefix("10.0.9.0/24")}), network.ErrInvalid)
	e.is("same ID, other CIDR", e.d.EnsureSubnet(bg, "vpc-a", network.Subnet{ID: "subnet-1", CIDR: prefix("10.0.9.0/24")}), network.ErrConflict)
	e.is("overlap", e.d.EnsureSubnet(bg, "vpc-a", network.Subnet{ID: "subnet-x", CIDR: prefix("10.0.2.128/25")}), network.ErrConflict)
	e.subnet("vpc-a", "subnet-2", "10.0.2.0/24", true) // flip Public
	e.subnet("vpc-a", "subnet-1", "10.0.1.0/24", false)
	want := []network.Subnet{
		{ID: "subnet-1", CIDR: prefix("10.0.1.0/24")},
		{ID: "subnet-2", CIDR: prefix("10.0.2.0/24"), Public: true},
		{ID: "subnet-3", CIDR: prefix("10.0.3.0/24")},
	}
	if got := e.vpcState("vpc-a").Subnets; !reflect.DeepEqual(got, want) {
		t.Errorf("subnets = %v, want %v", got, want)
	}
	e.is("DeleteVPC with subnets", e.d.DeleteVPC(bg, "vpc-a"), network.ErrInUse)
	e.ok("DeleteSubnet", e.d.DeleteSubnet(bg, "vpc-a", "subnet-3"))
	e.ok("DeleteSubnet again", e.d.DeleteSubnet(bg, "vpc-a", "subnet-3"))
	e.ok("DeleteSubnet of a missing VPC", e.d.DeleteSubnet(bg, "vpc-none", "subnet-3"))
	if got := e.vpcState("vpc-a").Subnets; !reflect.DeepEqual(got, want[:2]) {
		t.Errorf("subnets = %v, want %v", got, want[:2])
	}
}

func (s *suite) testAttach(t *testing.T) {
	e := s.env(t)
	e.vpc("vpc-a", "10.0.0.0/16")
	e.vpc("vpc-b", "10.0.0.0/16")
	e.subnet("vpc-a", "subnet-1", "10.0.1.0/24", false)
	e.subnet("vpc-a", "subnet-2", "10.0.2.0/24", false)
	e.subnet("vpc-b", "subnet-9", "10.0.1.0/24", false)

	eth0 := ifc("i-1", "vpc-a", "subnet-1", 0, 1, "10.0.1.10/24")
	path, err := e.d.Attach(bg, eth0)
	e.ok("Attach", err)
	if path == "" {
		t.Fatal("Attach returned no namespace path")
	}
	again, err := e.d.Attach(bg, eth0)
	e.ok("Attach again", err)
	if again != path {
		t.Errorf("Attach again: path %q, want %q", again, path)
	}
	eth1 := ifc("i-1", "vpc-a", "subnet-2", 1, 2, "10.0.2.10/24")
	if p, err := e.d.Attach(bg, eth1); err != nil || p != path {
		t.Errorf("Attach eth1: %q, %v; want %q", p, err, path)
	}
	// The same IP in another VPC is another address.
	_, err = e.d.Attach(bg, ifc("i-9", "vpc-b", "subnet-9", 0, 9, "10.0.1.10/24"))
	e.ok("Attach the same IP in another VPC", err)

	bad := func(what string, f func(*network.Interface), want error) {
		t.Helper()
		i := ifc("i-2", "vpc-a", "subnet-1", 0, 3, "10.0.1.20/24")
		f(&i)
		_, err := e.d.Attach(bg, i)
		e.is(what, err, want)
	}
	bad("IP in use", func(i *network.Interface) { i.PrivateIP = addr("10.0.1.10") }, network.ErrConflict)
	bad("IP outside the subnet", func(i *network.Interface) { i.PrivateIP = addr("10.0.2.20") }, network.ErrInvalid)
	bad("reserved IP", func(i *network.Interface) { i.PrivateIP = addr("10.0.1.3") }, network.ErrInvalid)
	bad("wrong prefix", func(i *network.Interface) { i.PrefixLen = 16 }, network.ErrInvalid)
	bad("wrong gateway", func(i *network.Interface) { i.Gateway = addr("10.0.1.254") }, network.ErrInvalid)
	bad("multicast MAC", func(i *network.Interface) { i.MAC = net.HardwareAddr{1, 0, 0, 0, 0, 1} }, network.ErrInvalid)
	bad("device index", func(i *network.Interface) { i.Device = -1 }, network.ErrInvalid)
	bad("bad instance ID", func(i *network.Interface) { i.InstanceID = "x-2" }, network.ErrInvalid)
	bad("missing subnet", func(i *network.Interface) { i.SubnetID = "subnet-none" }, network.ErrNotFound)
	bad("missing VPC", func(i *network.Interface) { i.VPCID = "vpc-none" }, network.ErrNotFound)
	bad("eth0 of i-1 again, other MAC", func(i *network.Interface) { *i = eth0; i.MAC = net.HardwareAddr{2, 0, 0, 0, 0, 0x77} }, network.ErrConflict)
	bad("eth0 of i-1 again, other IP", func(i *network.Interface) { *i = eth0; i.PrivateIP = addr("10.0.1.99") }, network.ErrConflict)
	bad("eth0 of i-1 again, other subnet", func(i *network.Interface) { *i = eth1; i.Device = 0 }, network.ErrConflict)
	bad("i-1 in another VPC", func(i *network.Interface) { *i = ifc("i-1", "vpc-b", "subnet-9", 2, 4, "10.0.1.40/24") }, network.ErrConflict)
	e.is("DeleteSubnet in use", e.d.DeleteSubnet(bg, "vpc-a", "subnet-1"), network.ErrInUse)

	st := e.observe()
	var i1 *network.InstanceState
	for k := range st.Instances {
		if st.Instances[k].InstanceID == "i-1" {
			i1 = &st.Instances[k]
		}
	}
	if i1 == nil || i1.NetNS != path || len(i1.Interfaces) != 2 {
		t.Fatalf("Observe: instance i-1 = %+v, want 2 interfaces in %s", i1, path)
	}
	for k, want := range []network.Interface{eth0, eth1} {
		got := i1.Interfaces[k]
		if !bytes.Equal(got.MAC, want.MAC) {
			t.Errorf("eth%d MAC %s, want %s", k, got.MAC, want.MAC)
		}
		got.MAC = want.MAC
		if !reflect.DeepEqual(got, want) {
			t.Errorf("eth%d = %+v, want %+v", k, got, want)
		}
	}

	e.ok("Detach", e.d.Detach(bg, "i-1"))
	e.ok("Detach again", e.d.Detach(bg, "i-1"))
	e.is("Detach bad ID", e.d.Detach(bg, "x"), network.ErrInvalid)
	for _, is := range e.observe().Instances {
		if is.InstanceID == "i-1" {
			t.Errorf("Observe after Detach: %+v", is)
		}
	}
	e.ok("DeleteSubnet after Detach", e.d.DeleteSubnet(bg, "vpc-a", "subnet-1"))
	// The address is free again.
	e.subnet("vpc-a", "subnet-1", "10.0.1.0/24", false)
	_, err = e.d.Attach(bg, ifc("i-3", "vpc-a", "subnet-1", 0, 5, "10.0.1.10/24"))
	e.ok("Attach a freed IP", err)
}

func (s *suite) testPublicIP(t *testing.T) {
	e := s.env(t)
	e.vpc("vpc-a", "10.0.0.0/16")
	e.vpc("vpc-b", "10.0.0.0/16")
	p1, p2 := e.pub(1), e.pub(2)
	pubs := func(vpcID string) []network.PublicIP {
		t.Helper()
		return e.vpcState(vpcID).PublicIPs
	}
	check := func(what, vpcID string, want ...network.PublicIP) {
		t.Helper()
		if got := pubs(vpcID); !(len(got) == 0 && len(want) == 0) && !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %s public IPs = %v, want %v", what, vpcID, got, want)
		}
	}
	pip := func(pub netip.Addr, priv, vpcID string) network.PublicIP {
		return network.PublicIP{PublicIP: pub, PrivateIP: addr(priv), VPCID: vpcID}
	}

	e.ok("SetPublicIP", e.d.SetPublicIP(bg, "vpc-a", addr("10.0.1.10"), p1))
	e.ok("SetPublicIP again", e.d.SetPublicIP(bg, "vpc-a", addr("10.0.1.10"), p1))
	check("set", "vpc-a", pip(p1, "10.0.1.10", "vpc-a"))
	e.ok("move to another private IP", e.d.SetPublicIP(bg, "vpc-a", addr("10.0.1.20"), p1))
	check("moved", "vpc-a", pip(p1, "10.0.1.20", "vpc-a"))
	e.ok("second public IP for the same private IP", e.d.SetPublicIP(bg, "vpc-a", addr("10.0.1.20"), p2))
	check("replaced", "vpc-a", pip(p2, "10.0.1.20", "vpc-a"))
	e.ok("p1 again", e.d.SetPublicIP(bg, "vpc-a", addr("10.0.1.10"), p1))
	e.ok("move to another VPC", e.d.SetPublicIP(bg, "vpc-b", addr("10.0.1.10"), p2))
	check("moved across", "vpc-a", pip(p1, "10.0.1.10", "vpc-a"))
	check("moved across", "vpc-b", pip(p2, "10.0.1.10", "vpc-b"))

	e.is("outside the public range", e.d.SetPublicIP(bg, "vpc-a", addr("10.0.1.10"), addr("203.0.113.5")), network.ErrInvalid)
	e.is("the host's address", e.d.SetPublicIP(bg, "vpc-a", addr("10.0.1.10"), e.r.Addr().Next()), network.ErrInvalid)
	e.is("private IP outside the VPC", e.d.SetPublicIP(bg, "vpc-a", addr("10.9.1.10"), e.pub(3)), network.ErrInvalid)
	e.is("missing VPC", e.d.SetPublicIP(bg, "vpc-none", addr("10.0.1.10"), e.pub(3)), network.ErrNotFound)
	e.is("DeleteVPC with a public IP", e.d.DeleteVPC(bg, "vpc-b"), network.ErrInUse)

	e.ok("ClearPublicIP", e.d.ClearPublicIP(bg, p2))
	e.ok("ClearPublicIP again", e.d.ClearPublicIP(bg, p2))
	e.ok("ClearPublicIP never set", e.d.ClearPublicIP(bg, e.pub(4)))
	e.is("ClearPublicIP outside the range", e.d.ClearPublicIP(bg, addr("203.0.113.5")), network.ErrInvalid)
	check("cleared", "vpc-b")
	check("cleared elsewhere", "vpc-a", pip(p1, "10.0.1.10", "vpc-a"))
	e.ok("DeleteVPC after ClearPublicIP", e.d.DeleteVPC(bg, "vpc-b"))
}

func (s *suite) testDNS(t *testing.T) {
	e := s.env(t)
	dns := network.EC2DNS("us-east-1", []network.Host{{Private: addr("10.0.1.10"), Public: e.pub(1)}})
	e.is("SetDNS of a missing VPC", e.d.SetDNS(bg, "vpc-none", dns), network.ErrNotFound)
	e.is("SetDNS bad record", e.d.SetDNS(bg, "vpc-a", network.DNS{Records: []network.DNSRecord{{Name: "x"}}}), network.ErrInvalid)
	e.vpc("vpc-a", "10.0.0.0/16")
	e.ok("SetDNS", e.d.SetDNS(bg, "vpc-a", dns))
	if got := e.vpcState("vpc-a").DNS; got == nil || !reflect.DeepEqual(*got, dns) {
		t.Errorf("DNS = %+v, want %+v", got, dns)
	}
	// After a restart (Close) the resolver is gone until EnsureVPC.
	e.ok("Close", e.d.Close())
	if got := e.vpcState("vpc-a").DNS; got != nil {
		t.Errorf("DNS after Close = %+v, want nil", got)
	}
	e.vpc("vpc-a", "10.0.0.0/16")
	if got := e.vpcState("vpc-a").DNS; got == nil || len(got.Records) != 0 {
		t.Errorf("DNS after EnsureVPC = %+v, want empty", got)
	}
	e.ok("SetDNS after restart", e.d.SetDNS(bg, "vpc-a", dns))
	if got := e.vpcState("vpc-a").DNS; got == nil || !reflect.DeepEqual(*got, dns) {
		t.Errorf("DNS = %+v, want %+v", got, dns)
	}
}

func (s *suite) testTeardown(t *testing.T) {
	e := s.env(t)
	e.vpc("vpc-a", "10.0.0.0/16")
	e.subnet("vpc-a", "subnet-1", "10.0.1.0/24", true)
	_, err := e.d.Attach(bg, ifc("i-1", "vpc-a", "subnet-1", 0, 1, "10.0.1.10/24"))
	e.ok("Attach", err)
	e.ok("SetPublicIP", e.d.SetPublicIP(bg, "vpc-a", addr("10.0.1.10"), e.pub(1)))
	e.ok("Teardown", e.d.Teardown(bg))
	e.ok("Teardown again", e.d.Teardown(bg))
	if st := e.observe(); st.Host || len(st.VPCs) > 0 || len(st.Instances) > 0 {
		t.Errorf("Observe after Teardown: %+v, want nothing", st)
	}
	// And it builds again.
	e.ok("EnsureHost after Teardown", e.d.EnsureHost(bg))
	e.vpc("vpc-a", "10.0.0.0/16")
}
