package linux_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"nubo/internal/network"
	"nubo/internal/network/netns"
	"nubo/internal/network/networktest"
)

// moveUnderLoad moves pubIP to (vpcID, priv) while the host opens a new
// connection to pubIP every 2 ms, and returns how long after the start of
// the call the first connection answered by the new owner was opened, and
// how many connections failed (those in flight during the switch are cut,
// as EC2 cuts them on reassociation).
func moveUnderLoad(t *testing.T, n net10, pubIP, vpcID, priv, newOwner string) (time.Duration, int) {
	t.Helper()
	type result struct {
		sent time.Time
		name string
		err  error
	}
	var (
		mu      sync.Mutex
		results []result
		wg      sync.WaitGroup
	)
	probe := func() {
		defer wg.Done()
		sent := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		name, _, err := networktest.Ask(ctx, "", pubIP+":8080")
		mu.Lock()
		results = append(results, result{sent, name, err})
		mu.Unlock()
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				wg.Add(1)
				go probe()
			}
		}
	}()
	time.Sleep(150 * time.Millisecond)
	start := time.Now()
	if err := n.d.SetPublicIP(context.Background(), vpcID, netip.MustParseAddr(priv), netip.MustParseAddr(pubIP)); err != nil {
		t.Fatalf("SetPublicIP: %v", err)
	}
	took := time.Since(start)
	time.Sleep(250 * time.Millisecond)
	close(stop)
	<-done
	wg.Wait()

	first, lost := time.Duration(-1), 0
	for _, r := range results {
		if r.err != nil {
			lost++
			t.Logf("lost: sent %v after the move began: %v", r.sent.Sub(start).Round(time.Microsecond), r.err)
		} else if r.name == newOwner && r.sent.After(start) && (first < 0 || r.sent.Sub(start) < first) {
			first = r.sent.Sub(start)
		}
	}
	t.Logf("moved %s to %s/%s: SetPublicIP took %v; the first connection %s answered was opened %v after it began; %d of %d connections lost",
		pubIP, vpcID, priv, took.Round(time.Microsecond), newOwner, first.Round(time.Microsecond), lost, len(results))
	return first, lost
}

// A public IP moved from instance A to B (in the VPC, then to another VPC)
// under a client loop: B answers within 100 ms, (almost) nothing is lost,
// and an established flow of another public IP lives on.
func TestMovePublicIP(t *testing.T) {
	d := newDriver(t)
	n := net10{t, d}
	n.vpc("vpc-a", "10.0.0.0/16")
	n.vpc("vpc-b", "10.0.0.0/16")
	n.subnet("vpc-a", "subnet-a", "10.0.1.0/24", true)
	n.subnet("vpc-b", "subnet-b", "10.0.1.0/24", true)
	a := n.attach("vpc-a", "subnet-a", "i-a", "10.0.1.10/24")
	b := n.attach("vpc-a", "subnet-a", "i-b", "10.0.1.20/24")
	c := n.attach("vpc-a", "subnet-a", "i-c", "10.0.1.30/24")
	x := n.attach("vpc-b", "subnet-b", "i-x", "10.0.1.10/24")
	networktest.ServeWho(t, a, "a", "10.0.1.10:8080")
	networktest.ServeWho(t, b, "b", "10.0.1.20:8080")
	networktest.ServeWho(t, x, "x", "10.0.1.10:8080")
	networktest.ServeEcho(t, c, "10.0.1.30:9000")
	p, q := pub(d, 1), pub(d, 2)
	n.public("vpc-a", "10.0.1.10", p)
	n.public("vpc-a", "10.0.1.30", q)

	echo, err := networktest.DialEcho(ctxT(t), "", q+":9000")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	if err := echo.RoundTrip("before", time.Second); err != nil {
		t.Fatal(err)
	}

	for _, m := range []struct{ vpc, priv, owner string }{
		{"vpc-a", "10.0.1.20", "b"}, // A → B in the VPC
		{"vpc-b", "10.0.1.10", "x"}, // to another VPC
		{"vpc-a", "10.0.1.10", "a"}, // and back
	} {
		first, lost := moveUnderLoad(t, n, p, m.vpc, m.priv, m.owner)
		if first < 0 || first > 100*time.Millisecond {
			t.Errorf("move to %s/%s: new owner answered after %v, want within 100ms", m.vpc, m.priv, first)
		}
		if lost > 2 {
			t.Errorf("move to %s/%s: %d requests lost", m.vpc, m.priv, lost)
		}
		if err := echo.RoundTrip("during "+m.owner, time.Second); err != nil {
			t.Errorf("established flow to %s after moving %s: %v", q, p, err)
		}
	}
}

