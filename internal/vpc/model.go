// Package vpc is EC2's virtual private clouds as records: VPCs, subnets,
// internet gateways, route tables, private and public address allocation.
// The data plane that makes them route (package network) reads these.
package vpc

import (
	"net/netip"

	"nubo/internal/resource"
)

// VPC is the stored record of a VPC.
type VPC struct {
	resource.Meta
	CIDR             string `json:"cidr"`
	CIDRAssocID      string `json:"cidrAssocId"`
	IsDefault        bool   `json:"isDefault"`
	DNSSupport       bool   `json:"dnsSupport"`
	DNSHostnames     bool   `json:"dnsHostnames"`
	MainRouteTableID string `json:"mainRouteTableId"`
	DHCPOptionsID    string `json:"dhcpOptionsId"`
	Owner            string `json:"owner"`
}

// Subnet is the stored record of a subnet.
type Subnet struct {
	resource.Meta
	VPCID               string `json:"vpcId"`
	CIDR                string `json:"cidr"`
	Zone                string `json:"zone"`
	ZoneID              string `json:"zoneId"`
	MapPublicIPOnLaunch bool   `json:"mapPublicIpOnLaunch"`
	DefaultForAZ        bool   `json:"defaultForAz"`
	Owner               string `json:"owner"`
}

// InternetGateway is the stored record of an internet gateway.
type InternetGateway struct {
	resource.Meta
	VPCID string `json:"vpcId,omitempty"` // attached VPC, "" when detached
	Owner string `json:"owner"`
}

// Route is one route of a route table.
type Route struct {
	Destination string `json:"destination"`
	GatewayID   string `json:"gatewayId"` // "local" or igw-…
	Origin      string `json:"origin"`    // CreateRouteTable | CreateRoute
}

// Association links a route table to a subnet, or marks it main.
type Association struct {
	ID       string `json:"id"`
	SubnetID string `json:"subnetId,omitempty"`
	Main     bool   `json:"main,omitempty"`
}

// RouteTable is the stored record of a route table.
type RouteTable struct {
	resource.Meta
	VPCID        string        `json:"vpcId"`
	Routes       []Route       `json:"routes"`
	Associations []Association `json:"associations"`
	Owner        string        `json:"owner"`
}

// Prefix parses a record's CIDR (validated when stored).
func Prefix(cidr string) netip.Prefix {
	p, _ := netip.ParsePrefix(cidr)
	return p
}

// ElasticIP is the stored record of an Elastic IP (domain vpc). It is
// associated with an instance's primary address (InstanceID: the instance
// record's PublicIP is then this address) or with another private address
// of a network interface (NetworkInterfaceID: it follows the interface
// from instance to instance).
type ElasticIP struct {
	resource.Meta
	PublicIP           string `json:"publicIp"`
	Owner              string `json:"owner"`
	AssociationID      string `json:"associationId,omitempty"`
	InstanceID         string `json:"instanceId,omitempty"`
	NetworkInterfaceID string `json:"networkInterfaceId,omitempty"`
	PrivateIP          string `json:"privateIp,omitempty"`
}

// Associated reports whether the address is associated with anything.
func (e ElasticIP) Associated() bool { return e.InstanceID != "" || e.NetworkInterfaceID != "" }

// Disassociate clears the association.
func (e *ElasticIP) Disassociate() {
	e.AssociationID, e.InstanceID, e.NetworkInterfaceID, e.PrivateIP = "", "", "", ""
}
