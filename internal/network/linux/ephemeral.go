package linux

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// EphemeralConfig returns a Config for a test or a benchmark that shares
// the host with a running nubo and with other tests: a random prefix and
// host link name, and a /24 of 198.19.0.0/16 that no route on the host
// covers more specifically (so it wins over nubo's 198.18.0.0/15).
func EphemeralConfig() (Config, error) {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return Config{}, err
	}
	defer h.Close()
	routes, err := mainRoutes(h)
	if err != nil {
		return Config{}, err
	}
	for range 64 {
		var b [4]byte
		rand.Read(b[:])
		name := "nt" + hex.EncodeToString(b[:3])
		r := netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 19, b[3], 0}), 24)
		taken := false
		for _, rt := range routes {
			if dst := routeDst(rt); dst.Overlaps(r) && dst.Bits() >= r.Bits() {
				taken = true
			}
		}
		if l, _ := linkByName(h, name); l != nil || taken {
			continue
		}
		return Config{Prefix: name, HostLink: name, PublicRange: r}, nil
	}
	return Config{}, fmt.Errorf("no free public range in 198.19.0.0/16")
}
