package catalog

import (
	"sort"
	"strings"
)

// The data: each family file (burstable.go, general.go, compute.go,
// memory.go, storage.go) declares one family per instance family — what all
// its sizes share — and a table of its sizes. build expands a row into the
// InstanceTypeInfo EC2 publishes. Figures are those of EC2's
// DescribeInstanceTypes in us-east-1 (as of mid 2026); where EC2 follows a
// rule across sizes (hibernation below 150 GiB, ENA Express from 32 vCPUs,
// EFA on the largest sizes, ...) build applies the rule instead of repeating
// the flag per row. Two figures are not EC2's verbatim: freeTierEligible,
// which EC2 answers per account, follows the long-standing free tier (t2.micro
// and t3.micro; accounts on the 2025 free plan see t3.micro and t3.small), and
// i3.metal, which us-east-1 no longer lists, has the attachment limit (31)
// and newer fields of the other metal sizes.

var families = []*family{&t2, &t3, &t3a, &m5, &m6i, &c5, &c6i, &r5, &r6i, &i3, &i4i}

// family holds what every size of an instance family shares.
type family struct {
	name         string
	manufacturer string  // "Intel", "AMD"
	ghz          float64 // sustained clock speed of most sizes
	ghzOf        map[string]float64
	threads      int    // default threads per core
	hypervisor   string // of the virtualized sizes; metal sizes have none
	current      bool   // currentGeneration
	burstable    bool   // T instances: no cluster placement groups
	ena          string // enaSupport of the virtualized sizes (metal: required)
	ebsNVMe      string // ebsInfo.nvmeSupport of the virtualized sizes (metal: required)
	hibernation  bool   // for sizes below 150 GiB of memory, except metal
	dedicated    bool   // dedicatedHostsSupported, unless a size says noDH
	inTransit    bool   // encryptionInTransitSupported
	enaSRD       bool   // ENA Express, on sizes of 32 vCPUs or more
	efa          bool   // EFA, on sizes of 128 vCPUs or more
	sizes        []size
}

// size is one row of a family's table.
type size struct {
	name   string     // "large", "metal", ...
	vcpus  int        // defaultVCpus
	mem    int64      // memoryInfo.sizeInMiB
	cores  [2]int     // validCores: the first value and the step, up to the default core count; none for metal
	net    string     // networkPerformance
	enis   int        // maximumNetworkInterfaces
	ips    int        // IPv4 (and IPv6) addresses per interface
	gbps   [2]float64 // network card baseline and peak bandwidth, Gbps
	queues [3]int     // ENA queues: default per interface, maximum in all, maximum per interface (0: none published)
	ebs    [4]int     // EBS-optimized baseline Mbps, baseline IOPS, maximum Mbps, maximum IOPS (zero: not EBS-optimized)
	disks  [2]int     // instance store NVMe SSDs: count and size in GB of each
	quirks quirk
}

// quirk marks what sets one size apart from the rest of its family.
type quirk uint8

const (
	freeTier     quirk = 1 << iota // freeTierEligible
	i386                           // also runs 32-bit (i386) images
	onDemandOnly                   // not offered as Spot
	noDH                           // not on Dedicated Hosts
)

const (
	nitro = "nitro"
	xen   = "xen"
)

func vc(first, step int) [2]int        { return [2]int{first, step} }
func bw(base, peak float64) [2]float64 { return [2]float64{base, peak} }
func q(def, max, perENI int) [3]int    { return [3]int{def, max, perENI} }
func ebs(baseMbps, baseIOPS, maxMbps, maxIOPS int) [4]int {
	return [4]int{baseMbps, baseIOPS, maxMbps, maxIOPS}
}
func nvme(count, gb int) [2]int { return [2]int{count, gb} }

// Empty columns.
var (
	noCores [2]int // bare metal: CPU options cannot be changed; t2: not published
	noEBS   [4]int // not EBS-optimized
	noStore [2]int // EBS only
)

