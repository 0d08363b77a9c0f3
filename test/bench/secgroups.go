package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	osexec "os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"nubo/internal/network/netns"
	"nubo/internal/nubotest"
)

// The security group benchmarks measure, against a real `nubo serve` with
// running instances, how long a rule change takes to reach the data plane
// ("changes take effect on running instances within 50 ms of the API call
// returning"), and how many rules one host holds before that stops being
// true (target: at least 10,000). The data plane's throughput with 1,000
// rules against one is netbench's (benchNetwork).
//
// The probe: a UDP echo server on port 7 inside a probe instance's network
// namespace, in a group of its own whose only ingress rule is the one being
// changed (UDP 7 from 0.0.0.0/0), reached from the host at the instance's
// public IP (the host link, the VPC router's NAT and firewall, the
// instance's veth: the path a user's packet takes). Every probe datagram
// leaves from a fresh socket, so it is a new flow (a new source port) with a
// unique payload, and only its own echo counts.
const (
	sgTarget        = 50 * time.Millisecond // the bound on a change
	sgTargetRules   = 10000                 // the bound on rules per host
	sgProbeInterval = time.Millisecond      // a fresh probe this often
	sgProbeWait     = 25 * time.Millisecond // how long a probe waits for its echo
	sgQuiet         = 50 * time.Millisecond // closed: this long of unanswered probes
	sgGiveUp        = 5 * time.Second       // a change not seen by then is an error
	sgPort          = 7                     // the probe's UDP port (echo)
	sgRulesPerDir   = 50                    // filler rules per group and direction (AWS's quota is 60)
	sgGroupsPerInst = 5                     // filler groups per instance (EC2's limit per interface)
)

// benchSecurityGroups prints rule propagation latency over changes rule
// changes (half authorizes, half revokes), then the same over scaleChanges
// changes at growing numbers of rules, up to maxRules, within budget.
func benchSecurityGroups(ctx context.Context, changes, scaleChanges, maxRules int, budget time.Duration) error {
	if os.Geteuid() != 0 {
		fmt.Println("\nsecurity groups: skipped (needs root)")
		return nil
	}
	start := time.Now()
	// Room for the scale levels' instances (t3.nano: 2 vCPUs, 512 MiB;
	// limits, not reservations).
	srv, c, stop, err := benchServer(ctx, "debian-12-minimal", "--host-vcpus", "1024", "--host-memory-mib", "262144")
	if err != nil {
		return err
	}
	defer stop()
	b := &sgBench{c: c, srv: srv}
	defer b.terminateAll(ctx)
	if err := b.setup(ctx); err != nil {
		return err
	}
	defer b.echo.Close()

	fmt.Printf("\nsecurity groups (debian-12-minimal t3.nano; UDP probes from the host to the public IP every %s, each a new flow)\n", sgProbeInterval)
	if la, err := os.ReadFile("/proc/loadavg"); err == nil { // figures shift with whatever else runs here
		fmt.Printf("  host load average before: %s\n", strings.Join(strings.Fields(string(la))[:3], " "))
	}
	fmt.Printf("  setup (server, probe instance): %s\n", time.Since(start).Round(time.Millisecond))
	res, err := b.propagation(ctx, changes/2)
	if err != nil {
		return err
	}
	fmt.Printf("  rule propagation, API call returned → traffic (%d authorizes, %d revokes; target ≤ %s):\n", len(res.open), len(res.closed), sgTarget)
	fmt.Printf("    authorize → open    %s  %s\n", dist(res.open), verdict(pct(res.open, 99) <= sgTarget))
	fmt.Printf("    revoke → closed     %s  %s\n", dist(res.closed), verdict(pct(res.closed, 99) <= sgTarget))
	fmt.Printf("    (the API calls themselves: authorize %s, revoke %s)\n", dist(res.apiAuth), dist(res.apiRevoke))

	return b.scale(ctx, scaleChanges, maxRules, start.Add(budget))
}

