// Package catalog is nubo's built-in catalogue of EC2 instance types, with the
// figures AWS publishes for them through DescribeInstanceTypes.
package catalog

import (
	"encoding/xml"
	"strconv"
)

// InstanceType mirrors EC2's InstanceTypeInfo. Its xml tags are EC2's wire
// names, in the order of EC2's model, so that marshalling a value yields the
// <item> EC2 returns inside <instanceTypeSet>.
type InstanceType struct {
	XMLName                       xml.Name             `xml:"item"`
	InstanceType                  string               `xml:"instanceType"`
	CurrentGeneration             bool                 `xml:"currentGeneration"`
	FreeTierEligible              bool                 `xml:"freeTierEligible"`
	SupportedUsageClasses         List[string]         `xml:"supportedUsageClasses,omitempty"`
	SupportedRootDeviceTypes      List[string]         `xml:"supportedRootDeviceTypes,omitempty"`
	SupportedVirtualizationTypes  List[string]         `xml:"supportedVirtualizationTypes,omitempty"`
	BareMetal                     bool                 `xml:"bareMetal"`
	Hypervisor                    string               `xml:"hypervisor,omitempty"` // "nitro" or "xen"; absent for metal
	ProcessorInfo                 ProcessorInfo        `xml:"processorInfo"`
	VCpuInfo                      VCpuInfo             `xml:"vCpuInfo"`
	MemoryInfo                    MemoryInfo           `xml:"memoryInfo"`
	InstanceStorageSupported      bool                 `xml:"instanceStorageSupported"`
	InstanceStorageInfo           *InstanceStorageInfo `xml:"instanceStorageInfo,omitempty"`
	EbsInfo                       EbsInfo              `xml:"ebsInfo"`
	NetworkInfo                   NetworkInfo          `xml:"networkInfo"`
	PlacementGroupInfo            PlacementGroupInfo   `xml:"placementGroupInfo"`
	HibernationSupported          bool                 `xml:"hibernationSupported"`
	BurstablePerformanceSupported bool                 `xml:"burstablePerformanceSupported"`
	DedicatedHostsSupported       bool                 `xml:"dedicatedHostsSupported"`
	AutoRecoverySupported         bool                 `xml:"autoRecoverySupported"`
	SupportedBootModes            List[string]         `xml:"supportedBootModes,omitempty"`
	NitroEnclavesSupport          string               `xml:"nitroEnclavesSupport"`
	NitroTpmSupport               string               `xml:"nitroTpmSupport"`
	NitroTpmInfo                  *NitroTpmInfo        `xml:"nitroTpmInfo,omitempty"`
	PhcSupport                    string               `xml:"phcSupport"`
	RebootMigrationSupport        string               `xml:"rebootMigrationSupport"`
	SupportedInRegion             bool                 `xml:"supportedInRegion"`
}

// List is an EC2 list: on the wire, its values are <item> elements inside the
// field's element. An empty List is left out altogether, as EC2 does (the
// xml:"name>item" form would leave an empty <name/> behind).
type List[T any] []T

// MarshalXML writes l as <name><item>…</item>…</name>.
func (l List[T]) MarshalXML(e *xml.Encoder, start xml.StartElement) error {
	if err := e.EncodeToken(start); err != nil {
		return err
	}
	item := xml.StartElement{Name: xml.Name{Local: "item"}}
	for _, v := range l {
		if err := e.EncodeElement(v, item); err != nil {
			return err
		}
	}
	return e.EncodeToken(start.End())
}

// UnmarshalXML reads the <item> elements of <name>.
func (l *List[T]) UnmarshalXML(d *xml.Decoder, start xml.StartElement) error {
	var w struct {
		Items []T `xml:"item"`
	}
	if err := d.DecodeElement(&w, &start); err != nil {
		return err
	}
	*l = append((*l)[:0], w.Items...)
	return nil
}

// ProcessorInfo mirrors EC2's ProcessorInfo.
type ProcessorInfo struct {
	SupportedArchitectures   List[string] `xml:"supportedArchitectures,omitempty"`
	SustainedClockSpeedInGhz float64      `xml:"sustainedClockSpeedInGhz"`
	SupportedFeatures        List[string] `xml:"supportedFeatures,omitempty"`
	Manufacturer             string       `xml:"manufacturer"`
}

