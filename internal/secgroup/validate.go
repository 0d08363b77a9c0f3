package secgroup

import (
	"net/netip"
	"strconv"
	"strings"

	"nubo/internal/apierr"
)

// vpcCharset is what EC2 allows in VPC security group names and
// descriptions, and in rule descriptions.
const vpcCharset = "a-zA-Z0-9. _-:/()#,@[]+=&;{}!$*"

func inCharset(s string) bool {
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case strings.ContainsRune(". _-:/()#,@[]+=&;{}!$*", r):
		default:
			return false
		}
	}
	return true
}

// ValidateGroup checks a new group's name and description.
func ValidateGroup(name, description string) error {
	switch {
	case name == "":
		return apierr.Missing("GroupName")
	case description == "":
		return apierr.Missing("GroupDescription")
	case len(name) > 255 || !inCharset(name):
		return apierr.New(apierr.InvalidParameterValue, "Value (%s) for parameter GroupName is invalid. Valid names are non-empty strings less than 256 characters from the following set: %s", name, vpcCharset)
	case len(description) > 255 || !inCharset(description):
		return apierr.New(apierr.InvalidParameterValue, "Value (%s) for parameter GroupDescription is invalid. Valid descriptions are non-empty strings less than 256 characters from the following set: %s", description, vpcCharset)
	case strings.HasPrefix(strings.ToLower(name), "sg-"):
		return apierr.New(apierr.InvalidParameterValue, "Group names may not be in the format sg-*.")
	case name == DefaultName:
		return apierr.New(apierr.InvalidParameterValue, "Cannot use reserved security group name: %s", DefaultName)
	}
	return nil
}

// ValidateRuleDescription checks a rule's description.
func ValidateRuleDescription(d string) error {
	if len(d) > 255 || !inCharset(d) {
		return apierr.New(apierr.InvalidParameterValue, "Invalid rule description. Valid descriptions are strings less than 256 characters from the following set: %s", vpcCharset)
	}
	return nil
}

// NormalizeProtocol turns a protocol as requests spell it (name, number,
// "all") into the stored form: "-1", "tcp", "udp", "icmp", "icmpv6" or a
// decimal number.
func NormalizeProtocol(p string) (string, error) {
	lower := strings.ToLower(strings.TrimSpace(p))
	switch lower {
	case "tcp", "udp", "icmp", "icmpv6":
		return lower, nil
	case "-1", "all":
		return "-1", nil
	}
	n, err := strconv.Atoi(lower)
	if err != nil || n < -1 || n > 255 {
		return "", apierr.New(apierr.InvalidParameterValue, "Invalid value '%s' for IP protocol. Unknown protocol.", p)
	}
	for name, num := range protocolNumbers {
		if num == n {
			return name, nil
		}
	}
	if n == -1 {
		return "-1", nil
	}
	return strconv.Itoa(n), nil
}

// normalizePorts checks from and to for a protocol in normal form and
// returns what is stored: a port range for tcp/udp, ICMP type and code, or
// -1/-1 for protocols without ports (given ports are ignored, as in EC2).
func normalizePorts(proto string, from, to *int) (int, int, error) {
	portRange := func(why string, args ...any) error {
		return apierr.New(apierr.InvalidParameterValue, "Invalid value '"+why+"' for portRange.", args...)
	}
	switch proto {
	case "tcp", "udp":
		if from == nil || to == nil {
			return 0, 0, portRange("Must specify both from and to ports with TCP/UDP.")
		}
		for _, p := range []int{*from, *to} {
			if p < 0 || p > 65535 {
				return 0, 0, portRange("TCP/UDP port (%d) out of range", p)
			}
		}
		if *from > *to {
			return 0, 0, portRange("From port (%d) is greater than to port (%d)", *from, *to)
		}
		return *from, *to, nil
	case "icmp", "icmpv6":
		if from == nil && to == nil && proto == "icmpv6" { // optional for ICMPv6: all types
			return -1, -1, nil
		}
		if from == nil || to == nil {
			return 0, 0, portRange("Must specify both from and to ports with ICMP.")
		}
		if *from < -1 || *from > 255 {
			return 0, 0, apierr.New(apierr.InvalidParameterValue, "ICMP type (%d) out of range", *from)
		}
		if *to < -1 || *to > 255 {
			return 0, 0, apierr.New(apierr.InvalidParameterValue, "ICMP code (%d) out of range", *to)
		}
		if *from == -1 && *to != -1 {
			return 0, 0, apierr.New(apierr.InvalidParameterValue, "ICMP code (%d) out of range: with ICMP type -1 (all types) the code must be -1", *to)
		}
		return *from, *to, nil
	}
	return -1, -1, nil
}

// ParseCIDRv4 checks an IPv4 rule peer and returns it as a network
// address (EC2 stores 10.0.0.1/24 as 10.0.0.0/24).
func ParseCIDRv4(param, cidr string) (string, error) {
	p, err := netip.ParsePrefix(cidr)
	if err != nil || !p.Addr().Is4() {
		return "", apierr.New(apierr.InvalidParameterValue, "Value (%s) for parameter %s is invalid. This is not a valid CIDR block.", cidr, param)
	}
	return p.Masked().String(), nil
}

// ParseCIDRv6 is ParseCIDRv4 for IPv6 peers.
func ParseCIDRv6(param, cidr string) (string, error) {
	p, err := netip.ParsePrefix(cidr)
	if err != nil || !p.Addr().Is6() || p.Addr().Is4In6() {
		return "", apierr.New(apierr.InvalidParameterValue, "Value (%s) for parameter %s is invalid. This is not a valid IPv6 CIDR block.", cidr, param)
	}
	return p.Masked().String(), nil
}
