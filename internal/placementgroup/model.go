// Package placementgroup is EC2's placement groups as records: a named
// strategy (cluster, spread or partition) that RunInstances hands to the
// scheduler for the instances launched into it.
//
// Store layout:
//
//	/nubo/v1/res/<scope>/placement-group/<pg>    the Group record
//	/nubo/v1/name/<scope>/placement-group/<name> its ID (names are unique per scope)
//
// A launch into a group puts the record back unchanged under a check of its
// mod revision, so launches into one group serialise, and a deletion racing
// with a launch fails its own check and looks at the group's members again.
package placementgroup

import (
	"nubo/internal/resource"
	"nubo/internal/scheduler"
)

// Kind is the placement-group resource kind.
var Kind = resource.PlacementGroup

// Available is the only state nubo's groups are in: creating and deleting
// are one transaction each.
const Available = "available"

// Limits, from the EC2 User Guide ("Placement group rules and limitations",
// "Create a placement group") and the CreatePlacementGroup API reference.
const (
	MaxPerRegion      = 500
	MaxNameLen        = 255
	DefaultPartitions = 2 // EC2's PartitionCount when a partition group omits it
)

// Group is the stored record of a placement group.
type Group struct {
	resource.Meta
	Name           string `json:"name"`
	Strategy       string `json:"strategy"`                 // scheduler.Cluster, Spread or Partition
	PartitionCount int    `json:"partitionCount,omitempty"` // Partition only
	SpreadLevel    string `json:"spreadLevel,omitempty"`    // Spread only: LevelRack or LevelHost
	State          string `json:"state"`
	Account        string `json:"account"`
	Region         string `json:"region"`
}

// ARN is the group's ARN; EC2 names placement groups in ARNs by name.
func (g Group) ARN() string {
	return "arn:aws:ec2:" + g.Region + ":" + g.Account + ":placement-group/" + g.Name
}

// Scheduling is the group as the scheduler places into it.
func (g Group) Scheduling() *scheduler.Group {
	return &scheduler.Group{ID: g.ID, Name: g.Name, Strategy: g.Strategy, PartitionCount: g.PartitionCount, SpreadLevel: g.SpreadLevel}
}

// Key is where the record of group id lives, for callers that put it back
// under a mod-revision check in their own transaction.
func Key(sc resource.Scope, id string) string { return resource.Key(sc, Kind, id) }

// NameKey is the unique-name index entry of a group.
func NameKey(sc resource.Scope, name string) string { return resource.NameKey(sc, Kind, name) }