// An interface (ENI) detached from instance A and attached to B with the
// same MAC and IP: a client reaches B at once. Clients hold no neighbour
// entry of the interface's MAC (the router answers ARP for the subnet on
// their ports: there is no L2 between instances), so nothing needs a
// gratuitous ARP: their entry for the IP, the MAC of their own port, stays
// valid through the move.
func TestMoveInterface(t *testing.T) {
	d := newDriver(t)
	n := net10{t, d}
	pfx := d.Config().Prefix
	n.vpc("vpc-a", "10.0.0.0/16")
	n.subnet("vpc-a", "subnet-1", "10.0.1.0/24", false)
	n.subnet("vpc-a", "subnet-2", "10.0.2.0/24", false)
	a := n.attach("vpc-a", "subnet-1", "i-a", "10.0.1.10/24")
	b := n.attach("vpc-a", "subnet-1", "i-b", "10.0.1.20/24")
	c := n.attach("vpc-a", "subnet-2", "i-c", "10.0.2.30/24") // the ENI's subnet
	e := n.attach("vpc-a", "subnet-1", "i-e", "10.0.1.40/24") // across the router
	n.open("vpc-a", network.Port{InstanceID: "i-a", Device: 1}, network.Port{InstanceID: "i-b", Device: 1})
	networktest.ServeWho(t, a, "a", "0.0.0.0:8080")
	networktest.ServeWho(t, b, "b", "0.0.0.0:8080")
	eni := network.Interface{
		InstanceID: "i-a", VPCID: "vpc-a", SubnetID: "subnet-2", Device: 1,
		MAC: net.HardwareAddr{2, 0xee, 0, 0, 0, 1}, PrivateIP: mustAddr("10.0.2.50"), PrefixLen: 24, Gateway: mustAddr("10.0.2.1"),
		SecondaryIPs: []netip.Addr{mustAddr("10.0.2.51")},
	}
	if _, err := d.Attach(context.Background(), eni); err != nil {
		t.Fatal(err)
	}
	for _, from := range []string{c, e} {
		for _, ip := range []string{"10.0.2.50", "10.0.2.51"} {
			if name, _, err := networktest.Ask(ctxT(t), from, ip+":8080"); err != nil || name != "a" {
				t.Fatalf("before the move: %s answered %q, %v; want a", ip, name, err)
			}
		}
	}
	before := neighbour(t, pfx+"-i-c", "10.0.2.50")
	if port := routerPortMAC(t, pfx+"-vpc-a", "i-c"); before != port {
		t.Errorf("i-c's neighbour entry for 10.0.2.50 is %q, want its port's MAC %q", before, port)
	}

	start := time.Now()
	if err := d.DetachInterface(context.Background(), "i-a", 1); err != nil {
		t.Fatal(err)
	}
	detached := time.Now()
	eni.InstanceID = "i-b"
	if _, err := d.Attach(context.Background(), eni); err != nil {
		t.Fatal(err)
	}
	attached := time.Now()
	took := func(from, ip string) time.Duration {
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			name, _, err := networktest.Ask(ctx, from, ip+":8080")
			cancel()
			if err == nil && name == "b" {
				return time.Since(attached)
			}
			if time.Since(attached) > 2*time.Second {
				t.Fatalf("%s from %s not answered by b 2s after the move: %q, %v", ip, from, name, err)
			}
			time.Sleep(time.Millisecond)
		}
	}
	first := took(c, "10.0.2.50")
	t.Logf("moved eth1: DetachInterface took %v, Attach %v; the client in the subnet reached B %v after Attach returned",
		detached.Sub(start).Round(time.Microsecond), attached.Sub(detached).Round(time.Microsecond), first.Round(time.Microsecond))
	// Timing is the benchmark's (make bench -only enis); a second here
	// would be a lost packet waiting for a retry.
	if first > 900*time.Millisecond {
		t.Errorf("B answered %v after Attach: a packet was lost", first)
	}
	if d := took(e, "10.0.2.51"); d > 900*time.Millisecond {
		t.Errorf("the secondary IP across the router answered %v after Attach", d)
	}
	if after := neighbour(t, pfx+"-i-c", "10.0.2.50"); after != before {
		t.Errorf("i-c's neighbour entry for 10.0.2.50 changed from %q to %q", before, after)
	}

	// A keeps eth0 and nothing of eth1: no link, rules or table.
	if name, _, err := networktest.Ask(ctxT(t), c, "10.0.1.10:8080"); err != nil || name != "a" {
		t.Errorf("A's eth0 after the move: %q, %v", name, err)
	}
	for _, args := range [][]string{{"link", "show", "eth1"}, {"rule", "show", "table", "1001"}, {"route", "show", "table", "1001"}} {
		out, _ := exec.Command("ip", append([]string{"-n", pfx + "-i-a"}, args...)...).CombinedOutput()
		if s := strings.TrimSpace(string(out)); s != "" && !strings.Contains(s, "does not exist") {
			t.Errorf("A after DetachInterface: ip %s: %s", strings.Join(args, " "), s)
		}
	}
}

