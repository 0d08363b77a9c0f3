// Package secgroup is EC2's security groups as records: groups, their rules
// (ingress and egress, each with a sgr- ID) and the API's validation. The
// host agent turns the records into the data plane's firewall (package
// network); nothing here knows how packets are filtered.
package secgroup

import (
	"time"

	"nubo/internal/resource"
)

// Group is the stored record of a security group. Its rules live inside it,
// so a change to a group is one compare-and-swap and its rules never
// half-exist.
type Group struct {
	resource.Meta
	Name        string `json:"name"`
	Description string `json:"description"`
	VPCID       string `json:"vpcId"`
	Owner       string `json:"owner"`
	Rules       []Rule `json:"rules,omitempty"`
}

// Rule is one rule of a group. Exactly one peer is set: CIDRv4, CIDRv6 or
// GroupID.
type Rule struct {
	ID     string `json:"id"` // sgr-…
	Egress bool   `json:"egress,omitempty"`
	// Protocol is EC2's normal form: "-1" (all), "tcp", "udp", "icmp",
	// "icmpv6", or another IANA protocol number in decimal ("47").
	Protocol string `json:"protocol"`
	// FromPort and ToPort: a port range for tcp and udp (0–65535); ICMP
	// type and code for icmp and icmpv6 (-1 = any); -1 and -1 otherwise.
	FromPort    int               `json:"fromPort"`
	ToPort      int               `json:"toPort"`
	CIDRv4      string            `json:"cidrIpv4,omitempty"`
	CIDRv6      string            `json:"cidrIpv6,omitempty"`
	GroupID     string            `json:"groupId,omitempty"`    // a referenced security group
	GroupOwner  string            `json:"groupOwner,omitempty"` // its account
	Description string            `json:"description,omitempty"`
	Tags        map[string]string `json:"tags,omitempty"`
}

// Protocol numbers of the names EC2 uses.
var protocolNumbers = map[string]int{"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58}

// ProtocolNumber is the IANA number of r.Protocol; -1 for all protocols.
func (r Rule) ProtocolNumber() int {
	if n, ok := protocolNumbers[r.Protocol]; ok {
		return n
	}
	if r.Protocol == "-1" {
		return -1
	}
	n := 0
	for _, c := range r.Protocol {
		n = n*10 + int(c-'0')
	}
	return n
}

// Kinds: a rule is tagged through its group's record (see resource.Tagger).
var (
	Kind     = resource.SecurityGroup
	RuleKind = resource.SecurityGroupRule
)

// DefaultName is the name of every VPC's default group.
const DefaultName = "default"

// NewDefault returns a VPC's default security group: all traffic from its
// own members in, everything out, as EC2 makes it.
func NewDefault(vpcID, owner string, now time.Time) Group {
	id := resource.NewID(Kind)
	return Group{
		Meta:        resource.Meta{ID: id, CreateTime: now},
		Name:        DefaultName,
		Description: "default VPC security group",
		VPCID:       vpcID,
		Owner:       owner,
		Rules: []Rule{
			{ID: resource.NewID(RuleKind), Protocol: "-1", FromPort: -1, ToPort: -1, GroupID: id, GroupOwner: owner},
			AllEgress(),
		},
	}
}

// AllEgress is the rule every new group starts with: everything out.
func AllEgress() Rule {
	return Rule{ID: resource.NewID(RuleKind), Egress: true, Protocol: "-1", FromPort: -1, ToPort: -1, CIDRv4: "0.0.0.0/0"}
}

// NameKey is the index entry that keeps group names unique in a VPC.
func NameKey(s resource.Scope, vpcID, name string) string {
	return resource.NameKey(s, Kind, vpcID+"/"+name)
}

// RuleKey is the index entry from a rule's ID to its group's ID.
func RuleKey(s resource.Scope, ruleID string) string {
	return resource.NameKey(s, RuleKind, ruleID)
}

// Limits are AWS's default quotas.
const (
	MaxRulesPerDirection = 60   // inbound (and, separately, outbound) rules per group, per address family
	MaxGroupsPerENI      = 5    // security groups per network interface
	MaxGroupsPerRegion   = 2500 // VPC security groups per region
)
