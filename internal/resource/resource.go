// Package resource holds what every EC2 resource shares: its scope (account
// and region), its kind (ID prefix, EC2 resource-type name), its ID, its tags,
// and where its record lives in the store.
package resource

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"nubo/internal/store"
)

// Scope is whose and where a resource is: every key is under it, which is
// what keeps accounts apart.
type Scope struct {
	Account string
	Region  string
}

// Kind is a resource type.
type Kind struct {
	Name         string // EC2's resource-type name: "key-pair", "instance", …
	IDPrefix     string // "key", "i", …
	NotFoundCode string // "InvalidKeyPair.NotFound", …
}

// The kinds nubo stores. Each is taggable through CreateTags.
var (
	KeyPair  = Kind{Name: "key-pair", IDPrefix: "key", NotFoundCode: "InvalidKeyPair.NotFound"}
	Image    = Kind{Name: "image", IDPrefix: "ami", NotFoundCode: "InvalidAMIID.NotFound"}
	Instance = Kind{Name: "instance", IDPrefix: "i", NotFoundCode: "InvalidInstanceID.NotFound"}
	Volume   = Kind{Name: "volume", IDPrefix: "vol", NotFoundCode: "InvalidVolume.NotFound"}
	Snapshot = Kind{Name: "snapshot", IDPrefix: "snap", NotFoundCode: "InvalidSnapshot.NotFound"}

	VPC             = Kind{Name: "vpc", IDPrefix: "vpc", NotFoundCode: "InvalidVpcID.NotFound"}
	Subnet          = Kind{Name: "subnet", IDPrefix: "subnet", NotFoundCode: "InvalidSubnetID.NotFound"}
	InternetGateway = Kind{Name: "internet-gateway", IDPrefix: "igw", NotFoundCode: "InvalidInternetGatewayID.NotFound"}
	RouteTable      = Kind{Name: "route-table", IDPrefix: "rtb", NotFoundCode: "InvalidRouteTableID.NotFound"}
	ElasticIP       = Kind{Name: "elastic-ip", IDPrefix: "eipalloc", NotFoundCode: "InvalidAllocationID.NotFound"}
	DHCPOptions     = Kind{Name: "dhcp-options", IDPrefix: "dopt", NotFoundCode: "InvalidDhcpOptionID.NotFound"}
	RouteTableAssoc = Kind{Name: "route-table-association", IDPrefix: "rtbassoc"}
	AddressAssoc    = Kind{Name: "address-association", IDPrefix: "eipassoc"}
	CIDRAssociation = Kind{Name: "vpc-cidr-block-association", IDPrefix: "vpc-cidr-assoc"}
	// NetworkInterface: an ENI (package eni).
	NetworkInterface = Kind{Name: "network-interface", IDPrefix: "eni", NotFoundCode: "InvalidNetworkInterfaceID.NotFound"}

	SecurityGroup = Kind{Name: "security-group", IDPrefix: "sg", NotFoundCode: "InvalidGroup.NotFound"}
	// SecurityGroupRule records live inside their group's record; the
	// name index (secgroup.RuleKey) leads from a rule's ID to its group.
	SecurityGroupRule = Kind{Name: "security-group-rule", IDPrefix: "sgr", NotFoundCode: "InvalidSecurityGroupRuleId.NotFound"}

	// PlacementGroup: package placementgroup.
	PlacementGroup = Kind{Name: "placement-group", IDPrefix: "pg", NotFoundCode: "InvalidPlacementGroup.Unknown"}
)

// Kinds lists every kind, for lookups by ID prefix and resource-type name.
var Kinds = []Kind{KeyPair, Image, Instance, Volume, Snapshot, VPC, Subnet, InternetGateway, RouteTable, ElasticIP, NetworkInterface, SecurityGroup, SecurityGroupRule, PlacementGroup}

// Reservation is not a stored resource, only an ID prefix.
var Reservation = Kind{Name: "reservation", IDPrefix: "r"}

// KindOf returns the kind whose ID prefix id carries.
func KindOf(id string) (Kind, bool) {
	prefix, _, ok := strings.Cut(id, "-")
	if !ok {
		return Kind{}, false
	}
	for _, k := range Kinds {
		if k.IDPrefix == prefix {
			return k, true
		}
	}
	return Kind{}, false
}

// NewUUID returns a random (version 4) UUID, the form of KMS key IDs and
// snapshot data key IDs.
func NewUUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// NewID returns a fresh ID in AWS's long form: prefix, dash, 17 hex digits.
func NewID(k Kind) string {
	var b [9]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return k.IDPrefix + "-" + hex.EncodeToString(b[:])[:17]
}

// ValidID reports whether id is well formed for kind k.
func ValidID(k Kind, id string) bool {
	hexPart, ok := strings.CutPrefix(id, k.IDPrefix+"-")
	if !ok || (len(hexPart) != 8 && len(hexPart) != 17) {
		return false
	}
	_, err := hex.DecodeString(hexPart + strings.Repeat("0", len(hexPart)%2))
	return err == nil && strings.ToLower(hexPart) == hexPart
}

// Meta is embedded in every resource record.
type Meta struct {
	ID         string            `json:"id"`
	Tags       map[string]string `json:"tags,omitempty"`
	CreateTime time.Time         `json:"createTime"`
}

// Prefix is where all records of kind k in scope s live.
func Prefix(s Scope, k Kind) string {
	return store.Root + "res/" + s.Account + "/" + s.Region + "/" + k.Name + "/"
}

// ScopePrefix is where all records in scope s live.
func ScopePrefix(s Scope) string {
	return store.Root + "res/" + s.Account + "/" + s.Region + "/"
}

// Key is where the record of resource id lives.
func Key(s Scope, k Kind, id string) string { return Prefix(s, k) + id }

// NameKey is the unique-name index entry of a named resource.
func NameKey(s Scope, k Kind, name string) string {
	return store.Root + "name/" + s.Account + "/" + s.Region + "/" + k.Name + "/" + name
}
