package networktest

import (
	"context"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"testing"
	"time"

	"nubo/internal/network"
)

// Cases of secondary IPs and of interfaces beyond eth0. With Harness.Traffic
// every instance runs a ServeWho server on port 8080 of all its addresses,
// named after the instance, so a probe tells who answered an address.

const whoPort = 8080

// attach attaches ifc and, with traffic, serves its instance's name.
func (e env) attach(i network.Interface) string {
	e.t.Helper()
	path, err := e.d.Attach(bg, i)
	e.ok(fmt.Sprintf("Attach %s eth%d", i.InstanceID, i.Device), err)
	return path
}

// serve starts the instance's ServeWho server (once its namespace exists).
func (e env) serve(path, name string) {
	e.t.Helper()
	if e.traffic {
		ServeWho(e.t, path, name, fmt.Sprintf("0.0.0.0:%d", whoPort))
	}
}

// open lets everything through the ports: these cases are not about
// security groups, and the data plane denies by default.
func (e env) open(vpcID string, ports ...network.Port) {
	e.t.Helper()
	all := []network.FirewallRule{{Protocol: -1, Peer: prefix("0.0.0.0/0")}}
	for k := range ports {
		ports[k].Groups = []string{"sg-open"}
	}
	fw := network.Firewall{Groups: []network.SecurityGroup{{ID: "sg-open", Ingress: all, Egress: all}}, Ports: ports}
	e.ok("SetFirewall", e.d.SetFirewall(bg, vpcID, fw))
}

// answers checks that a connection from the namespace at from to ip is
// answered by want, which sees the client's address src.
func (e env) answers(what, from string, ip netip.Addr, want string, src netip.Addr) {
	e.t.Helper()
	if !e.traffic {
		return
	}
	ctx, cancel := context.WithTimeout(bg, 3*time.Second)
	defer cancel()
	name, client, err := Ask(ctx, from, netip.AddrPortFrom(ip, whoPort).String())
	if err != nil || name != want || client.Addr() != src {
		e.t.Errorf("%s: %s answered %q to %v, %v; want %q to %s", what, ip, name, client, err, want, src)
	}
}

// silent checks that nothing answers ip from the namespace at from.
func (e env) silent(what, from string, ip netip.Addr) {
	e.t.Helper()
	if !e.traffic {
		return
	}
	if err := Unreachable(from, netip.AddrPortFrom(ip, whoPort).String(), 500*time.Millisecond); err != nil {
		e.t.Errorf("%s: %s: %v", what, ip, err)
	}
}

// observed returns the interfaces Observe reports for an instance.
func (e env) observed(inst string) []network.Interface {
	e.t.Helper()
	for _, is := range e.observe().Instances {
		if is.InstanceID == inst {
			return is.Interfaces
		}
	}
	return nil
}

// secondaries checks what Observe reports as eth<dev>'s secondary IPs.
func (e env) secondaries(what, inst string, dev int, want ...string) {
	e.t.Helper()
	var w []netip.Addr
	for _, a := range want {
		w = append(w, addr(a))
	}
	for _, i := range e.observed(inst) {
		if i.Device == dev {
			if !reflect.DeepEqual(i.SecondaryIPs, w) {
				e.t.Errorf("%s: %s eth%d secondary IPs %v, want %v", what, inst, dev, i.SecondaryIPs, w)
			}
			return
		}
	}
	e.t.Errorf("%s: Observe: no %s eth%d", what, inst, dev)
}

func withSecondaries(i network.Interface, ips ...string) network.Interface {
	i.SecondaryIPs = nil
	for _, a := range ips {
		i.SecondaryIPs = append(i.SecondaryIPs, addr(a))
	}
	return i
}

