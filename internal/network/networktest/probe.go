package networktest

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"

	"nubo/internal/network/netns"
)

// Outcome is what a probe met: the distinction a firewall makes visible.
type Outcome string

const (
	Open    Outcome = "open"    // answered
	Refused Outcome = "refused" // nothing listens: RST, or ICMP port unreachable
	Timeout Outcome = "timeout" // no answer at all: dropped
)

// ProbeTCP connects to addr from the namespace at nsPath ("" for this
// process's) and reports how that went; any other failure is an error.
func ProbeTCP(nsPath, addr string, timeout time.Duration) (Outcome, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := dial(ctx, nsPath, "tcp4", addr)
	switch {
	case err == nil:
		c.Close()
		return Open, nil
	case errors.Is(err, syscall.ECONNREFUSED):
		return Refused, nil
	case ctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded):
		return Timeout, nil
	}
	return "", err
}

// ServeUDPEcho answers every datagram to addr (in the namespace at nsPath)
// with the same bytes until the test ends.
func ServeUDPEcho(t testing.TB, nsPath, addr string) {
	t.Helper()
	pc, err := listenPacket(nsPath, "udp4", addr)
	if err != nil {
		t.Fatalf("listen udp %s in %s: %v", addr, nsPath, err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:n], from)
		}
	}()
}

// ProbeUDP sends a datagram to addr and waits for the echo: Open, Refused
// (an ICMP port unreachable came back) or Timeout.
func ProbeUDP(nsPath, addr string, timeout time.Duration) (Outcome, error) {
	c, err := dial(context.Background(), nsPath, "udp4", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte("probe")); err != nil {
		return "", err
	}
	buf := make([]byte, 64)
	_, err = c.Read(buf)
	switch {
	case err == nil:
		return Open, nil
	case errors.Is(err, syscall.ECONNREFUSED):
		return Refused, nil
	case errors.Is(err, os.ErrDeadlineExceeded):
		return Timeout, nil
	}
	return "", err
}

// Ping sends one ICMP echo request to dst and waits for the reply: Open or
// Timeout.
func Ping(nsPath string, dst netip.Addr, timeout time.Duration) (Outcome, error) {
	var c *icmp.PacketConn
	open := func() (err error) { c, err = icmp.ListenPacket("ip4:icmp", "0.0.0.0"); return err }
	var err error
	if nsPath == "" {
		err = open()
	} else {
		err = netns.Do(nsPath, open)
	}
	if err != nil {
		return "", err
	}
	defer c.Close()
	id := os.Getpid() & 0xffff
	seq := int(time.Now().UnixNano() & 0x7fff)
	msg := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: id, Seq: seq, Data: []byte("nubo")}}
	b, err := msg.Marshal(nil)
	if err != nil {
		return "", err
	}
	if _, err := c.WriteTo(b, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
		return "", err
	}
	c.SetReadDeadline(time.Now().Add(timeout))
	buf := make([]byte, 1500)
	for {
		n, from, err := c.ReadFrom(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return Timeout, nil
		} else if err != nil {
			return "", err
		}
		m, err := icmp.ParseMessage(1, buf[:n])
		if err != nil || m.Type != ipv4.ICMPTypeEchoReply || from.String() != dst.String() {
			continue
		}
		if e, ok := m.Body.(*icmp.Echo); ok && e.Seq == seq {
			return Open, nil
		}
	}
}

func listenPacket(nsPath, network, addr string) (net.PacketConn, error) {
	if nsPath == "" {
		return net.ListenPacket(network, addr)
	}
	return netns.ListenPacket(nsPath, network, addr)
}
