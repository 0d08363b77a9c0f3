package linux

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
)

// Links inside nubo's namespaces. Names are only unique per namespace, so
// the same ones repeat in every router and instance.
const (
	gwHostPeer    = "host0" // gateway end of the host link
	routerTransit = "gw0"   // router end of its transit link to the gateway
)

// The transit links use the same two link-local addresses in every VPC (each
// pair is its own point-to-point link, routed with onlink next hops), so
// nothing is allocated and nothing can collide with a VPC's CIDR.
var (
	gwTransitIP     = netip.MustParseAddr("169.254.0.1")
	routerTransitIP = netip.MustParseAddr("169.254.0.2")
)

func (d *Driver) nsPath(name string) string { return filepath.Join(d.cfg.NetNSDir, name) }

func (d *Driver) gwName() string                  { return d.cfg.Prefix + "-gw" }
func (d *Driver) gwNS() string                    { return d.nsPath(d.gwName()) }
func (d *Driver) routerNS(vpcID string) string    { return d.nsPath(d.cfg.Prefix + "-" + vpcID) }
func (d *Driver) instanceNS(instID string) string { return d.nsPath(d.cfg.Prefix + "-" + instID) }

// hostAlias marks the host link as this driver's.
func (d *Driver) hostAlias() string { return "nubo " + d.cfg.Prefix }

// nsKind classifies a namespace name of this driver: "gw", "vpc" or
// "instance", with the ID; "" for a name that is not one of them.
func (d *Driver) nsKind(name string) (kind, id string) {
	rest, ok := strings.CutPrefix(name, d.cfg.Prefix+"-")
	switch {
	case !ok:
		return "", ""
	case rest == "gw":
		return "gw", ""
	case strings.HasPrefix(rest, "vpc-"):
		return "vpc", rest
	case strings.HasPrefix(rest, "i-"):
		return "instance", rest
	}
	return "", ""
}

func shortHash(s string, n int) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])[:n]
}

// transitName is the gateway end of a VPC's transit link (its alias is the
// VPC ID).
func transitName(vpcID string) string { return "t" + shortHash(vpcID, 12) }

// portName is the router end of an instance interface (its alias is
// portAlias).
func portName(instID string, dev int) string {
	return "i" + shortHash(instID, 10) + strconv.Itoa(dev)
}

func ethName(dev int) string { return "eth" + strconv.Itoa(dev) }

func ethDevice(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, "eth")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(rest)
	return n, err == nil && n >= 0 && strconv.Itoa(n) == rest
}

// portAlias records which interface a router port serves.
func portAlias(instID string, dev int, subnetID string) string {
	return fmt.Sprintf("%s %d %s", instID, dev, subnetID)
}

func parsePortAlias(a string) (instID string, dev int, subnetID string, ok bool) {
	f := strings.Fields(a)
	if len(f) != 3 {
		return "", 0, "", false
	}
	n, err := strconv.Atoi(f[1])
	if err != nil {
		return "", 0, "", false
	}
	return f[0], n, f[2], true
}
