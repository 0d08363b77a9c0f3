// Package netbench measures the VPC data plane's TCP throughput against a
// bare veth pair on the same machine:
//
//	baseline              namespace → veth → namespace
//	instance to instance  eth0 → router (routed across subnets) → eth0
//	host to public IP     host → gateway → router (DNAT) → eth0
//
// The baseline veth pair has the link settings nubo gives its own links
// (MTU, GSO/GRO size), so the ratio measures the topology; a second pair
// with the kernel's defaults shows what those settings bring.
//
// Each figure is one TCP stream from a Go sender to a Go receiver (both in
// this process, sockets opened inside the namespaces) for a fixed time,
// measured in rounds that take the three paths in turn (so a slow moment of
// the machine hits them alike); a path's figure is its median round. Run
// builds its own VPC with an ephemeral driver config and tears it down.
package netbench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/vishvananda/netlink"

	"nubo/internal/network"
	"nubo/internal/network/linux"
	"nubo/internal/network/netns"
)

// Options of a run.
type Options struct {
	// Duration of each measurement (default 5 s).
	Duration time.Duration
	// Rounds of the three measurements (default 3).
	Rounds int
}

// Result holds throughputs in bits per second.
type Result struct {
	Duration           time.Duration // of one measurement
	Rounds             int
	Baseline           float64 // bare veth pair, nubo's link settings
	DefaultVeth        float64 // bare veth pair, the kernel's defaults
	InstanceToInstance float64 // across two subnets of a VPC
	HostToPublicIP     float64 // from the host to an instance's public IP
	// ManyRules is instance to instance with ManyRulesCount security group
	// rules across each instance's five groups (the others: one rule).
	ManyRules float64
}

// ManyRulesCount is how many rules ManyRules measures under.
const ManyRulesCount = 1000

// RulesTarget is the ratio ManyRules over InstanceToInstance should reach.
const RulesTarget = 0.9

// Target is the ratio to the baseline the data plane should reach.
const Target = 0.8

// Ratios returns instance-to-instance and host-to-public-IP throughput over
// the baseline.
func (r Result) Ratios() (instance, public float64) {
	if r.Baseline == 0 {
		return 0, 0
	}
	return r.InstanceToInstance / r.Baseline, r.HostToPublicIP / r.Baseline
}

func (r Result) String() string {
	ri, rp := r.Ratios()
	verdict := func(x float64) string {
		if x >= Target {
			return "ok"
		}
		return "below target"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "VPC data plane: 1 TCP stream, median of %d rounds of %v (target ≥ %.2f of baseline)\n", r.Rounds, r.Duration, Target)
	fmt.Fprintf(&b, "  baseline (bare veth pair)  %7.2f Gbit/s  (with the kernel's default link settings: %.2f Gbit/s)\n", r.Baseline/1e9, r.DefaultVeth/1e9)
	fmt.Fprintf(&b, "  instance → instance        %7.2f Gbit/s  ratio %.2f  %s\n", r.InstanceToInstance/1e9, ri, verdict(ri))
	fmt.Fprintf(&b, "  host → public IP           %7.2f Gbit/s  ratio %.2f  %s\n", r.HostToPublicIP/1e9, rp, verdict(rp))
	rr := r.ManyRules / r.InstanceToInstance
	v := "ok"
	if rr < RulesTarget {
		v = "below target"
	}
	fmt.Fprintf(&b, "  instance → instance, %d security group rules  %.2f Gbit/s  ratio %.2f to one rule (target ≥ %.2f)  %s\n", ManyRulesCount, r.ManyRules/1e9, rr, RulesTarget, v)
	return b.String()
}

