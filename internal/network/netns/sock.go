package netns

import (
	"context"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Listen opens a stream listener inside the namespace at path (see
// net.Listen). Serve it from any goroutine.
func Listen(path, network, addr string) (net.Listener, error) {
	var ln net.Listener
	err := Do(path, func() (err error) {
		ln, err = net.Listen(network, addr)
		return err
	})
	return ln, err
}

// ListenPacket opens a packet socket inside the namespace at path (see
// net.ListenPacket).
func ListenPacket(path, network, addr string) (net.PacketConn, error) {
	var pc net.PacketConn
	err := Do(path, func() (err error) {
		pc, err = net.ListenPacket(network, addr)
		return err
	})
	return pc, err
}

// Dial connects from inside the namespace at path, with d's options. addr
// must be an IP literal and port: resolving a name, or racing IPv4 against
// IPv6, would run on goroutines outside the namespace.
func Dial(ctx context.Context, path string, d *net.Dialer, network, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if net.ParseIP(host) == nil {
		return nil, fmt.Errorf("dial %s in a namespace: not an IP address", addr)
	}
	var c net.Conn
	if d == nil {
		d = &net.Dialer{}
	}
	err = Do(path, func() (err error) {
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// NewHandle opens an rtnetlink socket inside the namespace at path; use
// the handle from any goroutine and Close it.
func NewHandle(path string) (*netlink.Handle, error) {
	var h *netlink.Handle
	err := Do(path, func() (err error) {
		h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
		return err
	})
	return h, err
}