type sgBench struct {
	c       *ec2.Client
	srv     *nubotest.Server
	image   string
	vpc     string
	probeSG string
	echo    net.PacketConn
	p       *prober
	mu      sync.Mutex
	ids     []string // every instance launched, for the cleanup
}

// setup launches the probe instance in a group of its own (no rules in,
// the default egress) and serves UDP echo on port 7 in its namespace.
func (b *sgBench) setup(ctx context.Context) error {
	image, err := imageID(ctx, b.c, "debian-12-minimal")
	if err != nil {
		return err
	}
	b.image = aws.ToString(image)
	vpcs, err := b.c.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{Filters: []types.Filter{{Name: aws.String("is-default"), Values: []string{"true"}}}})
	if err != nil || len(vpcs.Vpcs) != 1 {
		return fmt.Errorf("the default VPC: %v", err)
	}
	b.vpc = aws.ToString(vpcs.Vpcs[0].VpcId)
	if b.probeSG, err = b.createGroup(ctx, "bench-probe"); err != nil {
		return err
	}
	id, err := b.launch(ctx, []string{b.probeSG})
	if err != nil {
		return err
	}
	if err := waitRunning(ctx, b.c, []string{id}, 20*time.Millisecond); err != nil {
		return err
	}
	d, err := b.c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if err != nil || len(d.Reservations) == 0 || len(d.Reservations[0].Instances) == 0 {
		return fmt.Errorf("describing the probe instance: %v", err)
	}
	pub := aws.ToString(d.Reservations[0].Instances[0].PublicIpAddress)
	ip, err := netip.ParseAddr(pub)
	if err != nil {
		return fmt.Errorf("the probe instance's public IP %q: %v", pub, err)
	}
	pid, err := b.srv.InstancePID(id)
	if err != nil {
		return err
	}
	if b.echo, err = netns.ListenPacket("/proc/"+pid+"/ns/net", "udp4", fmt.Sprintf("0.0.0.0:%d", sgPort)); err != nil {
		return fmt.Errorf("UDP echo in %s: %w", id, err)
	}
	go func(pc net.PacketConn) {
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(buf[:n], from)
		}
	}(b.echo)
	b.p = &prober{dst: net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, sgPort))}
	// No rule lets UDP 7 in yet: a probe must go unanswered.
	if b.p.once() {
		return fmt.Errorf("UDP %d on %s answers before any rule allows it", sgPort, pub)
	}
	return nil
}

func (b *sgBench) createGroup(ctx context.Context, name string) (string, error) {
	g, err := b.c.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{GroupName: aws.String(name), Description: aws.String("nubo bench " + name), VpcId: aws.String(b.vpc)})
	if err != nil {
		return "", err
	}
	return aws.ToString(g.GroupId), nil
}

func (b *sgBench) launch(ctx context.Context, groups []string) (string, error) {
	out, err := b.c.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(b.image), InstanceType: types.InstanceTypeT3Nano,
		MinCount: aws.Int32(1), MaxCount: aws.Int32(1), SecurityGroupIds: groups})
	if err != nil {
		return "", err
	}
	id := aws.ToString(out.Instances[0].InstanceId)
	b.mu.Lock()
	b.ids = append(b.ids, id)
	b.mu.Unlock()
	return id, nil
}

// terminateAll terminates every instance launched and waits for them (the
// server's --cleanup afterwards removes anything left).
func (b *sgBench) terminateAll(ctx context.Context) {
	if len(b.ids) == 0 {
		return
	}
	t0 := time.Now()
	if _, err := b.c.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: b.ids}); err != nil {
		fmt.Fprintln(os.Stderr, "bench: terminating:", err)
		return
	}
	err := ec2.NewInstanceTerminatedWaiter(b.c, func(o *ec2.InstanceTerminatedWaiterOptions) {
		o.MinDelay, o.MaxDelay = 100*time.Millisecond, 500*time.Millisecond
	}).Wait(ctx, &ec2.DescribeInstancesInput{InstanceIds: b.ids}, 2*time.Minute)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench: waiting for terminated:", err)
		return
	}
	fmt.Printf("  cleanup: %d instances terminated in %s\n", len(b.ids), time.Since(t0).Round(time.Millisecond))
}

