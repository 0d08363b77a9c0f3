// Package resolver is a VPC's DNS server: authoritative for the names it is
// given. A name it has answers its addresses (A) and an address its first
// name (PTR); another name inside one of its zones answers NXDOMAIN;
// everything else is asked of the upstream servers when there are some
// (instances may reach beyond the machine), and REFUSED otherwise.
//
// The caller opens the sockets (inside the VPC router's namespace, see
// netns.ListenPacket) and hands them to Serve.
package resolver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"

	"nubo/internal/network"
)

// TTL of every answer, in seconds.
const TTL = 60

// Server answers DNS queries; the zero value is not usable, call New.
type Server struct {
	mu    sync.RWMutex
	cur   network.DNS
	zones []string                // canonical (lower-case FQDN)
	a     map[string][]netip.Addr // name → addresses
	ptr   map[string]string       // reverse name → first name
	srv   []*dns.Server

	// Upstream servers (host:port) for names outside the zones, asked
	// from this process's network namespace; none: REFUSED. Set before
	// Serve.
	Upstream []string
}

// New returns a server with nothing to answer.
func New() *Server {
	s := &Server{}
	s.Set(network.DNS{})
	return s
}

// Set replaces what the server answers.
func (s *Server) Set(d network.DNS) {
	a := make(map[string][]netip.Addr)
	ptr := make(map[string]string)
	var zones []string
	for _, z := range d.Zones {
		zones = append(zones, dns.CanonicalName(z))
	}
	for _, r := range d.Records {
		name := dns.CanonicalName(r.Name)
		a[name] = append(a[name], r.IP)
		rev, err := dns.ReverseAddr(r.IP.String())
		if err == nil {
			if _, ok := ptr[rev]; !ok {
				ptr[rev] = name
			}
		}
	}
	cp := network.DNS{Zones: append([]string(nil), d.Zones...), Records: append([]network.DNSRecord(nil), d.Records...)}
	s.mu.Lock()
	s.cur, s.zones, s.a, s.ptr = cp, zones, a, ptr
	s.mu.Unlock()
}

// Get returns what the server answers.
func (s *Server) Get() network.DNS {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return network.DNS{Zones: append([]string(nil), s.cur.Zones...), Records: append([]network.DNSRecord(nil), s.cur.Records...)}
}

// Serve answers on a UDP socket and a TCP listener (either may be nil)
// until Shutdown, and returns once both serve.
func (s *Server) Serve(pc net.PacketConn, ln net.Listener) error {
	var started []chan struct{}
	errc := make(chan error, 2)
	start := func(srv *dns.Server) {
		ch := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(ch) }
		started = append(started, ch)
		s.mu.Lock()
		s.srv = append(s.srv, srv)
		s.mu.Unlock()
		go func() { errc <- srv.ActivateAndServe() }()
	}
	if pc != nil {
		start(&dns.Server{PacketConn: pc, Handler: s})
	}
	if ln != nil {
		start(&dns.Server{Listener: ln, Handler: s, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second})
	}
	for _, ch := range started {
		select {
		case <-ch:
		case err := <-errc:
			s.Shutdown(context.Background())
			return fmt.Errorf("serve DNS: %w", err)
		}
	}
	return nil
}

// Shutdown stops serving and closes the sockets.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	srvs := s.srv
	s.srv = nil
	s.mu.Unlock()
	var errs []error
	for _, srv := range srvs {
		if err := srv.ShutdownContext(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ServeDNS implements dns.Handler.
func (s *Server) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	m := s.Answer(req)
	if m.Rcode == dns.RcodeRefused && len(s.Upstream) > 0 && req.RecursionDesired && len(req.Question) == 1 {
		m = s.forward(req)
	}
	w.WriteMsg(m)
}

// forward asks the upstream servers in turn; SERVFAIL if none answers.
func (s *Server) forward(req *dns.Msg) *dns.Msg {
	for _, up := range s.Upstream {
		c := dns.Client{Timeout: 2 * time.Second}
		resp, _, err := c.Exchange(req, up)
		if err == nil && resp.Truncated {
			c.Net = "tcp"
			resp, _, err = c.Exchange(req, up)
		}
		if err == nil {
			return resp
		}
	}
	m := new(dns.Msg)
	m.SetRcode(req, dns.RcodeServerFailure)
	return m
}

// Answer computes the reply to a query.
func (s *Server) Answer(req *dns.Msg) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(req)
	m.RecursionAvailable = false
	if req.Opcode != dns.OpcodeQuery {
		m.Rcode = dns.RcodeNotImplemented
		return m
	}
	if len(req.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		return m
	}
	q := req.Question[0]
	name := dns.CanonicalName(q.Name)
	hdr := func(t uint16) dns.RR_Header {
		return dns.RR_Header{Name: q.Name, Rrtype: t, Class: dns.ClassINET, Ttl: TTL}
	}

	s.mu.RLock()
	defer s.mu.RUnlock()
	if q.Qclass != dns.ClassINET && q.Qclass != dns.ClassANY {
		m.Rcode = dns.RcodeRefused
		return m
	}
	if addrs, ok := s.a[name]; ok {
		m.Authoritative = true
		if q.Qtype == dns.TypeA || q.Qtype == dns.TypeANY {
			for _, ip := range addrs {
				m.Answer = append(m.Answer, &dns.A{Hdr: hdr(dns.TypeA), A: net.IP(ip.AsSlice())})
			}
		}
		return m // other types: NOERROR with no data
	}
	if target, ok := s.ptr[name]; ok {
		m.Authoritative = true
		if q.Qtype == dns.TypePTR || q.Qtype == dns.TypeANY {
			m.Answer = append(m.Answer, &dns.PTR{Hdr: hdr(dns.TypePTR), Ptr: target})
		}
		return m
	}
	for _, z := range s.zones {
		if name == z || strings.HasSuffix(name, "."+z) {
			m.Authoritative = true
			m.Rcode = dns.RcodeNameError
			return m
		}
	}
	m.Rcode = dns.RcodeRefused
	return m
}