// Run builds a VPC with two instances (one with a public IP) and a bare
// veth pair, measures, and removes everything. Needs root.
func Run(ctx context.Context, opts Options) (res Result, err error) {
	if opts.Duration <= 0 {
		opts.Duration = 5 * time.Second
	}
	if opts.Rounds <= 0 {
		opts.Rounds = 3
	}
	res.Duration, res.Rounds = opts.Duration, opts.Rounds
	cfg, err := linux.EphemeralConfig()
	if err != nil {
		return res, err
	}
	d, err := linux.New(cfg)
	if err != nil {
		return res, err
	}
	defer func() {
		err = errors.Join(err, d.Teardown(context.WithoutCancel(ctx)))
	}()
	a, b, pub, err := buildVPC(ctx, d)
	if err != nil {
		return res, err
	}
	base1, base2, cleanup, err := vethPair(d.Config(), "bench", true)
	defer func() { err = errors.Join(err, cleanup()) }()
	if err != nil {
		return res, err
	}
	def1, def2, cleanup2, err := vethPair(d.Config(), "plain", false)
	defer func() { err = errors.Join(err, cleanup2()) }()
	if err != nil {
		return res, err
	}

	few, many := Firewall(1), Firewall(ManyRulesCount)
	paths := []struct {
		name                   string
		from, to, listen, dial string
		fw                     network.Firewall
		out                    *float64
	}{
		{"baseline", base1, base2, "10.99.0.2:5201", "10.99.0.2:5201", few, &res.Baseline},
		{"default veth", def1, def2, "10.99.0.2:5201", "10.99.0.2:5201", few, &res.DefaultVeth},
		{"instance to instance", a, b, "10.0.2.10:5201", "10.0.2.10:5201", few, &res.InstanceToInstance},
		{"instance to instance, many rules", a, b, "10.0.2.10:5201", "10.0.2.10:5201", many, &res.ManyRules},
		{"host to public IP", "", b, "10.0.2.10:5202", netip.AddrPortFrom(pub, 5202).String(), few, &res.HostToPublicIP},
	}
	samples := make([][]float64, len(paths))
	for range opts.Rounds {
		for i, p := range paths {
			if err := d.SetFirewall(ctx, "vpc-bench", p.fw); err != nil {
				return res, fmt.Errorf("%s: %w", p.name, err)
			}
			bps, err := Throughput(ctx, p.from, p.to, p.listen, p.dial, opts.Duration)
			if err != nil {
				return res, fmt.Errorf("%s: %w", p.name, err)
			}
			samples[i] = append(samples[i], bps)
		}
	}
	for i, p := range paths {
		slices.Sort(samples[i])
		*p.out = samples[i][len(samples[i])/2]
	}
	return res, nil
}

// Firewall is the bench instances' security groups with n rules in all:
// with n = 1, one group that lets TCP through; otherwise five groups on
// each instance whose ingress and egress rules (distinct ports from
// distinct addresses, so none merge) add up to n, the rule that lets the
// stream through in the last group, so every lookup is made.
func Firewall(n int) network.Firewall {
	allow := []network.FirewallRule{{Protocol: 6, FromPort: 5200, ToPort: 5210, Peer: netip.MustParsePrefix("0.0.0.0/0")}}
	ports := func(groups ...string) []network.Port {
		return []network.Port{{InstanceID: "i-bench-a", Groups: groups}, {InstanceID: "i-bench-b", Groups: groups}}
	}
	if n <= 1 {
		return network.Firewall{Groups: []network.SecurityGroup{{ID: "sg-bench", Ingress: allow, Egress: allow}}, Ports: ports("sg-bench")}
	}
	const groups = network.MaxGroupsPerPort
	var fw network.Firewall
	var ids []string
	for g := range groups {
		sg := network.SecurityGroup{ID: fmt.Sprintf("sg-bench%d", g)}
		for i := range n / groups / 2 {
			k := g*n/groups + i
			peer := netip.PrefixFrom(netip.AddrFrom4([4]byte{172, 16, byte(k >> 8), byte(k)}), 32)
			r := network.FirewallRule{Protocol: 6, FromPort: 10000 + k, ToPort: 10000 + k, Peer: peer}
			sg.Ingress = append(sg.Ingress, r)
			sg.Egress = append(sg.Egress, r)
		}
		if g == groups-1 {
			sg.Ingress[0], sg.Egress[0] = allow[0], allow[0]
		}
		fw.Groups = append(fw.Groups, sg)
		ids = append(ids, sg.ID)
	}
	fw.Ports = ports(ids...)
	return fw
}

func buildVPC(ctx context.Context, d *linux.Driver) (a, b string, pub netip.Addr, err error) {
	p := netip.MustParsePrefix
	vpc := network.VPC{ID: "vpc-bench", CIDR: p("10.0.0.0/16")}
	ifc := func(id, subnet string, ip string, mac byte) network.Interface {
		return network.Interface{
			InstanceID: id, VPCID: vpc.ID, SubnetID: subnet, MAC: net.HardwareAddr{2, 0xbe, 0, 0, 0, mac},
			PrivateIP: netip.MustParseAddr(ip), PrefixLen: 24, Gateway: network.SubnetGateway(p(ip + "/24").Masked()),
		}
	}
	pub = d.Config().PublicRange.Addr().Next().Next().Next().Next()
	steps := []func() error{
		func() error { return d.EnsureHost(ctx) },
		func() error { return d.EnsureVPC(ctx, vpc) },
		func() error {
			return d.EnsureSubnet(ctx, vpc.ID, network.Subnet{ID: "subnet-a", CIDR: p("10.0.1.0/24"), Public: true})
		},
		func() error {
			return d.EnsureSubnet(ctx, vpc.ID, network.Subnet{ID: "subnet-b", CIDR: p("10.0.2.0/24"), Public: true})
		},
		func() (err error) { a, err = d.Attach(ctx, ifc("i-bench-a", "subnet-a", "10.0.1.10", 1)); return err },
		func() (err error) { b, err = d.Attach(ctx, ifc("i-bench-b", "subnet-b", "10.0.2.10", 2)); return err },
		func() error { return d.SetPublicIP(ctx, vpc.ID, netip.MustParseAddr("10.0.2.10"), pub) },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return "", "", pub, err
		}
	}
	return a, b, pub, nil
}

