package volume

import (
	"fmt"
	"strconv"
	"strings"

	"nubo/internal/apierr"
)

// TypeRule is what EC2 allows for one volume type: sizes, and whether and
// how IOPS and throughput are provisioned.
type TypeRule struct {
	Name             string
	MinSize, MaxSize int // GiB
	// IOPS: settable within [MinIops, MaxIops] and at most IopsPerGiB per
	// GiB of size (above FreeIops, for gp3: its baseline comes at any size).
	IopsSettable, IopsRequired bool
	MinIops, MaxIops           int
	IopsPerGiB, FreeIops       int
	DefaultIops                int
	// Throughput (MiB/s): settable within [MinThroughput, MaxThroughput] and
	// at most ThroughputPerIops × IOPS (above the default).
	ThroughputSettable           bool
	MinThroughput, MaxThroughput int
	DefaultThroughput            int
	ThroughputPerIops            float64
}

// Types are EC2's volume types. io2 sizes are Block Express's.
var Types = map[string]TypeRule{
	"gp2": {Name: "gp2", MinSize: 1, MaxSize: 16384},
	"gp3": {Name: "gp3", MinSize: 1, MaxSize: 16384,
		IopsSettable: true, MinIops: 3000, MaxIops: 16000, IopsPerGiB: 500, FreeIops: 3000, DefaultIops: 3000,
		ThroughputSettable: true, MinThroughput: 125, MaxThroughput: 1000, DefaultThroughput: 125, ThroughputPerIops: 0.25},
	"io1":      {Name: "io1", MinSize: 4, MaxSize: 16384, IopsSettable: true, IopsRequired: true, MinIops: 100, MaxIops: 64000, IopsPerGiB: 50},
	"io2":      {Name: "io2", MinSize: 4, MaxSize: 65536, IopsSettable: true, IopsRequired: true, MinIops: 100, MaxIops: 256000, IopsPerGiB: 1000},
	"st1":      {Name: "st1", MinSize: 125, MaxSize: 16384},
	"sc1":      {Name: "sc1", MinSize: 125, MaxSize: 16384},
	"standard": {Name: "standard", MinSize: 1, MaxSize: 1024},
}

// TypeNames lists the types in the order EC2's messages name them.
var TypeNames = []string{"standard", "io1", "io2", "gp2", "sc1", "st1", "gp3"}

// DefaultType is CreateVolume's VolumeType when none is given.
const DefaultType = "gp2"

// Rule returns the rule of type name, or InvalidParameterValue naming param.
func Rule(param, name string) (TypeRule, error) {
	r, ok := Types[name]
	if !ok {
		return r, apierr.InvalidValue(param, name, "Valid values: "+strings.Join(TypeNames, ", ")+".")
	}
	return r, nil
}

// Perf is a volume's type, size and provisioned performance, as stored:
// Iops for gp2 (3 per GiB), gp3, io1 and io2; Throughput for gp3. Other
// types have none (volume.Limits derives their I/O limits from the size).
type Perf struct {
	Type       string
	SizeGiB    int
	Iops       int
	Throughput int
}

// Settle checks size, iops and throughput (nil: not given) against type
// r and fills in the defaults. sizeParam names the size parameter in errors.
func (r TypeRule) Settle(sizeParam string, size int, iops, throughput *int) (Perf, error) {
	p := Perf{Type: r.Name, SizeGiB: size}
	if size < r.MinSize || size > r.MaxSize {
		return p, apierr.InvalidValue(sizeParam, strconv.Itoa(size),
			fmt.Sprintf("Volumes of type %s must be %d to %d GiB.", r.Name, r.MinSize, r.MaxSize))
	}
	switch {
	case iops != nil && !r.IopsSettable:
		return p, apierr.New(apierr.InvalidParameterCombination, "The parameter Iops is not supported for %s volumes.", r.Name)
	case iops == nil && r.IopsRequired:
		return p, apierr.New(apierr.MissingParameter, "The request must contain the parameter Iops: %s volumes need their IOPS provisioned.", r.Name)
	case throughput != nil && !r.ThroughputSettable:
		return p, apierr.New(apierr.InvalidParameterCombination, "The parameter Throughput is not supported for %s volumes; only gp3 volumes take it.", r.Name)
	}
	switch r.Name {
	case "gp2":
		p.Iops = min(max(3*size, 100), 16000)
	case "gp3", "io1", "io2":
		p.Iops = r.DefaultIops
		if iops != nil {
			p.Iops = *iops
		}
		if p.Iops < r.MinIops || p.Iops > r.MaxIops {
			return p, apierr.InvalidValue("Iops", strconv.Itoa(p.Iops),
				fmt.Sprintf("%s volumes take %d to %d IOPS.", r.Name, r.MinIops, r.MaxIops))
		}
		if p.Iops > r.FreeIops && p.Iops > r.IopsPerGiB*size {
			return p, apierr.InvalidValue("Iops", strconv.Itoa(p.Iops),
				fmt.Sprintf("A %s volume of %d GiB takes at most %d IOPS (%d per GiB); make it larger or ask for fewer IOPS.",
					r.Name, size, max(r.IopsPerGiB*size, r.FreeIops), r.IopsPerGiB))
		}
	}
	if r.ThroughputSettable {
		p.Throughput = r.DefaultThroughput
		if throughput != nil {
			p.Throughput = *throughput
		}
		if p.Throughput < r.MinThroughput || p.Throughput > r.MaxThroughput {
			return p, apierr.InvalidValue("Throughput", strconv.Itoa(p.Throughput),
				fmt.Sprintf("%s volumes take %d to %d MiB/s.", r.Name, r.MinThroughput, r.MaxThroughput))
		}
		if p.Throughput > r.DefaultThroughput && float64(p.Throughput) > r.ThroughputPerIops*float64(p.Iops) {
			return p, apierr.InvalidValue("Throughput", strconv.Itoa(p.Throughput),
				fmt.Sprintf("Throughput (MiB/s) to IOPS ratio of %f is too high; maximum is %f MiB/s per IOPS (%d IOPS allow %d MiB/s).",
					float64(p.Throughput)/float64(p.Iops), r.ThroughputPerIops, p.Iops, int(r.ThroughputPerIops*float64(p.Iops))))
		}
	}
	return p, nil
}

// ShowsIops reports whether EC2 shows a volume type's IOPS.
func ShowsIops(typ string) bool {
	return typ == "gp2" || typ == "gp3" || typ == "io1" || typ == "io2"
}

// ShowsThroughput reports whether EC2 shows a volume type's throughput.
func ShowsThroughput(typ string) bool { return typ == "gp3" }
