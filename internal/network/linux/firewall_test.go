package linux_test

import (
	"context"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"

	"nubo/internal/network"
	"nubo/internal/network/linux"
	"nubo/internal/network/networktest"
)

// A blocked probe must wait this long to call it a timeout.
const dropWait = 400 * time.Millisecond

func allow(proto, from, to int, peer string) network.FirewallRule {
	return network.FirewallRule{Protocol: proto, FromPort: from, ToPort: to, Peer: netip.MustParsePrefix(peer)}
}

var everywhere = []network.FirewallRule{allow(-1, 0, 0, "0.0.0.0/0")}

// fwEnv is a public subnet with instances whose firewall a test sets.
type fwEnv struct {
	t    *testing.T
	d    *linux.Driver
	ns   map[string]string // instance → namespace path
	host string            // the host's address, as instances see it
	pubs map[string]string // instance → public IP
}

func newFWEnv(t *testing.T, instances ...string) fwEnv {
	d := newDriver(t)
	n := net10{t, d}
	n.vpc("vpc-a", "10.0.0.0/16")
	n.subnet("vpc-a", "subnet-1", "10.0.1.0/24", true)
	e := fwEnv{t: t, d: d, ns: map[string]string{}, pubs: map[string]string{}, host: d.HostIP().String()}
	for i, id := range instances {
		ip := netip.AddrFrom4([4]byte{10, 0, 1, byte(10 * (i + 1))})
		e.ns[id] = n.attachClosed("vpc-a", "subnet-1", id, ip.String()+"/24")
		e.pubs[id] = pub(d, i+1)
		n.public("vpc-a", ip.String(), e.pubs[id])
	}
	return e
}

func ipOf(i int) string { return netip.AddrFrom4([4]byte{10, 0, 1, byte(10 * (i + 1))}).String() }

func (e fwEnv) set(groups []network.SecurityGroup, ports ...network.Port) {
	e.t.Helper()
	if err := e.d.SetFirewall(context.Background(), "vpc-a", network.Firewall{Groups: groups, Ports: ports}); err != nil {
		e.t.Fatalf("SetFirewall: %v", err)
	}
}

func port(id string, groups ...string) network.Port {
	return network.Port{InstanceID: id, Groups: groups}
}

// expect runs probes concurrently (timeouts cost dropWait each) and checks
// their outcomes.
type probe struct {
	what string
	run  func() (networktest.Outcome, error)
	want networktest.Outcome
}

func (e fwEnv) expect(probes ...probe) {
	e.t.Helper()
	var wg sync.WaitGroup
	got := make([]networktest.Outcome, len(probes))
	errs := make([]error, len(probes))
	for i, p := range probes {
		wg.Add(1)
		go func() { defer wg.Done(); got[i], errs[i] = p.run() }()
	}
	wg.Wait()
	for i, p := range probes {
		if errs[i] != nil || got[i] != p.want {
			e.t.Errorf("%s: %s, %v; want %s", p.what, got[i], errs[i], p.want)
		}
	}
}

func tcp(from, addr string, want networktest.Outcome) probe {
	return probe{"tcp " + addr + " from " + nsName(from), func() (networktest.Outcome, error) { return networktest.ProbeTCP(from, addr, dropWait) }, want}
}

func udp(from, addr string, want networktest.Outcome) probe {
	return probe{"udp " + addr + " from " + nsName(from), func() (networktest.Outcome, error) { return networktest.ProbeUDP(from, addr, dropWait) }, want}
}

func ping(from, addr string, want networktest.Outcome) probe {
	return probe{"ping " + addr + " from " + nsName(from), func() (networktest.Outcome, error) {
		return networktest.Ping(from, netip.MustParseAddr(addr), dropWait)
	}, want}
}

func nsName(path string) string {
	if path == "" {
		return "the host"
	}
	return path
}