// vethPair makes two namespaces joined by a bare veth pair (10.99.0.1/30
// and 10.99.0.2/30), with nubo's link settings if tuned, else the
// kernel's defaults.
func vethPair(cfg linux.Config, name string, tuned bool) (ns1, ns2 string, cleanup func() error, err error) {
	ns1 = filepath.Join(cfg.NetNSDir, cfg.Prefix+"-"+name+"1")
	ns2 = filepath.Join(cfg.NetNSDir, cfg.Prefix+"-"+name+"2")
	cleanup = func() error { return errors.Join(netns.Delete(ns1), netns.Delete(ns2)) }
	for _, ns := range []string{ns1, ns2} {
		if _, err := netns.Create(ns); err != nil {
			return ns1, ns2, cleanup, err
		}
	}
	h1, err := netns.NewHandle(ns1)
	if err != nil {
		return ns1, ns2, cleanup, err
	}
	defer h1.Close()
	h2, err := netns.NewHandle(ns2)
	if err != nil {
		return ns1, ns2, cleanup, err
	}
	defer h2.Close()
	f, err := os.Open(ns2)
	if err != nil {
		return ns1, ns2, cleanup, err
	}
	defer f.Close()
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "eth0", TxQLen: -1}, PeerName: "eth0", PeerNamespace: netlink.NsFd(int(f.Fd()))}
	if tuned {
		veth.MTU, veth.PeerMTU = cfg.MTU, uint32(cfg.MTU)
	}
	if err := h1.LinkAdd(veth); err != nil {
		return ns1, ns2, cleanup, err
	}
	for i, h := range []*netlink.Handle{h1, h2} {
		l, err := h.LinkByName("eth0")
		if err != nil {
			return ns1, ns2, cleanup, err
		}
		if tuned && cfg.GSOMaxSize > 0 {
			h.LinkSetGSOIPv4MaxSize(l, cfg.GSOMaxSize) // best effort, as nubo's own links
			h.LinkSetGROIPv4MaxSize(l, cfg.GSOMaxSize)
		}
		addr, _ := netlink.ParseAddr(fmt.Sprintf("10.99.0.%d/30", i+1))
		if err := h.AddrAdd(l, addr); err != nil {
			return ns1, ns2, cleanup, err
		}
		if err := h.LinkSetUp(l); err != nil {
			return ns1, ns2, cleanup, err
		}
	}
	return ns1, ns2, cleanup, nil
}

// Throughput sends one TCP stream for d from namespace from ("" for this
// process's) to a receiver listening on listenAddr in namespace to, by
// connecting to dialAddr, and returns the bits per second received.
func Throughput(ctx context.Context, from, to, listenAddr, dialAddr string, d time.Duration) (float64, error) {
	ln, err := netns.Listen(to, "tcp4", listenAddr)
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	type recv struct {
		n   int64
		dur time.Duration
		err error
	}
	got := make(chan recv, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- recv{err: err}
			return
		}
		defer c.Close()
		buf := make([]byte, 256<<10)
		var n int64
		var start time.Time
		for {
			k, err := c.Read(buf)
			if k > 0 && start.IsZero() {
				start = time.Now()
			}
			n += int64(k)
			if err == io.EOF {
				got <- recv{n: n, dur: time.Since(start)}
				return
			}
			if err != nil {
				got <- recv{err: err}
				return
			}
		}
	}()
	var c net.Conn
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if from == "" {
		var dl net.Dialer
		c, err = dl.DialContext(dctx, "tcp4", dialAddr)
	} else {
		c, err = netns.Dial(dctx, from, nil, "tcp4", dialAddr)
	}
	if err != nil {
		return 0, err
	}
	buf := make([]byte, 128<<10)
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if _, err := c.Write(buf); err != nil {
			c.Close()
			return 0, err
		}
	}
	c.Close()
	r := <-got
	if r.err != nil {
		return 0, r.err
	}
	if r.dur <= 0 {
		return 0, errors.New("nothing received")
	}
	return float64(r.n) * 8 / r.dur.Seconds(), nil
}