// build expands row s of family f.
func (f *family) build(s size) InstanceType {
	metal := s.name == "metal"
	virt := !metal
	cores := s.vcpus / f.threads
	storage := s.disks[0] > 0
	t := InstanceType{
		InstanceType:                  f.name + "." + s.name,
		CurrentGeneration:             f.current,
		FreeTierEligible:              s.quirks&freeTier != 0,
		SupportedUsageClasses:         []string{"on-demand", "spot"},
		SupportedRootDeviceTypes:      []string{"ebs"},
		SupportedVirtualizationTypes:  []string{"hvm"},
		BareMetal:                     metal,
		ProcessorInfo:                 ProcessorInfo{SupportedArchitectures: []string{"x86_64"}, SustainedClockSpeedInGhz: f.ghz, Manufacturer: f.manufacturer},
		VCpuInfo:                      VCpuInfo{DefaultVCpus: s.vcpus, DefaultCores: cores, DefaultThreadsPerCore: f.threads},
		MemoryInfo:                    MemoryInfo{SizeInMiB: s.mem},
		InstanceStorageSupported:      storage,
		EbsInfo:                       EbsInfo{EbsOptimizedSupport: "unsupported", EncryptionSupport: "supported", NvmeSupport: f.ebsNVMe, AttachmentLimitType: "shared"},
		PlacementGroupInfo:            PlacementGroupInfo{SupportedStrategies: []string{"cluster", "partition", "spread"}},
		HibernationSupported:          f.hibernation && virt && s.mem < 150*1024,
		BurstablePerformanceSupported: f.burstable,
		DedicatedHostsSupported:       f.dedicated && s.quirks&noDH == 0,
		AutoRecoverySupported:         !storage,
		SupportedBootModes:            []string{"legacy-bios"},
		NitroEnclavesSupport:          "unsupported",
		NitroTpmSupport:               "unsupported",
		PhcSupport:                    "unsupported",
		RebootMigrationSupport:        "supported",
		SupportedInRegion:             true,
	}
	if g, ok := f.ghzOf[s.name]; ok {
		t.ProcessorInfo.SustainedClockSpeedInGhz = g
	}
	if s.quirks&i386 != 0 {
		t.ProcessorInfo.SupportedArchitectures = []string{"i386", "x86_64"}
	}
	if s.quirks&onDemandOnly != 0 {
		t.SupportedUsageClasses = []string{"on-demand"}
	}
	if f.burstable {
		t.PlacementGroupInfo.SupportedStrategies = []string{"partition", "spread"}
	}
	if s.cores[0] > 0 {
		for c := s.cores[0]; c <= cores; c += s.cores[1] {
			t.VCpuInfo.ValidCores = append(t.VCpuInfo.ValidCores, c)
		}
		t.VCpuInfo.ValidThreadsPerCore = []int{1, 2}
	}

	// Nitro-only features: UEFI, NitroTPM, Nitro Enclaves (not on T
	// instances nor below 4 vCPUs); none of them on bare metal.
	if virt && f.hypervisor == nitro {
		t.SupportedBootModes = []string{"legacy-bios", "uefi"}
		t.NitroTpmSupport = "supported"
		t.NitroTpmInfo = &NitroTpmInfo{SupportedVersions: []string{"2.0"}}
		if !f.burstable && s.vcpus >= 4 {
			t.NitroEnclavesSupport = "supported"
		}
	}

	// EBS: Nitro instances share 27 attachment slots with their instance
	// store disks; bare metal has 31, Xen 40.
	if s.ebs[0] > 0 {
		t.EbsInfo.EbsOptimizedSupport = "default"
		t.EbsInfo.EbsOptimizedInfo = &EbsOptimizedInfo{
			BaselineBandwidthInMbps:  s.ebs[0],
			BaselineThroughputInMBps: float64(s.ebs[0]) / 8,
			BaselineIops:             s.ebs[1],
			MaximumBandwidthInMbps:   s.ebs[2],
			MaximumThroughputInMBps:  float64(s.ebs[2]) / 8,
			MaximumIops:              s.ebs[3],
		}
	}
	switch {
	case metal:
		t.EbsInfo.NvmeSupport = "required"
		t.EbsInfo.MaximumEbsAttachments = 31
	case f.hypervisor == xen:
		t.Hypervisor = xen
		t.EbsInfo.MaximumEbsAttachments = 40
	default:
		t.Hypervisor = nitro
		t.EbsInfo.MaximumEbsAttachments = 27 - s.disks[0]
	}

	if storage {
		t.InstanceStorageInfo = &InstanceStorageInfo{
			TotalSizeInGB:     int64(s.disks[0] * s.disks[1]),
			Disks:             []DiskInfo{{SizeInGB: int64(s.disks[1]), Count: s.disks[0], Type: "ssd"}},
			NvmeSupport:       "required",
			EncryptionSupport: "required",
		}
		t.RebootMigrationSupport = "unsupported"
	}

	card := NetworkCardInfo{
		NetworkPerformance:               s.net,
		MaximumNetworkInterfaces:         s.enis,
		BaselineBandwidthInGbps:          s.gbps[0],
		PeakBandwidthInGbps:              s.gbps[1],
		DefaultEnaQueueCountPerInterface: s.queues[0],
		MaximumEnaQueueCount:             s.queues[1],
		MaximumEnaQueueCountPerInterface: s.queues[2],
	}
	flexible := "unsupported"
	if s.queues[1] > 0 {
		flexible = "supported"
		card.AdditionalFlexibleNetworkInterfaces = new(int)
	}
	t.NetworkInfo = NetworkInfo{
		NetworkPerformance:           s.net,
		MaximumNetworkInterfaces:     s.enis,
		MaximumNetworkCards:          1,
		NetworkCards:                 []NetworkCardInfo{card},
		Ipv4AddressesPerInterface:    s.ips,
		Ipv6AddressesPerInterface:    s.ips,
		Ipv6Supported:                true,
		EnaSupport:                   f.ena,
		EfaSupported:                 f.efa && s.vcpus >= 128,
		EncryptionInTransitSupported: f.inTransit,
		EnaSrdSupported:              f.enaSRD && s.vcpus >= 32,
		FlexibleEnaQueuesSupport:     flexible,
		ConnectionTrackingConfiguration: ConnectionTrackingConfiguration{
			DefaultTcpEstablishedTimeout: 432000,
			DefaultUdpTimeout:            30,
			DefaultUdpStreamTimeout:      180,
		},
	}
	if metal {
		t.NetworkInfo.EnaSupport = "required"
	}
	if t.NetworkInfo.EfaSupported {
		t.NetworkInfo.EfaInfo = &EfaInfo{MaximumEfaInterfaces: 1}
	}
	return t
}

// InstanceTypes returns every instance type of the catalogue, sorted by name.
// The values are the caller's own.
func InstanceTypes() []InstanceType {
	var out []InstanceType
	for _, f := range families {
		for _, s := range f.sizes {
			out = append(out, f.build(s))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].InstanceType < out[j].InstanceType })
	return out
}

// LookupInstanceType returns the catalogue's instance type called name
// (for example "m5.large"), and whether there is one.
func LookupInstanceType(name string) (InstanceType, bool) {
	prefix, sz, ok := strings.Cut(name, ".")
	if !ok {
		return InstanceType{}, false
	}
	for _, f := range families {
		if f.name != prefix {
			continue
		}
		for _, s := range f.sizes {
			if s.name == sz {
				return f.build(s), true
			}
		}
	}
	return InstanceType{}, false
}
