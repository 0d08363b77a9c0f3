// Package eni is EC2's elastic network interfaces as records: a virtual
// network card of a subnet with its MAC, private addresses and security
// groups, which exists apart from instances and attaches to one at a
// device index (eth<N>). Every instance's primary interface (eth0) is one,
// made with it. The API writes intent (attaching, detaching); the agent of
// the instance's host makes the card appear or go and writes the outcome.
package eni

import (
	"time"

	"nubo/internal/resource"
)

// Kind is the network-interface resource kind.
var Kind = resource.NetworkInterface

// AttachmentKind is only an ID prefix (eni-attach-…).
var AttachmentKind = resource.Kind{Name: "network-interface-attachment", IDPrefix: "eni-attach"}

// EC2's interface statuses.
const (
	Available = "available"
	InUse     = "in-use"
)

// EC2's attachment statuses.
const (
	Attaching = "attaching"
	Attached  = "attached"
	Detaching = "detaching"
)

// Interface is the stored record of a network interface.
type Interface struct {
	resource.Meta
	Owner       string      `json:"owner"`
	VPCID       string      `json:"vpcId"`
	SubnetID    string      `json:"subnetId"`
	Zone        string      `json:"zone"`
	MAC         string      `json:"mac"`
	PrivateIPs  []PrivateIP `json:"privateIps"` // the first is the primary
	Groups      []string    `json:"groups"`     // security group IDs, 1 to 5
	Description string      `json:"description,omitempty"`
	// SourceDestCheck is stored and shown; the data plane always drops
	// packets from an address the interface does not have.
	SourceDestCheck bool        `json:"sourceDestCheck"`
	Status          string      `json:"status"` // available | in-use
	Attachment      *Attachment `json:"attachment,omitempty"`
}

// PrivateIP is one private IPv4 address of an interface. The interface
// holds its claim (vpc.PrivateKey → holder the interface's ID).
type PrivateIP struct {
	Address string `json:"address"`
	Primary bool   `json:"primary,omitempty"`
}

// Attachment is the interface's place in an instance.
type Attachment struct {
	ID                  string    `json:"id"` // eni-attach-…
	InstanceID          string    `json:"instanceId"`
	DeviceIndex         int       `json:"deviceIndex"`
	Status              string    `json:"status"` // attaching | attached | detaching
	AttachTime          time.Time `json:"attachTime"`
	DeleteOnTermination bool      `json:"deleteOnTermination"`
}

// PrimaryIP is the interface's primary private address.
func (n Interface) PrimaryIP() string {
	for _, p := range n.PrivateIPs {
		if p.Primary {
			return p.Address
		}
	}
	return ""
}

// SecondaryIPs are the interface's other private addresses.
func (n Interface) SecondaryIPs() []string {
	var out []string
	for _, p := range n.PrivateIPs {
		if !p.Primary {
			out = append(out, p.Address)
		}
	}
	return out
}

// Has reports whether ip is one of the interface's private addresses.
func (n Interface) Has(ip string) bool {
	for _, p := range n.PrivateIPs {
		if p.Address == ip {
			return true
		}
	}
	return false
}

// AttachedTo reports whether the interface is (being) attached to instanceID.
func (n Interface) AttachedTo(instanceID string) bool {
	return n.Attachment != nil && n.Attachment.InstanceID == instanceID
}

// Key is where an interface's record lives.
func Key(sc resource.Scope, id string) string { return resource.Key(sc, Kind, id) }