type propagation struct {
	open, closed       []time.Duration // API return → first passing probe / last one
	apiAuth, apiRevoke []time.Duration // the calls' own round trips
}

// propagation authorizes and revokes the probe rule pairs times, each
// change once the previous one is seen in the data plane.
func (b *sgBench) propagation(ctx context.Context, pairs int) (propagation, error) {
	var r propagation
	perm := []types.IpPermission{{IpProtocol: aws.String("udp"), FromPort: aws.Int32(sgPort), ToPort: aws.Int32(sgPort),
		IpRanges: []types.IpRange{{CidrIp: aws.String("0.0.0.0/0")}}}}
	for i := 0; i < pairs; i++ {
		t := time.Now()
		if _, err := b.c.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: aws.String(b.probeSG), IpPermissions: perm}); err != nil {
			return r, err
		}
		t0 := time.Now()
		r.apiAuth = append(r.apiAuth, t0.Sub(t))
		d, err := b.p.untilOpen(t0)
		if err != nil {
			return r, fmt.Errorf("authorize %d: %w", i+1, err)
		}
		r.open = append(r.open, d)

		t = time.Now()
		if _, err := b.c.RevokeSecurityGroupIngress(ctx, &ec2.RevokeSecurityGroupIngressInput{GroupId: aws.String(b.probeSG), IpPermissions: perm}); err != nil {
			return r, err
		}
		t0 = time.Now()
		r.apiRevoke = append(r.apiRevoke, t0.Sub(t))
		if d, err = b.p.untilClosed(t0); err != nil {
			return r, fmt.Errorf("revoke %d: %w", i+1, err)
		}
		r.closed = append(r.closed, d)
	}
	return r, nil
}

// prober sends UDP probes to dst, each from a fresh socket.
type prober struct {
	dst *net.UDPAddr
	seq atomic.Uint64
}

// send sends one probe and returns its send time; if its echo comes back
// within sgProbeWait, the send time is also delivered on answered (never
// blocking: a full channel drops it).
func (p *prober) send(answered chan<- time.Time) (time.Time, error) {
	conn, err := net.DialUDP("udp4", nil, p.dst)
	if err != nil {
		return time.Time{}, err
	}
	payload := []byte("nubo-bench-" + strconv.FormatUint(p.seq.Add(1), 10))
	sent := time.Now()
	if _, err := conn.Write(payload); err != nil {
		conn.Close()
		return sent, err
	}
	go func() {
		defer conn.Close()
		_ = conn.SetReadDeadline(sent.Add(sgProbeWait))
		buf := make([]byte, 64)
		n, err := conn.Read(buf)
		if err == nil && bytes.Equal(buf[:n], payload) {
			select {
			case answered <- sent:
			default:
			}
		}
	}()
	return sent, nil
}

// once sends one probe and says whether it was answered.
func (p *prober) once() bool {
	answered := make(chan time.Time, 1)
	if _, err := p.send(answered); err != nil {
		return false
	}
	select {
	case <-answered:
		return true
	case <-time.After(sgProbeWait + 5*time.Millisecond):
		return false
	}
}

