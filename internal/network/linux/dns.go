package linux

import (
	"context"
	"fmt"
	"net"
	"net/netip"

	"github.com/miekg/dns"

	"nubo/internal/network"
	"nubo/internal/network/netns"
	"nubo/internal/network/resolver"
)

// The VPC's resolver listens on VPC base + 2, port 53 (UDP and TCP), with
// sockets opened inside the router namespace and served from this process.

// startResolver starts the VPC's resolver unless this process runs it.
func (d *Driver) startResolver(vpc network.VPC) error {
	d.dnsMu.Lock()
	defer d.dnsMu.Unlock()
	if _, ok := d.resolvers[vpc.ID]; ok {
		return nil
	}
	path := d.routerNS(vpc.ID)
	addr := netip.AddrPortFrom(network.DNSAddr(vpc.CIDR), 53).String()
	pc, err := netns.ListenPacket(path, "udp4", addr)
	if err != nil {
		return fmt.Errorf("resolver of %s: %w", vpc.ID, err)
	}
	ln, err := netns.Listen(path, "tcp4", addr)
	if err != nil {
		pc.Close()
		return fmt.Errorf("resolver of %s: %w", vpc.ID, err)
	}
	s := resolver.New()
	if d.cfg.Egress {
		s.Upstream = hostResolvers()
	}
	if err := s.Serve(pc, ln); err != nil {
		pc.Close()
		ln.Close()
		return fmt.Errorf("resolver of %s: %w", vpc.ID, err)
	}
	d.resolvers[vpc.ID] = s
	return nil
}

// hostResolvers are the host's DNS servers: with egress, names beyond the
// VPC's are asked of them (from nubo's process, in the host's namespace).
func hostResolvers() []string {
	cfg, err := dns.ClientConfigFromFile("/etc/resolv.conf")
	if err != nil {
		return nil
	}
	var out []string
	for _, s := range cfg.Servers {
		out = append(out, net.JoinHostPort(s, cfg.Port))
	}
	return out
}

// stopResolver stops the VPC's resolver and closes its sockets (which hold
// the router namespace).
func (d *Driver) stopResolver(ctx context.Context, vpcID string) error {
	d.dnsMu.Lock()
	s := d.resolvers[vpcID]
	delete(d.resolvers, vpcID)
	d.dnsMu.Unlock()
	if s == nil {
		return nil
	}
	return s.Shutdown(context.WithoutCancel(ctx))
}

// resolverOf returns the running resolver of a VPC, or nil.
func (d *Driver) resolverOf(vpcID string) *resolver.Server {
	d.dnsMu.Lock()
	defer d.dnsMu.Unlock()
	return d.resolvers[vpcID]
}

// SetDNS replaces what the VPC's resolver answers, starting it if this
// process does not run it yet.
func (d *Driver) SetDNS(ctx context.Context, vpcID string, dns network.DNS) error {
	for _, r := range dns.Records {
		if !r.IP.IsValid() || r.Name == "" {
			return fmt.Errorf("%w: DNS record %q → %s", network.ErrInvalid, r.Name, r.IP)
		}
	}
	defer d.begin("vpc/" + vpcID)()
	if err := ctx.Err(); err != nil {
		return err
	}
	_, rh, cidr, err := d.router(vpcID)
	if err != nil {
		return err
	}
	rh.Close()
	if err := d.startResolver(network.VPC{ID: vpcID, CIDR: cidr}); err != nil {
		return err
	}
	d.resolverOf(vpcID).Set(dns)
	return nil
}

// Close stops the resolvers and metadata listeners; the kernel state stays.
func (d *Driver) Close() error {
	d.dnsMu.Lock()
	all := d.resolvers
	d.resolvers = make(map[string]*resolver.Server)
	for _, ln := range d.metadata {
		ln.Close()
	}
	d.metadata = nil
	d.dnsMu.Unlock()
	var firstErr error
	for _, s := range all {
		if err := s.Shutdown(context.Background()); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return firstErr
}
