package resolver_test

import (
	"context"
	"net"
	"net/netip"
	"testing"

	"github.com/miekg/dns"

	"nubo/internal/network"
	"nubo/internal/network/resolver"
)

func serve(t *testing.T) (*resolver.Server, string) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", pc.LocalAddr().String())
	if err != nil {
		pc.Close()
		t.Skipf("TCP port of the UDP socket is taken: %v", err)
	}
	s := resolver.New()
	if err := s.Serve(pc, ln); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	return s, pc.LocalAddr().String()
}

func query(t *testing.T, net, addr, name string, qtype uint16) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: net}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("query %s %s: %v", name, dns.TypeToString[qtype], err)
	}
	return r
}

func TestAnswers(t *testing.T) {
	s, addr := serve(t)
	priv, pub := netip.MustParseAddr("10.0.1.5"), netip.MustParseAddr("198.18.0.9")
	s.Set(network.EC2DNS("us-east-1", []network.Host{{Private: priv, Public: pub}, {Private: netip.MustParseAddr("10.0.2.7")}}))

	cases := []struct {
		net, name string
		qtype     uint16
		rcode     int
		want      string // the answer's data, "" for none
	}{
		{"udp", "ip-10-0-1-5.ec2.internal", dns.TypeA, dns.RcodeSuccess, "10.0.1.5"},
		{"tcp", "IP-10-0-1-5.EC2.internal", dns.TypeA, dns.RcodeSuccess, "10.0.1.5"},
		{"udp", "ip-10-0-2-7.us-east-1.compute.internal", dns.TypeA, dns.RcodeSuccess, "10.0.2.7"},
		{"udp", "ec2-198-18-0-9.compute-1.amazonaws.com", dns.TypeA, dns.RcodeSuccess, "198.18.0.9"},
		{"udp", "ip-10-0-1-5.ec2.internal", dns.TypeAAAA, dns.RcodeSuccess, ""},
		{"udp", "5.1.0.10.in-addr.arpa", dns.TypePTR, dns.RcodeSuccess, "ip-10-0-1-5.ec2.internal."},
		{"udp", "ip-10-0-9-9.ec2.internal", dns.TypeA, dns.RcodeNameError, ""},
		{"udp", "example.com", dns.TypeA, dns.RcodeRefused, ""},
		{"udp", "s3.amazonaws.com", dns.TypeA, dns.RcodeRefused, ""},
	}
	for _, c := range cases {
		r := query(t, c.net, addr, c.name, c.qtype)
		got := ""
		if len(r.Answer) > 0 {
			switch rr := r.Answer[0].(type) {
			case *dns.A:
				got = rr.A.String()
			case *dns.PTR:
				got = rr.Ptr
			}
		}
		if r.Rcode != c.rcode || got != c.want {
			t.Errorf("%s %s %s: rcode %s answer %q, want %s %q", c.net, c.name, dns.TypeToString[c.qtype],
				dns.RcodeToString[r.Rcode], got, dns.RcodeToString[c.rcode], c.want)
		}
	}

	s.Set(network.DNS{})
	if r := query(t, "udp", addr, "ip-10-0-1-5.ec2.internal", dns.TypeA); r.Rcode != dns.RcodeRefused {
		t.Errorf("after Set(empty): rcode %s, want REFUSED", dns.RcodeToString[r.Rcode])
	}
}

// With upstream servers, names outside the zones are asked of them; the
// zones stay the resolver's own.
func TestUpstream(t *testing.T) {
	upPC, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	up := &dns.Server{PacketConn: upPC, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5}, A: net.ParseIP("192.0.2.7")})
		w.WriteMsg(m)
	})}
	go up.ActivateAndServe()
	t.Cleanup(func() { up.Shutdown() })

	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", pc.LocalAddr().String())
	if err != nil {
		t.Skip(err)
	}
	s := resolver.New()
	s.Upstream = []string{upPC.LocalAddr().String()}
	s.Set(network.DNS{Zones: []string{"ec2.internal"}})
	if err := s.Serve(pc, ln); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	addr := pc.LocalAddr().String()
	if r := query(t, "udp", addr, "deb.debian.org", dns.TypeA); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "192.0.2.7" {
		t.Errorf("deb.debian.org through the upstream: %v", r)
	}
	if r := query(t, "udp", addr, "ip-10-0-0-9.ec2.internal", dns.TypeA); r.Rcode != dns.RcodeNameError {
		t.Errorf("a name in the zone went upstream: %v", r)
	}
}