// VCpuInfo mirrors EC2's VCpuInfo. Bare metal types have no valid cores or
// threads per core (their CPU options cannot be changed).
type VCpuInfo struct {
	DefaultVCpus          int       `xml:"defaultVCpus"`
	DefaultCores          int       `xml:"defaultCores"`
	DefaultThreadsPerCore int       `xml:"defaultThreadsPerCore"`
	ValidCores            List[int] `xml:"validCores,omitempty"`
	ValidThreadsPerCore   List[int] `xml:"validThreadsPerCore,omitempty"`
}

// MemoryInfo mirrors EC2's MemoryInfo.
type MemoryInfo struct {
	SizeInMiB int64 `xml:"sizeInMiB"`
}

// InstanceStorageInfo mirrors EC2's InstanceStorageInfo.
type InstanceStorageInfo struct {
	TotalSizeInGB     int64          `xml:"totalSizeInGB"`
	Disks             List[DiskInfo] `xml:"disks,omitempty"`
	NvmeSupport       string         `xml:"nvmeSupport"`
	EncryptionSupport string         `xml:"encryptionSupport"`
}

// DiskInfo mirrors EC2's DiskInfo.
type DiskInfo struct {
	SizeInGB int64  `xml:"sizeInGB"`
	Count    int    `xml:"count"`
	Type     string `xml:"type"` // "ssd" or "hdd"
}

// EbsInfo mirrors EC2's EbsInfo.
type EbsInfo struct {
	EbsOptimizedSupport   string            `xml:"ebsOptimizedSupport"`
	EncryptionSupport     string            `xml:"encryptionSupport"`
	EbsOptimizedInfo      *EbsOptimizedInfo `xml:"ebsOptimizedInfo,omitempty"`
	NvmeSupport           string            `xml:"nvmeSupport"`
	MaximumEbsAttachments int               `xml:"maximumEbsAttachments"`
	AttachmentLimitType   string            `xml:"attachmentLimitType"`
}

// EbsOptimizedInfo mirrors EC2's EbsOptimizedInfo. Throughputs are in MB/s,
// bandwidths in Mbps.
type EbsOptimizedInfo struct {
	BaselineBandwidthInMbps  int     `xml:"baselineBandwidthInMbps"`
	BaselineThroughputInMBps float64 `xml:"baselineThroughputInMBps"`
	BaselineIops             int     `xml:"baselineIops"`
	MaximumBandwidthInMbps   int     `xml:"maximumBandwidthInMbps"`
	MaximumThroughputInMBps  float64 `xml:"maximumThroughputInMBps"`
	MaximumIops              int     `xml:"maximumIops"`
}

// NetworkInfo mirrors EC2's NetworkInfo.
type NetworkInfo struct {
	NetworkPerformance              string                          `xml:"networkPerformance"`
	MaximumNetworkInterfaces        int                             `xml:"maximumNetworkInterfaces"`
	MaximumNetworkCards             int                             `xml:"maximumNetworkCards"`
	DefaultNetworkCardIndex         int                             `xml:"defaultNetworkCardIndex"`
	NetworkCards                    List[NetworkCardInfo]           `xml:"networkCards,omitempty"`
	Ipv4AddressesPerInterface       int                             `xml:"ipv4AddressesPerInterface"`
	Ipv6AddressesPerInterface       int                             `xml:"ipv6AddressesPerInterface"`
	Ipv6Supported                   bool                            `xml:"ipv6Supported"`
	EnaSupport                      string                          `xml:"enaSupport"` // "unsupported", "supported" or "required"
	EfaSupported                    bool                            `xml:"efaSupported"`
	EfaInfo                         *EfaInfo                        `xml:"efaInfo,omitempty"`
	EncryptionInTransitSupported    bool                            `xml:"encryptionInTransitSupported"`
	EnaSrdSupported                 bool                            `xml:"enaSrdSupported"`
	BandwidthWeightings             List[string]                    `xml:"bandwidthWeightings,omitempty"`
	FlexibleEnaQueuesSupport        string                          `xml:"flexibleEnaQueuesSupport"`
	ConnectionTrackingConfiguration ConnectionTrackingConfiguration `xml:"connectionTrackingConfiguration"`
	SecondaryNetworkSupported       bool                            `xml:"secondaryNetworkSupported"`
}

