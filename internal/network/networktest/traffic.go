package networktest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"nubo/internal/network/netns"
)

// RequireRoot skips the test unless it can build namespaces and nftables:
// root, and the nft binary (Debian package nftables).
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("needs nft (Debian package nftables)")
	}
}

func listen(nsPath, network, addr string) (net.Listener, error) {
	if nsPath == "" {
		return net.Listen(network, addr)
	}
	return netns.Listen(nsPath, network, addr)
}

func dial(ctx context.Context, nsPath, network, addr string) (net.Conn, error) {
	if nsPath == "" {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	return netns.Dial(ctx, nsPath, nil, network, addr)
}

// ServeWho serves TCP on addr inside the namespace at nsPath ("" for this
// process's): every connection is answered "<name> <client address>" and
// closed. It stops at the test's end.
func ServeWho(t testing.TB, nsPath, name, addr string) {
	t.Helper()
	ln, err := listen(nsPath, "tcp4", addr)
	if err != nil {
		t.Fatalf("listen %s in %s: %v", addr, nsPath, err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "%s %s", name, c.RemoteAddr())
			c.Close()
		}
	}()
}

// Ask connects to a ServeWho server from inside nsPath ("" for this
// process's namespace) and returns its answer: the server's name and the
// client address it saw.
func Ask(ctx context.Context, nsPath, addr string) (name string, client netip.AddrPort, err error) {
	c, err := dial(ctx, nsPath, "tcp4", addr)
	if err != nil {
		return "", client, err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	b, err := io.ReadAll(c)
	if err != nil {
		return "", client, err
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return "", client, fmt.Errorf("answer %q", b)
	}
	client, err = netip.ParseAddrPort(f[1])
	return f[0], client, err
}

// ServeEcho serves TCP on addr inside nsPath: every line is sent back.
func ServeEcho(t testing.TB, nsPath, addr string) {
	t.Helper()
	ln, err := listen(nsPath, "tcp4", addr)
	if err != nil {
		t.Fatalf("listen %s in %s: %v", addr, nsPath, err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := io.WriteString(c, line); err != nil {
						return
					}
				}
			}()
		}
	}()
}

// Echo is a client connection to a ServeEcho server.
type Echo struct {
	c net.Conn
	r *bufio.Reader
}

// DialEcho connects to a ServeEcho server from inside nsPath.
func DialEcho(ctx context.Context, nsPath, addr string) (*Echo, error) {
	c, err := dial(ctx, nsPath, "tcp4", addr)
	if err != nil {
		return nil, err
	}
	return &Echo{c: c, r: bufio.NewReader(c)}, nil
}

// RoundTrip sends a line and waits for it to come back.
func (e *Echo) RoundTrip(line string, timeout time.Duration) error {
	e.c.SetDeadline(time.Now().Add(timeout))
	if _, err := io.WriteString(e.c, line+"\n"); err != nil {
		return err
	}
	got, err := e.r.ReadString('\n')
	if err != nil {
		return err
	}
	if got != line+"\n" {
		return fmt.Errorf("echo: got %q, want %q", got, line)
	}
	return nil
}

// Close closes the connection.
func (e *Echo) Close() error { return e.c.Close() }

// Lookup asks the DNS server at server (ip:port) from inside nsPath for
// name's A records over UDP.
func Lookup(ctx context.Context, nsPath, server, name string) (addrs []netip.Addr, rcode int, err error) {
	c, err := dial(ctx, nsPath, "udp4", server)
	if err != nil {
		return nil, 0, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	conn := &dns.Conn{Conn: c}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeA)
	if err := conn.WriteMsg(m); err != nil {
		return nil, 0, err
	}
	r, err := conn.ReadMsg()
	if err != nil {
		return nil, 0, err
	}
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			ip, _ := netip.AddrFromSlice(a.A.To4())
			addrs = append(addrs, ip)
		}
	}
	return addrs, r.Rcode, nil
}

// Unreachable reports whether a TCP connection to addr from nsPath fails
// within timeout (it must fail: nothing answers, or nothing routes).
func Unreachable(nsPath, addr string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := dial(ctx, nsPath, "tcp4", addr)
	if err == nil {
		c.Close()
		return errors.New("connected")
	}
	return nil
}
