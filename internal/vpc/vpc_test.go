package vpc

import (
	"net/netip"
	"testing"

	"nubo/internal/apierr"
)

func TestUsableSkipsAWSReservedAddresses(t *testing.T) {
	p := netip.MustParsePrefix("10.0.1.0/24")
	for ip, want := range map[string]bool{
		"10.0.1.0": false, "10.0.1.1": false, "10.0.1.2": false, "10.0.1.3": false,
		"10.0.1.4": true, "10.0.1.254": true, "10.0.1.255": false, "10.0.2.4": false,
	} {
		if got := usable(p, netip.MustParseAddr(ip)); got != want {
			t.Errorf("usable(%s) = %v, want %v", ip, got, want)
		}
	}
	if got := lastAddr(netip.MustParsePrefix("172.31.16.0/20")); got.String() != "172.31.31.255" {
		t.Errorf("last address of 172.31.16.0/20: %s", got)
	}
}

func TestParseCIDR(t *testing.T) {
	if _, err := ParseCIDR("CidrBlock", "10.0.0.0/16"); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"10.0.0.1/16", "10.0.0.0", "fd00::/64", "banana"} {
		_, err := ParseCIDR("CidrBlock", bad)
		if e, ok := apierr.As(err); !ok || e.Code != apierr.InvalidParameterValue {
			t.Errorf("%s: %v", bad, err)
		}
	}
}

func TestDNSNames(t *testing.T) {
	ip := netip.MustParseAddr("172.31.5.9")
	for _, tc := range []struct{ region, private, public string }{
		{"us-east-1", "ip-172-31-5-9.ec2.internal", "ec2-172-31-5-9.compute-1.amazonaws.com"},
		{"eu-west-2", "ip-172-31-5-9.eu-west-2.compute.internal", "ec2-172-31-5-9.eu-west-2.compute.amazonaws.com"},
	} {
		if got := PrivateDNSName(tc.region, ip); got != tc.private {
			t.Errorf("private name in %s: %s", tc.region, got)
		}
		if got := PublicDNSName(tc.region, ip); got != tc.public {
			t.Errorf("public name in %s: %s", tc.region, got)
		}
	}
	sn := Subnet{CIDR: "10.0.1.0/24"}
	v := VPC{CIDR: "10.0.0.0/16"}
	if Gateway(sn).String() != "10.0.1.1" || Resolver(v).String() != "10.0.0.2" {
		t.Errorf("gateway %s resolver %s", Gateway(sn), Resolver(v))
	}
}
