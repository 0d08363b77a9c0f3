package secgroup

import (
	"fmt"
	"strings"

	"nubo/internal/apierr"
)

// Permission is one IpPermissions.N of a request: a protocol and ports, and
// peers, each of which is one rule.
type Permission struct {
	Protocol         string
	FromPort, ToPort *int // nil when absent
	IPv4, IPv6       []Peer
	Groups           []GroupPeer
	PrefixLists      []Peer // Value is a prefix list ID
}

// Peer is a CIDR (or prefix list ID) and its rule's description.
type Peer struct {
	Value       string
	Description string
}

// GroupPeer is a referenced security group (UserIdGroupPairs).
type GroupPeer struct {
	GroupID, GroupName, UserID string
	Description                string
}

// RuleSpec is a rule as ModifySecurityGroupRules gives it: one peer.
type RuleSpec struct {
	Protocol          string
	FromPort, ToPort  *int
	CIDRv4, CIDRv6    string
	PrefixListID      string
	ReferencedGroupID string
	Description       string
}

// RuleUpdate replaces the rule RuleID with Rule, keeping its ID,
// direction and tags.
type RuleUpdate struct {
	RuleID string
	Rule   RuleSpec
}

// RuleDescription sets the description of rule RuleID.
type RuleDescription struct {
	RuleID      string
	Description string
}

// noPrefixLists: nubo has no managed prefix lists, so a reference to one
// cannot exist.
func noPrefixLists(id string) error {
	return apierr.New("InvalidPrefixListID.NotFound", "The prefix list ID '%s' does not exist", id)
}

// template is a permission's protocol and ports in stored form.
func (p Permission) template() (Rule, error) {
	if p.Protocol == "" {
		return Rule{}, apierr.Missing("IpPermissions.N.IpProtocol")
	}
	proto, err := NormalizeProtocol(p.Protocol)
	if err != nil {
		return Rule{}, err
	}
	from, to, err := normalizePorts(proto, p.FromPort, p.ToPort)
	if err != nil {
		return Rule{}, err
	}
	return Rule{Protocol: proto, FromPort: from, ToPort: to}, nil
}

// Validate checks permissions without the store: protocols, ports, CIDRs,
// descriptions, and that each names at least one peer.
func Validate(perms []Permission) error {
	if len(perms) == 0 {
		return apierr.Missing("IpPermissions")
	}
	for _, p := range perms {
		if _, err := p.cidrRules(false); err != nil {
			return err
		}
		for _, g := range p.Groups {
			if err := ValidateRuleDescription(g.Description); err != nil {
				return err
			}
			if g.GroupID == "" && g.GroupName == "" {
				return apierr.New(apierr.MissingParameter, "A referenced security group needs a GroupId or a GroupName.")
			}
		}
		if len(p.IPv4)+len(p.IPv6)+len(p.Groups)+len(p.PrefixLists) == 0 {
			return apierr.New(apierr.MissingParameter, "Each permission needs a peer: IpRanges, Ipv6Ranges, UserIdGroupPairs or PrefixListIds.")
		}
	}
	return nil
}

