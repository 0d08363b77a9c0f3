package scheduler

import "nubo/internal/apierr"

// Host is one machine as the scheduler sees it.
type Host struct {
	Name      string
	Zone      string
	Rack      string // "" = a rack of its own
	VCPUs     int
	MemoryMiB int64
	Slots     int // most instances at once; 0 = no limit
	Live      bool
}

// Instance is one instance holding capacity on a host.
type Instance struct {
	ID        string
	Host      string
	VCPUs     int
	MemoryMiB int64
	Group     string // placement group ID, "" = none
	Partition int    // 1.., 0 = none
	Account   string
	Dedicated bool // tenancy dedicated: its host takes no other account
}

// Strategies and spread levels, spelled as EC2 spells them.
const (
	Cluster   = "cluster"
	Spread    = "spread"
	Partition = "partition"

	LevelRack = "rack"
	LevelHost = "host"
)

// MaxPartitions is EC2's limit on partitions per zone, and MaxSpreadPerZone
// its limit on running members of a rack-level spread group per zone (EC2
// User Guide, "Placement group rules and limitations").
const (
	MaxPartitions    = 7
	MaxSpreadPerZone = 7
)

// Group is a placement group.
type Group struct {
	ID             string
	Name           string
	Strategy       string // Cluster, Spread or Partition
	PartitionCount int    // Partition: 1..MaxPartitions
	SpreadLevel    string // Spread: LevelRack ("" too) or LevelHost
}

// Tenancies.
const (
	TenancyDefault   = "default"
	TenancyDedicated = "dedicated"
)

// Request asks for MinCount..MaxCount identical instances.
type Request struct {
	MinCount, MaxCount int
	Zone               string // "" = the scheduler picks one
	VCPUs              int
	MemoryMiB          int64
	Account            string
	Tenancy            string // "" = TenancyDefault
	Group              *Group // nil = none
	Partition          int    // partition groups: 1..PartitionCount, 0 = automatic
}

// Snapshot is what the scheduler decides from; the caller reads it in one
// store revision so it can bind the result with a compare-and-swap.
type Snapshot struct {
	Hosts     []Host
	Instances []Instance
}

// Placement is where one requested instance goes.
type Placement struct {
	Host      string
	Zone      string
	Rack      string
	Partition int // partition groups only
}

// Error codes Place returns as *apierr.Error, beside apierr's common ones
// (InvalidParameterValue, InvalidParameterCombination).
const (
	// InsufficientInstanceCapacity: EC2 API reference, "Error codes for the
	// Amazon EC2 API" (server error: not enough capacity for the minimum);
	// also what nubo already answers (internal/instance).
	InsufficientInstanceCapacity = "InsufficientInstanceCapacity"
	// InvalidPlacementGroupInUse: EC2's answer when a cluster group is used
	// from another zone ("The placement group 'x' is in use in another
	// availability zone: us-east-1c"), seen in real responses quoted in
	// hashicorp/terraform#16183 and bcbio/bcbio-nextgen-vm#45.
	InvalidPlacementGroupInUse = "InvalidPlacementGroup.InUse"
)

// errf is an EC2 error; Place returns nothing else.
func errf(code, format string, args ...any) *apierr.Error {
	return apierr.New(code, format, args...)
}
