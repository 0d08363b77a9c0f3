package linux_test

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

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