// untilOpen probes every sgProbeInterval from t0 (just after the API call
// returned) until a probe is answered, and returns the time from t0 to the
// send time of the earliest-sent answered probe. The rule reached the data
// plane after the probe before it was sent and before this one arrived (a
// few µs on this path), so the figure is the true latency rounded up to the
// probe grid: high by at most one interval (1 ms).
func (p *prober) untilOpen(t0 time.Time) (time.Duration, error) {
	answered := make(chan time.Time, int(sgGiveUp/sgProbeInterval)+16)
	timer := time.NewTimer(0)
	defer timer.Stop()
	next := t0
	for {
		if now := time.Now(); !now.Before(next) {
			if _, err := p.send(answered); err != nil {
				return 0, err
			}
			if next = next.Add(sgProbeInterval); next.Before(now) {
				next = now.Add(sgProbeInterval) // late: keep the interval, skip the missed ones
			}
			if now.Sub(t0) > sgGiveUp {
				return 0, fmt.Errorf("no probe answered %s after the call returned", sgGiveUp)
			}
		}
		timer.Reset(time.Until(next))
		select {
		case first := <-answered:
			// An earlier probe's echo may still be on its way (they
			// are read on separate goroutines): give them a moment.
			grace := time.After(3 * time.Millisecond)
			for done := false; !done; {
				select {
				case s := <-answered:
					if s.Before(first) {
						first = s
					}
				case <-grace:
					done = true
				}
			}
			return first.Sub(t0), nil
		case <-timer.C:
		}
	}
}

// untilClosed probes every sgProbeInterval from t0 (just after the API
// call returned) until sgQuiet's worth of consecutive probes went
// unanswered (each given sgProbeWait for its echo), and returns the time
// from t0 to the send time of the first probe after the last answered
// one: the revoke took effect between that answered probe's arrival and
// this probe's, so again high by at most one interval.
func (p *prober) untilClosed(t0 time.Time) (time.Duration, error) {
	answered := make(chan time.Time, int(sgGiveUp/sgProbeInterval)+16)
	timer := time.NewTimer(0)
	defer timer.Stop()
	var sends []time.Time
	var last time.Time // send time of the latest-sent answered probe
	next := t0
	for {
		now := time.Now()
		if !now.Before(next) {
			s, err := p.send(answered)
			if err != nil {
				return 0, err
			}
			sends = append(sends, s)
			if next = next.Add(sgProbeInterval); next.Before(now) {
				next = now.Add(sgProbeInterval)
			}
		}
		for drained := false; !drained; {
			select {
			case s := <-answered:
				if s.After(last) {
					last = s
				}
			default:
				drained = true
			}
		}
		if now.Sub(t0) > sgGiveUp {
			return 0, fmt.Errorf("probes still answered %s after the call returned", sgGiveUp)
		}
		// The first probe sent after the last answered one.
		i := sort.Search(len(sends), func(i int) bool { return sends[i].After(last) })
		if i < len(sends) && now.Sub(sends[i]) >= sgQuiet+sgProbeWait {
			return sends[i].Sub(t0), nil
		}
		timer.Reset(time.Until(next))
		select {
		case s := <-answered:
			if s.After(last) {
				last = s
			}
		case <-timer.C:
		}
	}
}