// cidrRules expands a permission's CIDR peers into rules (no IDs yet); a
// prefix list peer is an error, as none exists.
func (p Permission) cidrRules(egress bool) ([]Rule, error) {
	t, err := p.template()
	if err != nil {
		return nil, err
	}
	t.Egress = egress
	if len(p.PrefixLists) > 0 {
		return nil, noPrefixLists(p.PrefixLists[0].Value)
	}
	var out []Rule
	add := func(c Peer, parse func(string, string) (string, error), param string, set func(*Rule, string)) error {
		cidr, err := parse(param, c.Value)
		if err != nil {
			return err
		}
		if err := ValidateRuleDescription(c.Description); err != nil {
			return err
		}
		r := t
		set(&r, cidr)
		r.Description = c.Description
		out = append(out, r)
		return nil
	}
	for _, c := range p.IPv4 {
		if err := add(c, ParseCIDRv4, "cidrIp", func(r *Rule, v string) { r.CIDRv4 = v }); err != nil {
			return nil, err
		}
	}
	for _, c := range p.IPv6 {
		if err := add(c, ParseCIDRv6, "cidrIpv6", func(r *Rule, v string) { r.CIDRv6 = v }); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// specRule checks a ModifySecurityGroupRules rule: exactly one peer.
func specRule(s RuleSpec) (Rule, error) {
	n := 0
	for _, v := range []string{s.CIDRv4, s.CIDRv6, s.PrefixListID, s.ReferencedGroupID} {
		if v != "" {
			n++
		}
	}
	if n != 1 {
		return Rule{}, apierr.New(apierr.InvalidParameterCombination, "A security group rule needs exactly one of CidrIpv4, CidrIpv6, PrefixListId and ReferencedGroupId.")
	}
	if s.PrefixListID != "" {
		return Rule{}, noPrefixLists(s.PrefixListID)
	}
	if err := ValidateRuleDescription(s.Description); err != nil {
		return Rule{}, err
	}
	t, err := Permission{Protocol: s.Protocol, FromPort: s.FromPort, ToPort: s.ToPort}.template()
	if err != nil {
		return Rule{}, err
	}
	t.Description, t.GroupID = s.Description, s.ReferencedGroupID
	if s.CIDRv4 != "" {
		t.CIDRv4, err = ParseCIDRv4("CidrIpv4", s.CIDRv4)
	}
	if s.CIDRv6 != "" {
		t.CIDRv6, err = ParseCIDRv6("CidrIpv6", s.CIDRv6)
	}
	return t, err
}

// ValidateSpecs checks ModifySecurityGroupRules' rules without the store.
func ValidateSpecs(us []RuleUpdate) error {
	if len(us) == 0 {
		return apierr.Missing("SecurityGroupRule")
	}
	for _, u := range us {
		if u.RuleID == "" {
			return apierr.Missing("SecurityGroupRule.N.SecurityGroupRuleId")
		}
		if _, err := specRule(u.Rule); err != nil {
			return err
		}
	}
	return nil
}

// Same reports whether two rules allow the same traffic: direction,
// protocol, ports and peer (descriptions and tags aside).
func (r Rule) Same(o Rule) bool {
	return r.Egress == o.Egress && r.Protocol == o.Protocol && r.FromPort == o.FromPort && r.ToPort == o.ToPort &&
		r.CIDRv4 == o.CIDRv4 && r.CIDRv6 == o.CIDRv6 && r.GroupID == o.GroupID
}

// Peer is the rule's CIDR or referenced group.
func (r Rule) Peer() string {
	switch {
	case r.CIDRv4 != "":
		return r.CIDRv4
	case r.CIDRv6 != "":
		return r.CIDRv6
	}
	return r.GroupID
}

// String describes a rule as EC2's error messages do:
// "peer: 0.0.0.0/0, TCP, from port: 22, to port: 22, ALLOW".
func (r Rule) String() string {
	var what string
	switch r.Protocol {
	case "tcp", "udp":
		what = fmt.Sprintf("%s, from port: %d, to port: %d", strings.ToUpper(r.Protocol), r.FromPort, r.ToPort)
	case "icmp":
		what = fmt.Sprintf("ICMP, type: %d, code: %d", r.FromPort, r.ToPort)
	case "icmpv6":
		what = fmt.Sprintf("ICMPv6, type: %d, code: %d", r.FromPort, r.ToPort)
	case "-1":
		what = "ALL"
	default:
		what = "protocol: " + r.Protocol
	}
	return fmt.Sprintf("peer: %s, %s, ALLOW", r.Peer(), what)
}

func duplicate(r Rule) error {
	return apierr.New("InvalidPermission.Duplicate", "the specified rule %q already exists", r.String())
}

// checkLimits enforces the per-group quota: per direction, IPv4 rules (and
// group references) and IPv6 rules count separately.
func checkLimits(rules []Rule) error {
	var n [2][2]int
	for _, r := range rules {
		e, v6 := 0, 0
		if r.Egress {
			e = 1
		}
		if r.CIDRv6 != "" {
			v6 = 1
		}
		n[e][v6]++
		if n[e][v6] > MaxRulesPerDirection {
			return apierr.New("RulesPerSecurityGroupLimitExceeded", "The maximum number of rules per security group has been reached.")
		}
	}
	return nil
}