// The classic: 22 and 80 open to the world. From the host through the
// public IP, 22 and 80 connect, 443 (no rule) times out, and 8080 (a rule,
// no listener) is refused. UDP and ICMP the same way. (A UDP "refused" is
// an ICMP error; through a public IP its quoted header keeps the private
// address, which the stateless NAT does not rewrite, so the host's socket
// cannot match it: that case is checked from another instance.)
func TestFirewallAllowedRefusedTimeout(t *testing.T) {
	e := newFWEnv(t, "i-web", "i-a")
	web, a := e.ns["i-web"], e.ns["i-a"]
	for _, p := range []string{"22", "80", "443"} {
		networktest.ServeWho(t, web, "web", "0.0.0.0:"+p)
	}
	networktest.ServeUDPEcho(t, web, "0.0.0.0:53")
	networktest.ServeUDPEcho(t, web, "0.0.0.0:123")
	e.set([]network.SecurityGroup{{ID: "sg-web", Ingress: []network.FirewallRule{
		allow(6, 22, 22, "0.0.0.0/0"), allow(6, 80, 80, "0.0.0.0/0"), allow(6, 8080, 8080, "0.0.0.0/0"),
		allow(17, 53, 53, "0.0.0.0/0"), allow(17, 5353, 5353, "0.0.0.0/0"),
		allow(1, 8, -1, "0.0.0.0/0"),
	}, Egress: everywhere}, {ID: "sg-a", Egress: everywhere}}, port("i-web", "sg-web"), port("i-a", "sg-a"))
	p := e.pubs["i-web"]
	e.expect(
		tcp(a, ipOf(0)+":80", networktest.Open), tcp(a, ipOf(0)+":8080", networktest.Refused), tcp(a, ipOf(0)+":443", networktest.Timeout),
		udp(a, ipOf(0)+":53", networktest.Open), udp(a, ipOf(0)+":5353", networktest.Refused), udp(a, ipOf(0)+":123", networktest.Timeout),
		ping(a, ipOf(0), networktest.Open),
		tcp("", p+":22", networktest.Open), tcp("", p+":80", networktest.Open),
		tcp("", p+":443", networktest.Timeout), tcp("", p+":8080", networktest.Refused),
		udp("", p+":53", networktest.Open), udp("", p+":123", networktest.Timeout),
		ping("", p, networktest.Open),
	)
	// Without the ICMP rule, pings time out.
	e.set([]network.SecurityGroup{{ID: "sg-web", Ingress: []network.FirewallRule{allow(6, 22, 22, "0.0.0.0/0")}, Egress: everywhere}}, port("i-web", "sg-web"))
	e.expect(ping("", p, networktest.Timeout), tcp("", p+":22", networktest.Open), tcp("", p+":80", networktest.Timeout))
}

// Sources by CIDR: a /32 lets one instance in and not its neighbour; the
// host comes from its own address through public IPs.
func TestFirewallSources(t *testing.T) {
	e := newFWEnv(t, "i-web", "i-a", "i-c")
	web, a, c := e.ns["i-web"], e.ns["i-a"], e.ns["i-c"]
	networktest.ServeWho(t, web, "web", "0.0.0.0:80")
	open := network.SecurityGroup{ID: "sg-open", Ingress: everywhere, Egress: everywhere}
	e.set([]network.SecurityGroup{open, {ID: "sg-web", Ingress: []network.FirewallRule{
		allow(6, 80, 80, ipOf(1)+"/32"), allow(6, 80, 80, e.host+"/32"),
	}, Egress: everywhere}}, port("i-web", "sg-web"), port("i-a", "sg-open"), port("i-c", "sg-open"))
	e.expect(
		tcp(a, ipOf(0)+":80", networktest.Open),
		tcp(c, ipOf(0)+":80", networktest.Timeout),
		tcp("", e.pubs["i-web"]+":80", networktest.Open),
	)
}

// A rule naming a group arrives expanded to its members' addresses, and
// follows them: c joins the group and gets in; a leaves and is shut out.
// This is also the VPC default group's shape: members reach each other.
func TestFirewallGroupReference(t *testing.T) {
	e := newFWEnv(t, "i-web", "i-a", "i-c")
	web, a, c := e.ns["i-web"], e.ns["i-a"], e.ns["i-c"]
	networktest.ServeWho(t, web, "web", "0.0.0.0:80")
	fw := func(members ...string) []network.SecurityGroup {
		var from []network.FirewallRule
		for _, m := range members {
			from = append(from, allow(-1, 0, 0, m+"/32"))
		}
		return []network.SecurityGroup{{ID: "sg-default", Ingress: from, Egress: everywhere}}
	}
	e.set(fw(ipOf(0), ipOf(1)), port("i-web", "sg-default"), port("i-a", "sg-default"), port("i-c", "sg-default"))
	e.expect(tcp(a, ipOf(0)+":80", networktest.Open), tcp(c, ipOf(0)+":80", networktest.Timeout))
	e.set(fw(ipOf(0), ipOf(2)), port("i-web", "sg-default"), port("i-a", "sg-default"), port("i-c", "sg-default"))
	e.expect(tcp(a, ipOf(0)+":80", networktest.Timeout), tcp(c, ipOf(0)+":80", networktest.Open))
}