// scale adds filler groups (sgRulesPerDir distinct rules in, as many out,
// five groups per instance so every rule is programmed) in steps and
// measures propagation at each level, until p99 passes sgTarget (but at
// least up to sgTargetRules), maxRules is reached or the next level would
// not fit before deadline.
func (b *sgBench) scale(ctx context.Context, changes, maxRules int, deadline time.Time) error {
	fmt.Printf("  scale: rules held on this host vs rule propagation (%d changes per level, half each way; groups of %d in + %d out rules,\n"+
		"  %d groups per instance; target ≥ %d rules with p99 ≤ %s over all of a level's changes; \"in router\": set elements\n"+
		"  programmed, one being the probe group's allow-all egress)\n", changes, sgRulesPerDir, sgRulesPerDir, sgGroupsPerInst, sgTargetRules, sgTarget)
	fmt.Printf("    %7s %7s %6s %9s  %-30s %-30s %8s %s\n", "rules", "groups", "inst.", "in router", "authorize → open p50/p99/max", "revoke → closed p50/p99/max", "all p99", "setup")
	var (
		groups   [][]string // per filler instance, its groups
		pending  []string   // groups made but not yet on an instance
		nGroups  int
		perGroup time.Duration // the last level's setup time per group added
		lastMeas time.Duration // the last level's measurement time
		firstBad = 0
		lastGood = 0
		reason   = "every level measured"
	)
	const cleanupReserve = 25 * time.Second // terminating everything at the end
	for _, rules := range []int{1000, 2500, 5000, 10000, 20000, 40000} {
		if rules > maxRules {
			reason = fmt.Sprintf("-sg-max-rules %d", maxRules)
			break
		}
		want := rules / (2 * sgRulesPerDir)
		if perGroup > 0 && time.Now().Add(time.Duration(want-nGroups)*perGroup+lastMeas+cleanupReserve).After(deadline) {
			reason = fmt.Sprintf("the next level (%d rules) would not fit the time budget", rules)
			break
		}
		t0 := time.Now()
		added := want - nGroups
		made, err := parallel(ctx, added, 4, func(i int) (string, error) { return b.fillerGroup(ctx, nGroups+i) })
		if err != nil {
			return err
		}
		nGroups = want
		pending = append(pending, made...)
		var chunks [][]string
		for len(pending) > 0 {
			n := min(sgGroupsPerInst, len(pending))
			chunks, pending = append(chunks, pending[:n]), pending[n:]
		}
		ids, err := parallel(ctx, len(chunks), 4, func(i int) (string, error) { return b.launch(ctx, chunks[i]) })
		if err != nil {
			return err
		}
		groups = append(groups, chunks...)
		if err := waitRunning(ctx, b.c, ids, 100*time.Millisecond); err != nil {
			return err
		}
		// One change first, not counted: the firewall has caught up with
		// the new instances once it is seen.
		if _, err := b.propagation(ctx, 1); err != nil {
			return err
		}
		setup := time.Since(t0)
		perGroup = setup / time.Duration(max(added, 1))
		held := b.routerElements()
		t1 := time.Now()
		res, err := b.propagation(ctx, changes/2)
		if err != nil {
			return fmt.Errorf("at %d rules: %w", rules, err)
		}
		lastMeas = time.Since(t1)
		all := pct(append(append([]time.Duration(nil), res.open...), res.closed...), 99)
		fmt.Printf("    %7d %7d %6d %9s  %-30s %-30s %8s %s\n", rules, nGroups, len(groups), held, short(res.open), short(res.closed), ms(all), setup.Round(100*time.Millisecond))
		if all > sgTarget && firstBad == 0 {
			firstBad = rules
		}
		if firstBad == 0 {
			lastGood = rules
		}
		// Past a level over the target, measure on only up to the
		// target's (so it is always shown).
		if firstBad > 0 && rules >= sgTargetRules {
			break
		}
	}
	switch {
	case firstBad > 0:
		within := "none"
		if lastGood > 0 {
			within = strconv.Itoa(lastGood)
		}
		fmt.Printf("    first level with p99 > %s: %d rules (the largest within it: %s)  %s\n", sgTarget, firstBad, within, verdict(lastGood >= sgTargetRules))
	default:
		fmt.Printf("    p99 within %s at every level: none up to %d rules (stopped: %s)  %s\n", sgTarget, lastGood, reason, verdict(lastGood >= sgTargetRules))
	}
	return nil
}