// neighbour returns the MAC of a namespace's neighbour entry for ip.
func neighbour(t *testing.T, ns, ip string) string {
	t.Helper()
	out, err := exec.Command("ip", "-n", ns, "neigh", "show", ip).CombinedOutput()
	if err != nil {
		t.Fatalf("ip neigh: %v: %s", err, out)
	}
	f := strings.Fields(string(out))
	for i := range f {
		if f[i] == "lladdr" && i+1 < len(f) {
			return f[i+1]
		}
	}
	return ""
}

// routerPortMAC returns the MAC of an instance's eth0 port in a router.
func routerPortMAC(t *testing.T, router, inst string) string {
	t.Helper()
	out, err := exec.Command("ip", "-n", router, "-o", "link").CombinedOutput()
	if err != nil {
		t.Fatalf("ip link: %v: %s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "alias "+inst+" 0 ") {
			f := strings.Fields(line)
			for i := range f {
				if f[i] == "link/ether" && i+1 < len(f) {
					return f[i+1]
				}
			}
		}
	}
	t.Fatalf("no port of %s in %s", inst, router)
	return ""
}

// TestMoveUnderLoad: a client connecting to an interface's address every
// few milliseconds while the interface moves back and forth between two
// instances never loses a connection attempt: each one is answered by a
// holder or refused at once (between holders), none waits for a SYN retry
// (a second). Lost attempts were the failover's cost before: a SYN sent
// while the old port was being deleted vanished, and the unreachable
// route's ICMP error arrived while connect() held its socket, which the
// kernel keeps as a soft error until the retry.
func TestMoveUnderLoad(t *testing.T) {
	d := newDriver(t)
	n := net10{t, d}
	n.vpc("vpc-a", "10.0.0.0/16")
	n.subnet("vpc-a", "subnet-1", "10.0.1.0/24", false)
	a := n.attach("vpc-a", "subnet-1", "i-a", "10.0.1.10/24")
	b := n.attach("vpc-a", "subnet-1", "i-b", "10.0.1.20/24")
	c := n.attach("vpc-a", "subnet-1", "i-c", "10.0.1.30/24")
	n.open("vpc-a", network.Port{InstanceID: "i-a", Device: 1}, network.Port{InstanceID: "i-b", Device: 1})
	networktest.ServeWho(t, a, "a", "0.0.0.0:8080")
	networktest.ServeWho(t, b, "b", "0.0.0.0:8080")
	eni := network.Interface{InstanceID: "i-a", VPCID: "vpc-a", SubnetID: "subnet-1", Device: 1,
		MAC: net.HardwareAddr{2, 0xee, 0, 0, 0, 1}, PrivateIP: mustAddr("10.0.1.50"), PrefixLen: 24, Gateway: mustAddr("10.0.1.1")}
	if _, err := d.Attach(context.Background(), eni); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var slow []string
	refused, answered := 0, 0
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
			start := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			conn, err := netns.Dial(ctx, c, &net.Dialer{}, "tcp4", "10.0.1.50:8080")
			cancel()
			mu.Lock()
			switch took := time.Since(start); {
			case took > 900*time.Millisecond: // a SYN retry's wait: an attempt was lost
				slow = append(slow, fmt.Sprintf("%v (%v)", took, err))
			case err == nil:
				answered++
			case errors.Is(err, syscall.ECONNREFUSED):
				refused++
			default:
				slow = append(slow, err.Error())
			}
			mu.Unlock()
			if conn != nil {
				conn.Close()
			}
		}
	}()
	for i := 0; i < 10; i++ {
		time.Sleep(50 * time.Millisecond)
		if err := d.DetachInterface(context.Background(), eni.InstanceID, 1); err != nil {
			t.Fatal(err)
		}
		time.Sleep(30 * time.Millisecond)
		eni.InstanceID = map[string]string{"i-a": "i-b", "i-b": "i-a"}[eni.InstanceID]
		if _, err := d.Attach(context.Background(), eni); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(1500 * time.Millisecond) // a lost attempt shows within a second
	close(stop)
	<-done
	t.Logf("%d connections answered, %d refused between holders, slow: %v", answered, refused, slow)
	// A lost attempt per move was the bug; one slow attempt in a thousand
	// is left to a busy machine.
	if len(slow) > 1 || refused == 0 {
		t.Fatalf("lost or failed attempts: %v (refused %d)", slow, refused)
	}
}