// NetworkCardInfo mirrors EC2's NetworkCardInfo.
type NetworkCardInfo struct {
	NetworkCardIndex                    int     `xml:"networkCardIndex"`
	NetworkPerformance                  string  `xml:"networkPerformance"`
	MaximumNetworkInterfaces            int     `xml:"maximumNetworkInterfaces"`
	AdditionalFlexibleNetworkInterfaces *int    `xml:"additionalFlexibleNetworkInterfaces,omitempty"`
	BaselineBandwidthInGbps             float64 `xml:"baselineBandwidthInGbps"`
	PeakBandwidthInGbps                 float64 `xml:"peakBandwidthInGbps"`
	DefaultEnaQueueCountPerInterface    int     `xml:"defaultEnaQueueCountPerInterface"`
	MaximumEnaQueueCount                int     `xml:"maximumEnaQueueCount,omitempty"`
	MaximumEnaQueueCountPerInterface    int     `xml:"maximumEnaQueueCountPerInterface,omitempty"`
}

// EfaInfo mirrors EC2's EfaInfo.
type EfaInfo struct {
	MaximumEfaInterfaces int `xml:"maximumEfaInterfaces"`
}

// ConnectionTrackingConfiguration mirrors EC2's
// DefaultConnectionTrackingConfiguration: default idle timeouts in seconds.
type ConnectionTrackingConfiguration struct {
	DefaultTcpEstablishedTimeout int `xml:"defaultTcpEstablishedTimeout"`
	DefaultUdpTimeout            int `xml:"defaultUdpTimeout"`
	DefaultUdpStreamTimeout      int `xml:"defaultUdpStreamTimeout"`
}

// PlacementGroupInfo mirrors EC2's PlacementGroupInfo.
type PlacementGroupInfo struct {
	SupportedStrategies List[string] `xml:"supportedStrategies,omitempty"`
}

// NitroTpmInfo mirrors EC2's NitroTpmInfo.
type NitroTpmInfo struct {
	SupportedVersions List[string] `xml:"supportedVersions,omitempty"`
}

// InstanceTypeFilters returns the DescribeInstanceTypes filter names that
// FilterValues answers, sorted: every one EC2 documents, plus
// processor-info.manufacturer and placement-group-info.supported-strategy.
func InstanceTypeFilters() []string { return append([]string(nil), instanceTypeFilters...) }

var instanceTypeFilters = []string{
	"auto-recovery-supported",
	"bare-metal",
	"burstable-performance-supported",
	"current-generation",
	"dedicated-hosts-supported",
	"ebs-info.attachment-limit-type",
	"ebs-info.ebs-optimized-info.baseline-bandwidth-in-mbps",
	"ebs-info.ebs-optimized-info.baseline-iops",
	"ebs-info.ebs-optimized-info.baseline-throughput-in-mbps",
	"ebs-info.ebs-optimized-info.maximum-bandwidth-in-mbps",
	"ebs-info.ebs-optimized-info.maximum-iops",
	"ebs-info.ebs-optimized-info.maximum-throughput-in-mbps",
	"ebs-info.ebs-optimized-support",
	"ebs-info.encryption-support",
	"ebs-info.maximum-ebs-attachments",
	"ebs-info.nvme-support",
	"free-tier-eligible",
	"hibernation-supported",
	"hypervisor",
	"instance-storage-info.disk.count",
	"instance-storage-info.disk.size-in-gb",
	"instance-storage-info.disk.type",
	"instance-storage-info.encryption-support",
	"instance-storage-info.nvme-support",
	"instance-storage-info.total-size-in-gb",
	"instance-storage-supported",
	"instance-type",
	"memory-info.size-in-mib",
	"network-info.bandwidth-weightings",
	"network-info.efa-info.maximum-efa-interfaces",
	"network-info.efa-supported",
	"network-info.ena-support",
	"network-info.encryption-in-transit-supported",
	"network-info.flexible-ena-queues-support",
	"network-info.ipv4-addresses-per-interface",
	"network-info.ipv6-addresses-per-interface",
	"network-info.ipv6-supported",
	"network-info.maximum-network-cards",
	"network-info.maximum-network-interfaces",
	"network-info.network-performance",
	"nitro-enclaves-support",
	"nitro-tpm-info.supported-versions",
	"nitro-tpm-support",
	"placement-group-info.supported-strategy",
	"processor-info.manufacturer",
	"processor-info.supported-architecture",
	"processor-info.supported-features",
	"processor-info.sustained-clock-speed-in-ghz",
	"reboot-migration-support",
	"supported-boot-mode",
	"supported-root-device-type",
	"supported-usage-class",
	"supported-virtualization-type",
	"vcpu-info.default-cores",
	"vcpu-info.default-threads-per-core",
	"vcpu-info.default-vcpus",
	"vcpu-info.valid-cores",
	"vcpu-info.valid-threads-per-core",
}

