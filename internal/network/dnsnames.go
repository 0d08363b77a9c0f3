package network

import (
	"fmt"
	"net/netip"
)

// Host is one instance address pair for EC2DNS; Public is the zero Addr
// when the private IP has no public IP.
type Host struct {
	Private netip.Addr
	Public  netip.Addr
}

// PrivateDNSNames are the names of a private IP: ip-a-b-c-d.<region>.compute.internal,
// and in us-east-1 also ip-a-b-c-d.ec2.internal (EC2's name there).
func PrivateDNSNames(region string, ip netip.Addr) []string {
	label := "ip-" + dashed(ip)
	names := []string{label + "." + region + ".compute.internal"}
	if region == "us-east-1" {
		names = append([]string{label + ".ec2.internal"}, names...)
	}
	return names
}

// PublicDNSName is the name of a public IP: ec2-a-b-c-d.compute-1.amazonaws.com
// in us-east-1, ec2-a-b-c-d.<region>.compute.amazonaws.com elsewhere.
func PublicDNSName(region string, ip netip.Addr) string {
	return "ec2-" + dashed(ip) + "." + publicZone(region)
}

// EC2Zones are the zones the resolver is authoritative for in a region.
func EC2Zones(region string) []string {
	zones := []string{region + ".compute.internal", publicZone(region)}
	if region == "us-east-1" {
		zones = append([]string{"ec2.internal"}, zones...)
	}
	return zones
}

// EC2DNS is a VPC resolver's content for these hosts: their private and
// public names. (Inside a real VPC the public name answers the private IP;
// here it answers the public IP, which instances reach through the gateway
// when they have a public IP themselves.)
func EC2DNS(region string, hosts []Host) DNS {
	dns := DNS{Zones: EC2Zones(region)}
	for _, h := range hosts {
		for _, n := range PrivateDNSNames(region, h.Private) {
			dns.Records = append(dns.Records, DNSRecord{Name: n, IP: h.Private})
		}
		if h.Public.IsValid() {
			dns.Records = append(dns.Records, DNSRecord{Name: PublicDNSName(region, h.Public), IP: h.Public})
		}
	}
	return dns
}

func publicZone(region string) string {
	if region == "us-east-1" {
		return "compute-1.amazonaws.com"
	}
	return region + ".compute.amazonaws.com"
}

func dashed(ip netip.Addr) string {
	b := ip.As4()
	return fmt.Sprintf("%d-%d-%d-%d", b[0], b[1], b[2], b[3])
}
