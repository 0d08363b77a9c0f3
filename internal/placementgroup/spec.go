package placementgroup

import (
	"strconv"
	"unicode"

	"nubo/internal/apierr"
	"nubo/internal/resource"
	"nubo/internal/scheduler"
)

// Spec is what CreatePlacementGroup asks for.
type Spec struct {
	Name           string
	Strategy       string
	PartitionCount *int   // nil: DefaultPartitions for partition groups
	SpreadLevel    string // "": LevelRack for spread groups
	Tags           []resource.Tag
}

// Validate checks s against EC2's rules, so the API can refuse a bad
// request before a dry run answers.
func (s Spec) Validate() error {
	if s.Name == "" {
		return apierr.Missing("GroupName")
	}
	if len(s.Name) > MaxNameLen {
		return apierr.InvalidValue("GroupName", s.Name, "Placement group names can be up to 255 characters long.")
	}
	for _, r := range s.Name {
		if r > unicode.MaxASCII || !unicode.IsPrint(r) {
			return apierr.InvalidValue("GroupName", s.Name, "Placement group names must contain only printable ASCII characters.")
		}
	}
	switch s.Strategy {
	case "":
		return apierr.Missing("Strategy")
	case scheduler.Cluster, scheduler.Spread, scheduler.Partition:
	default:
		return apierr.InvalidValue("Strategy", s.Strategy, "Valid values are cluster, spread and partition.")
	}
	if s.PartitionCount != nil {
		if s.Strategy != scheduler.Partition {
			return apierr.New(apierr.InvalidParameterCombination, "PartitionCount is only valid for placement groups with the partition strategy.")
		}
		if n := *s.PartitionCount; n < 1 || n > scheduler.MaxPartitions {
			return apierr.InvalidValue("PartitionCount", strconv.Itoa(n), "Valid values are 1 to "+strconv.Itoa(scheduler.MaxPartitions)+".")
		}
	}
	if s.SpreadLevel != "" {
		if s.Strategy != scheduler.Spread {
			return apierr.New(apierr.InvalidParameterCombination, "SpreadLevel is only valid for placement groups with the spread strategy.")
		}
		if s.SpreadLevel != scheduler.LevelRack && s.SpreadLevel != scheduler.LevelHost {
			return apierr.InvalidValue("SpreadLevel", s.SpreadLevel, "Valid values are rack and host.")
		}
	}
	return resource.ValidateTags("TagSpecification", s.Tags)
}

// group is the record s describes, with EC2's defaults filled in.
func (s Spec) group(sc resource.Scope) Group {
	g := Group{Name: s.Name, Strategy: s.Strategy, State: Available, Account: sc.Account, Region: sc.Region}
	switch s.Strategy {
	case scheduler.Partition:
		g.PartitionCount = DefaultPartitions
		if s.PartitionCount != nil {
			g.PartitionCount = *s.PartitionCount
		}
	case scheduler.Spread:
		g.SpreadLevel = scheduler.LevelRack
		if s.SpreadLevel != "" {
			g.SpreadLevel = s.SpreadLevel
		}
	}
	return g
}
