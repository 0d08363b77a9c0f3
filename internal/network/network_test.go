package network_test

import (
	"errors"
	"net"
	"net/netip"
	"reflect"
	"testing"

	"nubo/internal/network"
)

func TestValidID(t *testing.T) {
	for id, want := range map[string]bool{
		"vpc-0123abcd": true, "vpc-": false, "vpc-a b": false, "subnet-1": false, "vpc-../x": false,
		"vpc-" + string(make([]byte, 61)): false,
	} {
		if got := network.ValidID(id, "vpc-"); got != want {
			t.Errorf("ValidID(%q) = %v, want %v", id, got, want)
		}
	}
}

func TestReserved(t *testing.T) {
	s := netip.MustParsePrefix("10.0.1.0/24")
	for ip, want := range map[string]bool{
		"10.0.1.0": true, "10.0.1.1": true, "10.0.1.2": true, "10.0.1.3": true, "10.0.1.4": false, "10.0.1.254": false, "10.0.1.255": true,
	} {
		if got := network.SubnetReserved(s, netip.MustParseAddr(ip)); got != want {
			t.Errorf("SubnetReserved(%s) = %v, want %v", ip, got, want)
		}
	}
	if g := network.SubnetGateway(s); g.String() != "10.0.1.1" {
		t.Errorf("gateway %s", g)
	}
	if a := network.DNSAddr(netip.MustParsePrefix("172.31.0.0/16")); a.String() != "172.31.0.2" {
		t.Errorf("DNS address %s", a)
	}
	r := network.PublicRange(netip.MustParsePrefix("198.18.0.0/15"))
	if r.HostIP().String() != "198.18.0.1" || r.GatewayIP().String() != "198.18.0.2" {
		t.Errorf("host %s gateway %s", r.HostIP(), r.GatewayIP())
	}
	for ip, ok := range map[string]bool{"198.18.0.1": false, "198.18.0.4": true, "198.19.255.254": true, "198.19.255.255": false, "10.0.0.4": false} {
		if err := r.Check(netip.MustParseAddr(ip)); (err == nil) != ok || err != nil && !errors.Is(err, network.ErrInvalid) {
			t.Errorf("Check(%s) = %v", ip, err)
		}
	}
}

func TestInterfaceChecks(t *testing.T) {
	ok := network.Interface{
		InstanceID: "i-1", VPCID: "vpc-1", SubnetID: "subnet-1", MAC: net.HardwareAddr{2, 0, 0, 0, 0, 1},
		PrivateIP: netip.MustParseAddr("10.0.1.5"), PrefixLen: 24, Gateway: netip.MustParseAddr("10.0.1.1"),
	}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := ok.CheckSubnet(netip.MustParsePrefix("10.0.1.0/24")); err != nil {
		t.Fatal(err)
	}
	if err := ok.CheckSubnet(netip.MustParsePrefix("10.0.2.0/24")); !errors.Is(err, network.ErrInvalid) {
		t.Errorf("CheckSubnet of another subnet: %v", err)
	}
	bad := ok
	bad.Device = network.MaxDevice + 1
	if err := bad.Validate(); !errors.Is(err, network.ErrInvalid) {
		t.Errorf("device %d: %v", bad.Device, err)
	}
	sec := ok
	sec.SecondaryIPs = []netip.Addr{netip.MustParseAddr("10.0.1.6"), netip.MustParseAddr("10.0.1.7")}
	if err := sec.Validate(); err != nil {
		t.Errorf("secondary IPs: %v", err)
	}
	if err := sec.CheckSubnet(netip.MustParsePrefix("10.0.1.0/24")); err != nil {
		t.Errorf("secondary IPs: %v", err)
	}
	for _, s := range [][]string{{"10.0.1.6", "10.0.1.6"}, {"10.0.1.5"}, {"::1"}} {
		sec.SecondaryIPs = nil
		for _, a := range s {
			sec.SecondaryIPs = append(sec.SecondaryIPs, netip.MustParseAddr(a))
		}
		if err := sec.Validate(); !errors.Is(err, network.ErrInvalid) {
			t.Errorf("secondary IPs %v: %v", s, err)
		}
	}
	for _, a := range []string{"10.0.2.6", "10.0.1.2", "10.0.1.255"} {
		sec.SecondaryIPs = []netip.Addr{netip.MustParseAddr(a)}
		if err := sec.CheckSubnet(netip.MustParsePrefix("10.0.1.0/24")); !errors.Is(err, network.ErrInvalid) {
			t.Errorf("secondary IP %s: %v", a, err)
		}
	}
	v := network.VPC{ID: "vpc-1", CIDR: netip.MustParsePrefix("10.0.0.0/16")}
	if err := (network.Subnet{ID: "subnet-1", CIDR: netip.MustParsePrefix("10.0.0.0/15")}).Validate(v.CIDR); !errors.Is(err, network.ErrInvalid) {
		t.Errorf("subnet larger than its VPC: %v", err)
	}
}

func TestEC2DNS(t *testing.T) {
	priv, pub := netip.MustParseAddr("10.0.1.5"), netip.MustParseAddr("198.18.0.9")
	got := network.EC2DNS("us-east-1", []network.Host{{Private: priv, Public: pub}})
	want := network.DNS{
		Zones: []string{"ec2.internal", "us-east-1.compute.internal", "compute-1.amazonaws.com"},
		Records: []network.DNSRecord{
			{Name: "ip-10-0-1-5.ec2.internal", IP: priv},
			{Name: "ip-10-0-1-5.us-east-1.compute.internal", IP: priv},
			{Name: "ec2-198-18-0-9.compute-1.amazonaws.com", IP: pub},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("EC2DNS = %+v, want %+v", got, want)
	}
	if n := network.PublicDNSName("eu-west-1", pub); n != "ec2-198-18-0-9.eu-west-1.compute.amazonaws.com" {
		t.Errorf("public name %s", n)
	}
	if n := network.PrivateDNSNames("eu-west-1", priv); !reflect.DeepEqual(n, []string{"ip-10-0-1-5.eu-west-1.compute.internal"}) {
		t.Errorf("private names %v", n)
	}
}