// fillerGroup makes group i: sgRulesPerDir TCP rules in and as many out,
// each with its own /32 peer and port (nothing merges into a larger box),
// without the default allow-all egress rule (which would swallow them).
func (b *sgBench) fillerGroup(ctx context.Context, i int) (string, error) {
	id, err := b.createGroup(ctx, fmt.Sprintf("bench-fill-%04d", i))
	if err != nil {
		return "", err
	}
	if _, err := b.c.RevokeSecurityGroupEgress(ctx, &ec2.RevokeSecurityGroupEgressInput{GroupId: aws.String(id),
		IpPermissions: []types.IpPermission{{IpProtocol: aws.String("-1"), IpRanges: []types.IpRange{{CidrIp: aws.String("0.0.0.0/0")}}}}}); err != nil {
		return "", err
	}
	perms := func(dir int) []types.IpPermission {
		var ps []types.IpPermission
		for r := 0; r < sgRulesPerDir; r++ {
			n := (i*2+dir)*sgRulesPerDir + r // unique across every filler rule
			peer := netip.AddrFrom4([4]byte{100, byte(64 + n>>16), byte(n >> 8), byte(n)})
			port := int32(1024 + n%60000)
			ps = append(ps, types.IpPermission{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(port), ToPort: aws.Int32(port),
				IpRanges: []types.IpRange{{CidrIp: aws.String(peer.String() + "/32")}}})
		}
		return ps
	}
	if _, err := b.c.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: aws.String(id), IpPermissions: perms(0)}); err != nil {
		return "", err
	}
	if _, err := b.c.AuthorizeSecurityGroupEgress(ctx, &ec2.AuthorizeSecurityGroupEgressInput{GroupId: aws.String(id), IpPermissions: perms(1)}); err != nil {
		return "", err
	}
	return id, nil
}

// routerElements counts the elements of the security group sets in the
// default VPC's router (see internal/network/linux/firewall.go): a check
// that the rules are really programmed. Best effort: "?" when unreadable.
func (b *sgBench) routerElements() string {
	prefix := ""
	for i, a := range b.srv.Args {
		if a == "--net-prefix" && i+1 < len(b.srv.Args) {
			prefix = b.srv.Args[i+1]
		}
	}
	ns := filepath.Join("/run/netns", prefix+"-"+b.vpc)
	out, err := osexec.Command("nsenter", "--net="+ns, "nft", "-j", "list", "sets", "ip").Output()
	if err != nil {
		return "?"
	}
	var doc struct {
		Nftables []struct {
			Set *struct {
				Name string            `json:"name"`
				Elem []json.RawMessage `json:"elem"`
			} `json:"set"`
		} `json:"nftables"`
	}
	if json.Unmarshal(out, &doc) != nil {
		return "?"
	}
	n := 0
	for _, o := range doc.Nftables {
		if o.Set != nil && (strings.HasPrefix(o.Set.Name, "in-sg-") || strings.HasPrefix(o.Set.Name, "out-sg-")) {
			n += len(o.Set.Elem)
		}
	}
	return strconv.Itoa(n)
}

// parallel runs f(0..n-1) on workers goroutines and returns the results in
// order; the first error wins.
func parallel(ctx context.Context, n, workers int, f func(i int) (string, error)) ([]string, error) {
	out := make([]string, n)
	var (
		next atomic.Int64
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				s, err := f(i)
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
				out[i] = s
			}
		}()
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// pct is the p-th percentile (nearest rank) of ds.
func pct(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := sortedCopy(ds)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

func sortedCopy(ds []time.Duration) []time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

// dist is "p50 … p99 … max …" of ds.
func dist(ds []time.Duration) string {
	if len(ds) == 0 {
		return "-"
	}
	s := sortedCopy(ds)
	return fmt.Sprintf("p50 %8s  p99 %8s  max %8s", ms(pct(s, 50)), ms(pct(s, 99)), ms(s[len(s)-1]))
}

// short is "p50 / p99 / max" of ds.
func short(ds []time.Duration) string {
	if len(ds) == 0 {
		return "-"
	}
	s := sortedCopy(ds)
	return fmt.Sprintf("%s / %s / %s", ms(pct(s, 50)), ms(pct(s, 99)), ms(s[len(s)-1]))
}

func verdict(ok bool) string {
	if ok {
		return "ok"
	}
	return "below target"
}
