// Package linux is the network.Driver that builds VPCs out of Linux network
// namespaces, veth pairs, routes and nftables; the topology and its reasons
// are in the network package's doc.
//
// Names (Prefix "nubo" by default), all under /run/netns:
//
//	nubo-gw             the host's gateway namespace
//	nubo-<vpc-id>       a VPC's router namespace
//	nubo-<instance-id>  an instance's namespace (eth0, eth1…)
//
// Kernel state is the only state: links carry aliases naming what they
// belong to, subnets are elements (with the subnet ID as comment) of an
// nftables set, public IPs are elements of nftables maps plus /32 routes in
// the gateway. The DNS resolvers are the only thing that lives in this
// process; EnsureVPC starts them again after a restart.
package linux

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"

	"sigs.k8s.io/knftables"

	"nubo/internal/network"
	"nubo/internal/network/netns"
	"nubo/internal/network/resolver"
)

// Config names what a driver makes. Two drivers on one host (a running nubo
// and a test) must differ in Prefix, HostLink and PublicRange.
type Config struct {
	// Prefix of every namespace name (default "nubo").
	Prefix string
	// HostLink is the name of the one link in the host's namespace
	// (default "nubo0", at most 15 bytes).
	HostLink string
	// PublicRange is routed from the host to the gateway (default
	// 198.18.0.0/15, the benchmarking block that no one routes on the
	// internet). Its base + 1 is the host's address on HostLink, base + 2
	// the gateway's.
	PublicRange netip.Prefix
	// NetNSDir is where namespaces are mounted (default /run/netns).
	NetNSDir string
	// MTU of every link (default 1500).
	MTU int
	// GSOMaxSize is the largest packet the stack hands a link of nubo's
	// before segmentation, and GRO builds (IPv4 "BIG TCP", kernel 6.3+):
	// default 185000 (the kernel's own default is 65536); -1 leaves the
	// kernel's. Every hop costs per packet, not per byte, so bigger packets
	// make the extra hops of a VPC nearly free.
	GSOMaxSize int
	// Egress lets instances with public IPs reach beyond the machine
	// through the host (forwarding and one masquerade table of nubo's on
	// the host; see egress.go). Off by default.
	Egress bool
	// Metadata, if set, serves the instance metadata service of VPC vpcID
	// on ln (MetadataIP:80 inside the VPC's router) until ln is closed; the
	// caller is the connection's remote address (see metadata.go).
	Metadata func(vpcID string, ln net.Listener)
}

// DefaultGSOMaxSize is the packet size of nubo's links when Config leaves
// it out (as Cilium's BIG TCP uses).
const DefaultGSOMaxSize = 185000

// DefaultPublicRange is the public range when Config leaves it out.
var DefaultPublicRange = netip.MustParsePrefix("198.18.0.0/15")

func (c Config) withDefaults() (Config, error) {
	if c.Prefix == "" {
		c.Prefix = "nubo"
	}
	if c.HostLink == "" {
		c.HostLink = "nubo0"
	}
	if !c.PublicRange.IsValid() {
		c.PublicRange = DefaultPublicRange
	}
	if c.NetNSDir == "" {
		c.NetNSDir = netns.DefaultDir
	}
	if c.MTU == 0 {
		c.MTU = 1500
	}
	if c.GSOMaxSize == 0 {
		c.GSOMaxSize = DefaultGSOMaxSize
	}
	switch {
	case !network.ValidID(c.Prefix, c.Prefix[:1]) || len(c.Prefix) > 32:
		return c, fmt.Errorf("%w: prefix %q", network.ErrInvalid, c.Prefix)
	case len(c.HostLink) > 15 || !network.ValidID(c.HostLink, c.HostLink[:1]):
		return c, fmt.Errorf("%w: host link name %q", network.ErrInvalid, c.HostLink)
	case !c.PublicRange.Addr().Is4() || c.PublicRange != c.PublicRange.Masked() || c.PublicRange.Bits() > 29:
		return c, fmt.Errorf("%w: public range %s: an IPv4 block of /29 or more", network.ErrInvalid, c.PublicRange)
	case c.MTU < 576 || c.MTU > 65535:
		return c, fmt.Errorf("%w: MTU %d", network.ErrInvalid, c.MTU)
	case c.GSOMaxSize != -1 && (c.GSOMaxSize < 65536 || c.GSOMaxSize > 512*1024):
		return c, fmt.Errorf("%w: GSO size %d: 65536 to 524288, or -1", network.ErrInvalid, c.GSOMaxSize)
	}
	return c, nil
}

// Driver is the Linux network.Driver.
type Driver struct {
	cfg    Config
	public network.PublicRange

	all   sync.RWMutex // Teardown holds it exclusively
	locks keyLocks

	nftOnce sync.Once
	nft     knftables.Interface
	nftErr  error

	dnsMu     sync.Mutex                  // also guards metadata
	resolvers map[string]*resolver.Server // by VPC ID
	metadata  map[string]net.Listener     // by VPC ID

	fwMu sync.Mutex
	fw   map[string]*fwState // by VPC ID: what SetFirewall last wrote
	gen  atomic.Uint32       // router state generations (nftRun), unique in this process
}

var _ network.Driver = (*Driver)(nil)

// New returns a driver; it changes nothing until called.
func New(cfg Config) (*Driver, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	d := &Driver{cfg: cfg, public: network.PublicRange(cfg.PublicRange), resolvers: make(map[string]*resolver.Server)}
	// A random start: flows a previous process checked carry marks this
	// one will not reuse soon.
	d.gen.Store(rand.Uint32())
	return d, nil
}

// Config returns the driver's configuration with defaults filled in.
func (d *Driver) Config() Config { return d.cfg }

// HostIP is the host's address on its link: where instances reach the host
// and the source of the host's traffic to public IPs.
func (d *Driver) HostIP() netip.Addr { return d.public.HostIP() }

// begin takes the locks of an operation: keys are "gw", "vpc/<id>",
// "i/<id>", always taken in sorted order.
func (d *Driver) begin(keys ...string) func() {
	d.all.RLock()
	unlock := d.locks.lock(keys...)
	return func() {
		unlock()
		d.all.RUnlock()
	}
}

type keyLocks struct {
	mu sync.Mutex
	m  map[string]*keyLock
}

type keyLock struct {
	mu sync.Mutex
	n  int
}

func (l *keyLocks) lock(keys ...string) func() {
	keys = slices.Clone(keys)
	slices.Sort(keys)
	keys = slices.Compact(keys)
	held := make([]*keyLock, 0, len(keys))
	for _, k := range keys {
		l.mu.Lock()
		if l.m == nil {
			l.m = make(map[string]*keyLock)
		}
		e := l.m[k]
		if e == nil {
			e = &keyLock{}
			l.m[k] = e
		}
		e.n++
		l.mu.Unlock()
		e.mu.Lock()
		held = append(held, e)
	}
	return func() {
		for i := len(held) - 1; i >= 0; i-- {
			held[i].mu.Unlock()
			l.mu.Lock()
			if held[i].n--; held[i].n == 0 {
				delete(l.m, keys[i])
			}
			l.mu.Unlock()
		}
	}
}