// An interface with two secondary IPs answers on each; one removed stops
// answering; a secondary IP that is another interface's primary, and a
// primary IP that is another's secondary, are conflicts.
func (s *suite) testSecondaryIPs(t *testing.T) {
	e := s.env(t)
	e.vpc("vpc-a", "10.0.0.0/16")
	e.subnet("vpc-a", "subnet-1", "10.0.1.0/24", false)
	e.subnet("vpc-a", "subnet-2", "10.0.2.0/24", false)
	e.open("vpc-a", network.Port{InstanceID: "i-1"}, network.Port{InstanceID: "i-2"}, network.Port{InstanceID: "i-3"})
	eth0 := ifc("i-1", "vpc-a", "subnet-1", 0, 1, "10.0.1.10/24")
	// Given out of order: Observe reports them sorted.
	p1 := e.attach(withSecondaries(eth0, "10.0.1.12", "10.0.1.11"))
	p2 := e.attach(ifc("i-2", "vpc-a", "subnet-1", 0, 2, "10.0.1.20/24"))
	p3 := e.attach(ifc("i-3", "vpc-a", "subnet-2", 0, 3, "10.0.2.30/24"))
	e.serve(p1, "i-1")
	e.secondaries("Attach", "i-1", 0, "10.0.1.11", "10.0.1.12")
	for _, ip := range []string{"10.0.1.10", "10.0.1.11", "10.0.1.12"} {
		e.answers("same subnet", p2, addr(ip), "i-1", addr("10.0.1.20"))
		e.answers("other subnet", p3, addr(ip), "i-1", addr("10.0.2.30"))
	}
	e.attach(withSecondaries(eth0, "10.0.1.11", "10.0.1.12"))
	e.secondaries("Attach again", "i-1", 0, "10.0.1.11", "10.0.1.12")

	e.attach(withSecondaries(eth0, "10.0.1.11"))
	e.secondaries("one removed", "i-1", 0, "10.0.1.11")
	e.silent("removed secondary IP", p2, addr("10.0.1.12"))
	e.answers("kept secondary IP", p2, addr("10.0.1.11"), "i-1", addr("10.0.1.20"))

	bad := func(what string, i network.Interface, want error) {
		t.Helper()
		_, err := e.d.Attach(bg, i)
		e.is(what, err, want)
	}
	bad("secondary IP that is another interface's primary", withSecondaries(eth0, "10.0.1.11", "10.0.1.20"), network.ErrConflict)
	bad("primary IP that is another interface's secondary", ifc("i-4", "vpc-a", "subnet-1", 0, 4, "10.0.1.11/24"), network.ErrConflict)
	bad("secondary IP outside the subnet", withSecondaries(eth0, "10.0.2.11"), network.ErrInvalid)
	bad("reserved secondary IP", withSecondaries(eth0, "10.0.1.2"), network.ErrInvalid)
	bad("secondary IP twice", withSecondaries(eth0, "10.0.1.11", "10.0.1.11"), network.ErrInvalid)
	bad("secondary IP the primary", withSecondaries(eth0, "10.0.1.10"), network.ErrInvalid)
	e.secondaries("after the refused calls", "i-1", 0, "10.0.1.11")
	e.answers("primary IP after the refused calls", p2, addr("10.0.1.10"), "i-1", addr("10.0.1.20"))
	e.answers("secondary IP after the refused calls", p2, addr("10.0.1.11"), "i-1", addr("10.0.1.20"))

	e.attach(eth0)
	e.secondaries("all removed", "i-1", 0)
	e.silent("all removed", p2, addr("10.0.1.11"))
	// A removed secondary is free to be another interface's primary.
	p4 := e.attach(ifc("i-4", "vpc-a", "subnet-1", 0, 4, "10.0.1.11/24"))
	e.open("vpc-a", network.Port{InstanceID: "i-1"}, network.Port{InstanceID: "i-2"}, network.Port{InstanceID: "i-3"}, network.Port{InstanceID: "i-4"})
	e.serve(p4, "i-4")
	e.answers("freed secondary IP as a primary", p2, addr("10.0.1.11"), "i-4", addr("10.0.1.20"))
}

// A secondary IP reassigned from A's eth0 to B's eth1 answers from B at
// once, and still does once A is updated without it.
func (s *suite) testReassign(t *testing.T) {
	e := s.env(t)
	e.vpc("vpc-a", "10.0.0.0/16")
	e.subnet("vpc-a", "subnet-1", "10.0.1.0/24", false)
	e.subnet("vpc-a", "subnet-2", "10.0.2.0/24", false)
	e.open("vpc-a", network.Port{InstanceID: "i-a"}, network.Port{InstanceID: "i-b"},
		network.Port{InstanceID: "i-b", Device: 1}, network.Port{InstanceID: "i-c"}, network.Port{InstanceID: "i-d"})
	a0 := ifc("i-a", "vpc-a", "subnet-1", 0, 1, "10.0.1.10/24")
	pa := e.attach(withSecondaries(a0, "10.0.1.50"))
	pb := e.attach(ifc("i-b", "vpc-a", "subnet-2", 0, 2, "10.0.2.20/24"))
	b1 := ifc("i-b", "vpc-a", "subnet-1", 1, 3, "10.0.1.21/24")
	e.attach(b1)
	pc := e.attach(ifc("i-c", "vpc-a", "subnet-1", 0, 4, "10.0.1.30/24"))
	pd := e.attach(ifc("i-d", "vpc-a", "subnet-2", 0, 5, "10.0.2.40/24"))
	e.serve(pa, "i-a")
	e.serve(pb, "i-b")
	vip := addr("10.0.1.50")
	e.answers("before", pc, vip, "i-a", addr("10.0.1.30"))

	e.attach(withSecondaries(b1, "10.0.1.50"))
	e.secondaries("moved", "i-a", 0)
	e.secondaries("moved", "i-b", 1, "10.0.1.50")
	e.answers("moved", pc, vip, "i-b", addr("10.0.1.30"))
	e.answers("moved, from the other subnet", pd, vip, "i-b", addr("10.0.2.40"))

	e.attach(a0) // A's records caught up
	e.attach(withSecondaries(b1, "10.0.1.50"))
	e.secondaries("A updated", "i-a", 0)
	e.secondaries("A updated", "i-b", 1, "10.0.1.50")
	e.answers("A updated", pc, vip, "i-b", addr("10.0.1.30"))
	e.answers("A's primary IP", pc, addr("10.0.1.10"), "i-a", addr("10.0.1.30"))
	e.answers("B's eth1 primary IP", pc, addr("10.0.1.21"), "i-b", addr("10.0.1.30"))
}