// FilterValues returns the values t has for the DescribeInstanceTypes filter
// name, as EC2 compares them: booleans as "true"/"false", numbers in decimal.
// A type without the attribute has no values. ok is false when name is not a
// filter of DescribeInstanceTypes (see InstanceTypeFilters).
func (t InstanceType) FilterValues(name string) (values []string, ok bool) {
	ebs := t.EbsInfo.EbsOptimizedInfo
	store := t.InstanceStorageInfo
	net := t.NetworkInfo
	switch name {
	case "auto-recovery-supported":
		return bools(t.AutoRecoverySupported), true
	case "bare-metal":
		return bools(t.BareMetal), true
	case "burstable-performance-supported":
		return bools(t.BurstablePerformanceSupported), true
	case "current-generation":
		return bools(t.CurrentGeneration), true
	case "dedicated-hosts-supported":
		return bools(t.DedicatedHostsSupported), true
	case "ebs-info.attachment-limit-type":
		return strs(t.EbsInfo.AttachmentLimitType), true
	case "ebs-info.ebs-optimized-info.baseline-bandwidth-in-mbps":
		if ebs == nil {
			return nil, true
		}
		return ints(ebs.BaselineBandwidthInMbps), true
	case "ebs-info.ebs-optimized-info.baseline-iops":
		if ebs == nil {
			return nil, true
		}
		return ints(ebs.BaselineIops), true
	case "ebs-info.ebs-optimized-info.baseline-throughput-in-mbps":
		if ebs == nil {
			return nil, true
		}
		return floats(ebs.BaselineThroughputInMBps), true
	case "ebs-info.ebs-optimized-info.maximum-bandwidth-in-mbps":
		if ebs == nil {
			return nil, true
		}
		return ints(ebs.MaximumBandwidthInMbps), true
	case "ebs-info.ebs-optimized-info.maximum-iops":
		if ebs == nil {
			return nil, true
		}
		return ints(ebs.MaximumIops), true
	case "ebs-info.ebs-optimized-info.maximum-throughput-in-mbps":
		if ebs == nil {
			return nil, true
		}
		return floats(ebs.MaximumThroughputInMBps), true
	case "ebs-info.ebs-optimized-support":
		return strs(t.EbsInfo.EbsOptimizedSupport), true
	case "ebs-info.encryption-support":
		return strs(t.EbsInfo.EncryptionSupport), true
	case "ebs-info.maximum-ebs-attachments":
		return ints(t.EbsInfo.MaximumEbsAttachments), true
	case "ebs-info.nvme-support":
		return strs(t.EbsInfo.NvmeSupport), true
	case "free-tier-eligible":
		return bools(t.FreeTierEligible), true
	case "hibernation-supported":
		return bools(t.HibernationSupported), true
	case "hypervisor":
		return strs(t.Hypervisor), true
	case "instance-storage-info.disk.count", "instance-storage-info.disk.size-in-gb", "instance-storage-info.disk.type":
		if store == nil {
			return nil, true
		}
		for _, d := range store.Disks {
			switch name {
			case "instance-storage-info.disk.count":
				values = append(values, strconv.Itoa(d.Count))
			case "instance-storage-info.disk.size-in-gb":
				values = append(values, strconv.FormatInt(d.SizeInGB, 10))
			default:
				values = append(values, d.Type)
			}
		}
		return values, true
	case "instance-storage-info.encryption-support":
		if store == nil {
			return nil, true
		}
		return strs(store.EncryptionSupport), true
	case "instance-storage-info.nvme-support":
		if store == nil {
			return nil, true
		}
		return strs(store.NvmeSupport), true
	case "instance-storage-info.total-size-in-gb":
		if store == nil {
			return nil, true
		}
		return []string{strconv.FormatInt(store.TotalSizeInGB, 10)}, true
	case "instance-storage-supported":
		return bools(t.InstanceStorageSupported), true
	case "instance-type":
		return strs(t.InstanceType), true
	case "memory-info.size-in-mib":
		return []string{strconv.FormatInt(t.MemoryInfo.SizeInMiB, 10)}, true
	case "network-info.bandwidth-weightings":
		return clone(net.BandwidthWeightings), true
	case "network-info.efa-info.maximum-efa-interfaces":
		if net.EfaInfo == nil {
			return nil, true
		}
		return ints(net.EfaInfo.MaximumEfaInterfaces), true
	case "network-info.efa-supported":
		return bools(net.EfaSupported), true
	case "network-info.ena-support":
		return strs(net.EnaSupport), true
	case "network-info.encryption-in-transit-supported":
		return bools(net.EncryptionInTransitSupported), true
	case "network-info.flexible-ena-queues-support":
		return strs(net.FlexibleEnaQueuesSupport), true
	case "network-info.ipv4-addresses-per-interface":
		return ints(net.Ipv4AddressesPerInterface), true
	case "network-info.ipv6-addresses-per-interface":
		return ints(net.Ipv6AddressesPerInterface), true
	case "network-info.ipv6-supported":
		return bools(net.Ipv6Supported), true
	case "network-info.maximum-network-cards":
		return ints(net.MaximumNetworkCards), true
	case "network-info.maximum-network-interfaces":
		return ints(net.MaximumNetworkInterfaces), true
	case "network-info.network-performance":
		return strs(net.NetworkPerformance), true
	case "nitro-enclaves-support":
		return strs(t.NitroEnclavesSupport), true
	case "nitro-tpm-info.supported-versions":
		if t.NitroTpmInfo == nil {
			return nil, true
		}
		return clone(t.NitroTpmInfo.SupportedVersions), true
	case "nitro-tpm-support":
		return strs(t.NitroTpmSupport), true
	case "placement-group-info.supported-strategy":
		return clone(t.PlacementGroupInfo.SupportedStrategies), true
	case "processor-info.manufacturer":
		return strs(t.ProcessorInfo.Manufacturer), true
	case "processor-info.supported-architecture":
		return clone(t.ProcessorInfo.SupportedArchitectures), true
	case "processor-info.supported-features":
		return clone(t.ProcessorInfo.SupportedFeatures), true
	case "processor-info.sustained-clock-speed-in-ghz":
		return floats(t.ProcessorInfo.SustainedClockSpeedInGhz), true
	case "reboot-migration-support":
		return strs(t.RebootMigrationSupport), true
	case "supported-boot-mode":
		return clone(t.SupportedBootModes), true
	case "supported-root-device-type":
		return clone(t.SupportedRootDeviceTypes), true
	case "supported-usage-class":
		return clone(t.SupportedUsageClasses), true
	case "supported-virtualization-type":
		return clone(t.SupportedVirtualizationTypes), true
	case "vcpu-info.default-cores":
		return ints(t.VCpuInfo.DefaultCores), true
	case "vcpu-info.default-threads-per-core":
		return ints(t.VCpuInfo.DefaultThreadsPerCore), true
	case "vcpu-info.default-vcpus":
		return ints(t.VCpuInfo.DefaultVCpus), true
	case "vcpu-info.valid-cores":
		return ints(t.VCpuInfo.ValidCores...), true
	case "vcpu-info.valid-threads-per-core":
		return ints(t.VCpuInfo.ValidThreadsPerCore...), true
	}
	return nil, false
}

func bools(b bool) []string { return []string{strconv.FormatBool(b)} }

// strs is the one value s, or none when s is empty (an absent field).
func strs(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

func ints(ns ...int) []string {
	if len(ns) == 0 {
		return nil
	}
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = strconv.Itoa(n)
	}
	return out
}

// floats prints f the shortest way that reads back exactly: 3.1, 593.75, 2375.
func floats(f float64) []string { return []string{strconv.FormatFloat(f, 'f', -1, 64)} }

func clone(s List[string]) []string {
	if len(s) == 0 {
		return nil
	}
	return append([]string(nil), s...)
}
