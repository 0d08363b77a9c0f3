package linux_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"syscall"
	"testing"

	"nubo/internal/network"
	"nubo/internal/network/linux"
	"nubo/internal/network/networktest"
)

// newDriver returns a real driver with names and a public range of its own
// and its host network made; Teardown runs at cleanup, also on failure.
func newDriver(t *testing.T) *linux.Driver { return newDriverWith(t, nil) }

// newDriverWith is newDriver with its configuration changed by set.
func newDriverWith(t *testing.T, set func(*linux.Config)) *linux.Driver {
	t.Helper()
	networktest.RequireRoot(t)
	cfg, err := linux.EphemeralConfig()
	if err != nil {
		t.Fatal(err)
	}
	if set != nil {
		set(&cfg)
	}
	d, err := linux.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Teardown(context.Background()); err != nil {
			t.Errorf("cleanup: Teardown: %v", err)
		}
	})
	if err := d.EnsureHost(context.Background()); err != nil {
		t.Fatalf("EnsureHost: %v", err)
	}
	return d
}

// net10 builds VPCs from a compact description.
type net10 struct {
	t *testing.T
	d *linux.Driver
}

func (n net10) vpc(id, cidr string) {
	n.t.Helper()
	if err := n.d.EnsureVPC(context.Background(), network.VPC{ID: id, CIDR: netip.MustParsePrefix(cidr)}); err != nil {
		n.t.Fatalf("EnsureVPC %s: %v", id, err)
	}
}

func (n net10) subnet(vpcID, id, cidr string, public bool) {
	n.t.Helper()
	s := network.Subnet{ID: id, CIDR: netip.MustParsePrefix(cidr), Public: public}
	if err := n.d.EnsureSubnet(context.Background(), vpcID, s); err != nil {
		n.t.Fatalf("EnsureSubnet %s: %v", id, err)
	}
}

// attach gives instance id eth0 with ip in the subnet (ip/prefix given as
// CIDR, e.g. "10.0.1.10/24") and returns its namespace's path.
func (n net10) attach(vpcID, subnetID, id, ipPrefix string) string {
	n.t.Helper()
	path := n.attachClosed(vpcID, subnetID, id, ipPrefix)
	n.open(vpcID, network.Port{InstanceID: id, Device: 0})
	return path
}

// attachClosed is attach without opening the firewall: nothing passes until
// SetFirewall names the port.
func (n net10) attachClosed(vpcID, subnetID, id, ipPrefix string) string {
	n.t.Helper()
	p := netip.MustParsePrefix(ipPrefix)
	h := sha256.Sum256([]byte(id))
	ifc := network.Interface{
		InstanceID: id, VPCID: vpcID, SubnetID: subnetID, Device: 0,
		MAC:       net.HardwareAddr{0x02, 0xaa, h[0], h[1], h[2], h[3]},
		PrivateIP: p.Addr(), PrefixLen: p.Bits(), Gateway: network.SubnetGateway(p.Masked()),
	}
	path, err := n.d.Attach(context.Background(), ifc)
	if err != nil {
		n.t.Fatalf("Attach %s: %v", id, err)
	}
	return path
}

// open lets everything in and out of the given ports and of those opened
// before in the VPC: the data plane denies by default, and the tests of
// routing are not about security groups.
func (n net10) open(vpcID string, ports ...network.Port) {
	n.t.Helper()
	openMu.Lock()
	defer openMu.Unlock()
	key := fmt.Sprintf("%p/%s", n.d, vpcID)
	for _, p := range ports {
		p.Groups = []string{"sg-open"}
		if !slices.ContainsFunc(openPorts[key], func(q network.Port) bool { return q.InstanceID == p.InstanceID && q.Device == p.Device }) {
			openPorts[key] = append(openPorts[key], p)
		}
	}
	all := []network.FirewallRule{{Protocol: -1, Peer: netip.MustParsePrefix("0.0.0.0/0")}}
	fw := network.Firewall{Groups: []network.SecurityGroup{{ID: "sg-open", Ingress: all, Egress: all}}, Ports: openPorts[key]}
	if err := n.d.SetFirewall(context.Background(), vpcID, fw); err != nil {
		n.t.Fatalf("SetFirewall %s: %v", vpcID, err)
	}
}

var (
	openMu    sync.Mutex
	openPorts = map[string][]network.Port{}
)

func (n net10) public(vpcID, priv, pub string) {
	n.t.Helper()
	if err := n.d.SetPublicIP(context.Background(), vpcID, netip.MustParseAddr(priv), netip.MustParseAddr(pub)); err != nil {
		n.t.Fatalf("SetPublicIP %s → %s: %v", pub, priv, err)
	}
}

// pub returns the n-th instance address of the driver's public range.
func pub(d *linux.Driver, n int) string {
	a := d.Config().PublicRange.Addr()
	for range n + 3 {
		a = a.Next()
	}
	return a.String()
}

type syscallRawConn = syscall.RawConn

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