// An interface attached to a running instance works, answers from its own
// addresses through itself (source routing), and DetachInterface removes
// it and nothing else.
func (s *suite) testSecondInterface(t *testing.T) {
	e := s.env(t)
	e.vpc("vpc-a", "10.0.0.0/16")
	e.subnet("vpc-a", "subnet-1", "10.0.1.0/24", false)
	e.subnet("vpc-a", "subnet-2", "10.0.2.0/24", false)
	e.open("vpc-a", network.Port{InstanceID: "i-1"}, network.Port{InstanceID: "i-1", Device: 1}, network.Port{InstanceID: "i-2"})
	eth0 := ifc("i-1", "vpc-a", "subnet-1", 0, 1, "10.0.1.10/24")
	p1 := e.attach(eth0)
	// The client is in eth0's subnet: a reply from eth1's addresses by the
	// main table would leave through eth0, and eth0's port drops it.
	p2 := e.attach(ifc("i-2", "vpc-a", "subnet-1", 0, 2, "10.0.1.20/24"))
	e.serve(p1, "i-1")
	e.answers("eth0", p2, addr("10.0.1.10"), "i-1", addr("10.0.1.20"))

	eth1 := withSecondaries(ifc("i-1", "vpc-a", "subnet-2", 1, 3, "10.0.2.11/24"), "10.0.2.12")
	if p := e.attach(eth1); p != p1 {
		t.Errorf("Attach eth1 to a running instance: namespace %q, want %q", p, p1)
	}
	for _, ip := range []string{"10.0.1.10", "10.0.2.11", "10.0.2.12"} {
		e.answers("with eth1", p2, addr(ip), "i-1", addr("10.0.1.20"))
	}
	if got := e.observed("i-1"); len(got) != 2 {
		t.Errorf("Observe: i-1 has %d interfaces, want 2", len(got))
	}

	e.ok("DetachInterface", e.d.DetachInterface(bg, "i-1", 1))
	got := e.observed("i-1")
	if len(got) != 1 || got[0].Device != 0 {
		t.Errorf("Observe after DetachInterface: %+v, want eth0 only", got)
	}
	e.answers("eth0 after DetachInterface", p2, addr("10.0.1.10"), "i-1", addr("10.0.1.20"))
	e.silent("eth1 after DetachInterface", p2, addr("10.0.2.11"))
	e.silent("eth1's secondary after DetachInterface", p2, addr("10.0.2.12"))
	e.ok("DetachInterface again", e.d.DetachInterface(bg, "i-1", 1))
	e.ok("DetachInterface of an unknown instance", e.d.DetachInterface(bg, "i-none", 1))
	e.is("DetachInterface bad ID", e.d.DetachInterface(bg, "x", 1), network.ErrInvalid)
	e.is("DetachInterface bad device", e.d.DetachInterface(bg, "i-1", -1), network.ErrInvalid)
	e.is("a primary IP clash is still a conflict", func() error {
		_, err := e.d.Attach(bg, ifc("i-3", "vpc-a", "subnet-1", 0, 5, "10.0.1.10/24"))
		return err
	}(), network.ErrConflict)

	// Its addresses are free, and it attaches again.
	e.attach(eth1)
	if got := e.observed("i-1"); len(got) != 2 || !slices.Equal(got[1].SecondaryIPs, eth1.SecondaryIPs) {
		t.Errorf("Observe after attaching eth1 again: %+v", got)
	}
	e.answers("eth1 again", p2, addr("10.0.2.11"), "i-1", addr("10.0.1.20"))
	e.ok("DetachInterface eth0", e.d.DetachInterface(bg, "i-1", 0))
	e.answers("eth1 without eth0", p2, addr("10.0.2.12"), "i-1", addr("10.0.1.20"))
	e.silent("eth0 after DetachInterface", p2, addr("10.0.1.10"))
	e.ok("Detach", e.d.Detach(bg, "i-1"))
	if got := e.observed("i-1"); len(got) != 0 {
		t.Errorf("Observe after Detach: %+v", got)
	}
}