// Rules change under an open connection: one it does not concern leaves it
// alone; revoking the rule that allows it stops it; re-adding lets it on.
func TestFirewallLiveChange(t *testing.T) {
	e := newFWEnv(t, "i-web")
	networktest.ServeEcho(t, e.ns["i-web"], "0.0.0.0:7000")
	with := func(rules ...network.FirewallRule) {
		e.set([]network.SecurityGroup{{ID: "sg-web", Ingress: rules, Egress: everywhere}}, port("i-web", "sg-web"))
	}
	with(allow(6, 7000, 7000, "0.0.0.0/0"))
	conn, err := networktest.DialEcho(ctxT(t), "", e.pubs["i-web"]+":7000")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	roundTrip := func(what string, ok bool) {
		t.Helper()
		err := conn.RoundTrip(what, dropWait)
		if ok != (err == nil) {
			t.Errorf("%s: round trip: %v, want ok=%v", what, err, ok)
		}
	}
	roundTrip("before", true)
	with(allow(6, 7000, 7000, "0.0.0.0/0"), allow(6, 22, 22, "0.0.0.0/0"))
	roundTrip("after adding another rule", true)
	with(allow(6, 7000, 7000, "10.0.0.0/8"), allow(6, 7000, 7000, e.host+"/32"))
	roundTrip("after replacing the rule by two that still allow it", true)
	with(allow(6, 22, 22, "0.0.0.0/0"))
	roundTrip("after revoking", false)
}

// Five groups on one interface each open one port; a sixth port stays shut.
func TestFirewallFiveGroups(t *testing.T) {
	e := newFWEnv(t, "i-web")
	var groups []network.SecurityGroup
	var ids []string
	for i, p := range []int{8001, 8002, 8003, 8004, 8005, 8006} {
		networktest.ServeWho(t, e.ns["i-web"], "web", "0.0.0.0:"+itoa(p))
		if i < 5 {
			id := "sg-" + itoa(p)
			groups = append(groups, network.SecurityGroup{ID: id, Ingress: []network.FirewallRule{allow(6, p, p, "0.0.0.0/0")}, Egress: everywhere})
			ids = append(ids, id)
		}
	}
	e.set(groups, port("i-web", ids...))
	var probes []probe
	for i, p := range []int{8001, 8002, 8003, 8004, 8005, 8006} {
		want := networktest.Open
		if i == 5 {
			want = networktest.Timeout
		}
		probes = append(probes, tcp("", e.pubs["i-web"]+":"+itoa(p), want))
	}
	e.expect(probes...)
}

// Egress rules bind what an instance sends: only port 80 inside the VPC.
func TestFirewallEgress(t *testing.T) {
	e := newFWEnv(t, "i-web", "i-a")
	web, a := e.ns["i-web"], e.ns["i-a"]
	networktest.ServeWho(t, web, "web", "0.0.0.0:80")
	networktest.ServeWho(t, web, "web", "0.0.0.0:8080")
	e.set([]network.SecurityGroup{
		{ID: "sg-web", Ingress: everywhere, Egress: everywhere},
		{ID: "sg-a", Egress: []network.FirewallRule{allow(6, 80, 80, "10.0.0.0/16")}},
	}, port("i-web", "sg-web"), port("i-a", "sg-a"))
	e.expect(
		tcp(a, ipOf(0)+":80", networktest.Open),
		tcp(a, ipOf(0)+":8080", networktest.Timeout),
		tcp(web, ipOf(1)+":22", networktest.Timeout), // a's ingress: nothing
	)
}

func itoa(n int) string { return strconv.Itoa(n) }

// An established flow through a public IP stops when its subnet stops
// being public, and goes on when it is public again: flows already checked
// skip the per-packet checks, but every change to the router makes them be
// checked again.
func TestFirewallFlowFollowsPublicSubnet(t *testing.T) {
	e := newFWEnv(t, "i-web")
	networktest.ServeEcho(t, e.ns["i-web"], "0.0.0.0:7000")
	e.set([]network.SecurityGroup{{ID: "sg-web", Ingress: everywhere, Egress: everywhere}}, port("i-web", "sg-web"))
	conn, err := networktest.DialEcho(ctxT(t), "", e.pubs["i-web"]+":7000")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	n := net10{t, e.d}
	for _, c := range []struct {
		public bool
		ok     bool
	}{{true, true}, {false, false}, {true, true}} {
		n.subnet("vpc-a", "subnet-1", "10.0.1.0/24", c.public)
		// Back to public, the echo waits for TCP to retransmit what was
		// dropped, on a backoff that has grown past dropWait by then.
		wait := dropWait
		if c.ok {
			wait = 5 * time.Second
		}
		if err := conn.RoundTrip("ping", wait); (err == nil) != c.ok {
			t.Errorf("subnet public=%v: round trip %v, want ok=%v", c.public, err, c.ok)
		}
	}
}
