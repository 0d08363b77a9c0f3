package catalog

import (
	"encoding/xml"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func lookup(t *testing.T, name string) InstanceType {
	t.Helper()
	it, ok := LookupInstanceType(name)
	if !ok {
		t.Fatalf("LookupInstanceType(%q): not found", name)
	}
	return it
}

// Figures as EC2's DescribeInstanceTypes publishes them.
func TestPublishedFigures(t *testing.T) {
	tests := []struct {
		name       string
		vcpus      int
		mib        int64
		enis, ips  int
		network    string
		hypervisor string // "" for metal
		freeTier   bool
		hibernate  bool
		storeGB    int64 // total instance store, 0 for EBS only
	}{
		{"t2.nano", 1, 512, 2, 2, "Low to Moderate", "xen", false, true, 0},
		{"t2.micro", 1, 1024, 2, 2, "Low to Moderate", "xen", true, true, 0},
		{"t2.small", 1, 2048, 3, 4, "Low to Moderate", "xen", false, true, 0},
		{"t2.medium", 2, 4096, 3, 6, "Low to Moderate", "xen", false, true, 0},
		{"t2.large", 2, 8192, 3, 12, "Low to Moderate", "xen", false, true, 0},
		{"t2.2xlarge", 8, 32768, 3, 15, "Moderate", "xen", false, true, 0},
		{"t3.nano", 2, 512, 2, 2, "Up to 5 Gigabit", "nitro", false, true, 0},
		{"t3.micro", 2, 1024, 2, 2, "Up to 5 Gigabit", "nitro", true, true, 0},
		{"t3.medium", 2, 4096, 3, 6, "Up to 5 Gigabit", "nitro", false, true, 0},
		{"t3.xlarge", 4, 16384, 4, 15, "Up to 5 Gigabit", "nitro", false, true, 0},
		{"t3.2xlarge", 8, 32768, 4, 15, "Up to 5 Gigabit", "nitro", false, true, 0},
		{"t3a.nano", 2, 512, 2, 2, "Up to 5 Gigabit", "nitro", false, true, 0},
		{"t3a.2xlarge", 8, 32768, 4, 15, "Up to 5 Gigabit", "nitro", false, true, 0},
		{"m5.large", 2, 8192, 3, 10, "Up to 10 Gigabit", "nitro", false, true, 0},
		{"m5.8xlarge", 32, 131072, 8, 30, "10 Gigabit", "nitro", false, true, 0},
		{"m5.12xlarge", 48, 196608, 8, 30, "12 Gigabit", "nitro", false, false, 0},
		{"m5.24xlarge", 96, 393216, 15, 50, "25 Gigabit", "nitro", false, false, 0},
		{"m5.metal", 96, 393216, 15, 50, "25 Gigabit", "", false, false, 0},
		{"m6i.large", 2, 8192, 3, 10, "Up to 12.5 Gigabit", "nitro", false, true, 0},
		{"m6i.32xlarge", 128, 524288, 15, 50, "50 Gigabit", "nitro", false, false, 0},
		{"m6i.metal", 128, 524288, 15, 50, "50 Gigabit", "", false, false, 0},
		{"c5.large", 2, 4096, 3, 10, "Up to 10 Gigabit", "nitro", false, true, 0},
		{"c5.9xlarge", 36, 73728, 8, 30, "12 Gigabit", "nitro", false, true, 0},
		{"c5.12xlarge", 48, 98304, 8, 30, "12 Gigabit", "nitro", false, true, 0},
		{"c5.18xlarge", 72, 147456, 15, 50, "25 Gigabit", "nitro", false, true, 0},
		{"c5.24xlarge", 96, 196608, 15, 50, "25 Gigabit", "nitro", false, false, 0},
		{"c5.metal", 96, 196608, 15, 50, "25 Gigabit", "", false, false, 0},
		{"c6i.large", 2, 4096, 3, 10, "Up to 12.5 Gigabit", "nitro", false, true, 0},
		{"c6i.16xlarge", 64, 131072, 15, 50, "25 Gigabit", "nitro", false, true, 0},
		{"c6i.24xlarge", 96, 196608, 15, 50, "37.5 Gigabit", "nitro", false, false, 0},
		{"c6i.metal", 128, 262144, 15, 50, "50 Gigabit", "", false, false, 0},
		{"r5.large", 2, 16384, 3, 10, "Up to 10 Gigabit", "nitro", false, true, 0},
		{"r5.4xlarge", 16, 131072, 8, 30, "Up to 10 Gigabit", "nitro", false, true, 0},
		{"r5.8xlarge", 32, 262144, 8, 30, "10 Gigabit", "nitro", false, false, 0},
		{"r5.metal", 96, 786432, 15, 50, "25 Gigabit", "", false, false, 0},
		{"r6i.large", 2, 16384, 3, 10, "Up to 12.5 Gigabit", "nitro", false, false, 0},
		{"r6i.32xlarge", 128, 1048576, 15, 50, "50 Gigabit", "nitro", false, false, 0},
		{"i3.large", 2, 15616, 3, 10, "Up to 10 Gigabit", "xen", false, true, 475},
		{"i3.4xlarge", 16, 124928, 8, 30, "Up to 10 Gigabit", "xen", false, true, 3800},
		{"i3.8xlarge", 32, 249856, 8, 30, "10 Gigabit", "xen", false, false, 7600},
		{"i3.16xlarge", 64, 499712, 15, 50, "25 Gigabit", "xen", false, false, 15200},
		{"i3.metal", 72, 524288, 15, 50, "25 Gigabit", "", false, false, 15200},
		{"i4i.large", 2, 16384, 3, 10, "Up to 10 Gigabit", "nitro", false, false, 468},
		{"i4i.24xlarge", 96, 786432, 15, 30, "56.25 Gigabit", "nitro", false, false, 22500},
		{"i4i.32xlarge", 128, 1048576, 15, 50, "75 Gigabit", "nitro", false, false, 30000},
		{"i4i.metal", 128, 1048576, 15, 50, "75 Gigabit", "", false, false, 30000},
	}
	for _, tc := range tests {
		it := lookup(t, tc.name)
		if it.InstanceType != tc.name {
			t.Errorf("%s: InstanceType = %q", tc.name, it.InstanceType)
		}
		if got := it.VCpuInfo.DefaultVCpus; got != tc.vcpus {
			t.Errorf("%s: vCPUs = %d, want %d", tc.name, got, tc.vcpus)
		}
		if got := it.MemoryInfo.SizeInMiB; got != tc.mib {
			t.Errorf("%s: memory = %d MiB, want %d", tc.name, got, tc.mib)
		}
		if got := it.NetworkInfo.MaximumNetworkInterfaces; got != tc.enis {
			t.Errorf("%s: ENIs = %d, want %d", tc.name, got, tc.enis)
		}
		if got := it.NetworkInfo.Ipv4AddressesPerInterface; got != tc.ips {
			t.Errorf("%s: IPv4 per ENI = %d, want %d", tc.name, got, tc.ips)
		}
		if got := it.NetworkInfo.NetworkPerformance; got != tc.network {
			t.Errorf("%s: network = %q, want %q", tc.name, got, tc.network)
		}
		if it.Hypervisor != tc.hypervisor || it.BareMetal != (tc.hypervisor == "") {
			t.Errorf("%s: hypervisor %q bare metal %v, want %q", tc.name, it.Hypervisor, it.BareMetal, tc.hypervisor)
		}
		if it.FreeTierEligible != tc.freeTier {
			t.Errorf("%s: free tier = %v, want %v", tc.name, it.FreeTierEligible, tc.freeTier)
		}
		if it.HibernationSupported != tc.hibernate {
			t.Errorf("%s: hibernation = %v, want %v", tc.name, it.HibernationSupported, tc.hibernate)
		}
		var gb int64
		if it.InstanceStorageInfo != nil {
			gb = it.InstanceStorageInfo.TotalSizeInGB
		}
		if gb != tc.storeGB || it.InstanceStorageSupported != (tc.storeGB > 0) {
			t.Errorf("%s: instance store %d GB (supported %v), want %d", tc.name, gb, it.InstanceStorageSupported, tc.storeGB)
		}
	}
}

// A few types in full detail.
func TestDetails(t *testing.T) {
	c5 := lookup(t, "c5.large")
	wantEBS := EbsOptimizedInfo{
		BaselineBandwidthInMbps: 650, BaselineThroughputInMBps: 81.25, BaselineIops: 4000,
		MaximumBandwidthInMbps: 4750, MaximumThroughputInMBps: 593.75, MaximumIops: 20000,
	}
	if c5.EbsInfo.EbsOptimizedInfo == nil || *c5.EbsInfo.EbsOptimizedInfo != wantEBS {
		t.Errorf("c5.large EBS = %+v, want %+v", c5.EbsInfo.EbsOptimizedInfo, wantEBS)
	}
	if c5.ProcessorInfo.SustainedClockSpeedInGhz != 3.4 || c5.ProcessorInfo.Manufacturer != "Intel" {
		t.Errorf("c5.large processor = %+v", c5.ProcessorInfo)
	}
	if v := c5.VCpuInfo; v.DefaultCores != 1 || v.DefaultThreadsPerCore != 2 ||
		!slices.Equal(v.ValidCores, []int{1}) || !slices.Equal(v.ValidThreadsPerCore, []int{1, 2}) {
		t.Errorf("c5.large vCPU info = %+v", v)
	}
	if got := lookup(t, "c5.24xlarge").ProcessorInfo.SustainedClockSpeedInGhz; got != 3.6 {
		t.Errorf("c5.24xlarge clock = %v, want 3.6", got)
	}
	if got := lookup(t, "m5.24xlarge").VCpuInfo.ValidCores; len(got) != 23 || got[0] != 4 || got[22] != 48 {
		t.Errorf("m5.24xlarge valid cores = %v, want 4, 6, ... 48", got)
	}

	t2 := lookup(t, "t2.micro")
	if t2.EbsInfo.EbsOptimizedInfo != nil || t2.EbsInfo.EbsOptimizedSupport != "unsupported" ||
		t2.NetworkInfo.EnaSupport != "unsupported" || t2.VCpuInfo.ValidCores != nil ||
		!slices.Equal(t2.ProcessorInfo.SupportedArchitectures, []string{"i386", "x86_64"}) ||
		t2.DedicatedHostsSupported || !t2.BurstablePerformanceSupported {
		t.Errorf("t2.micro = %+v", t2)
	}
	if got := lookup(t, "t2.nano").SupportedUsageClasses; !slices.Equal(got, []string{"on-demand"}) {
		t.Errorf("t2.nano usage classes = %v, want on-demand only", got)
	}
	if got := lookup(t, "t3.large").PlacementGroupInfo.SupportedStrategies; !slices.Equal(got, []string{"partition", "spread"}) {
		t.Errorf("t3.large placement strategies = %v", got)
	}

	i3 := lookup(t, "i3.large")
	wantStore := InstanceStorageInfo{TotalSizeInGB: 475, Disks: List[DiskInfo]{{SizeInGB: 475, Count: 1, Type: "ssd"}}, NvmeSupport: "required", EncryptionSupport: "required"}
	if !reflect.DeepEqual(i3.InstanceStorageInfo, &wantStore) {
		t.Errorf("i3.large store = %+v, want %+v", i3.InstanceStorageInfo, wantStore)
	}
	if i3.AutoRecoverySupported || i3.NetworkInfo.EnaSupport != "supported" || i3.EbsInfo.MaximumEbsAttachments != 40 {
		t.Errorf("i3.large = %+v", i3)
	}

	m := lookup(t, "m6i.metal")
	if m.VCpuInfo.ValidCores != nil || m.VCpuInfo.ValidThreadsPerCore != nil || m.NitroTpmInfo != nil ||
		!slices.Equal(m.SupportedBootModes, []string{"legacy-bios"}) || m.EbsInfo.MaximumEbsAttachments != 31 ||
		!m.NetworkInfo.EfaSupported || m.NetworkInfo.EfaInfo == nil || m.NetworkInfo.EfaInfo.MaximumEfaInterfaces != 1 {
		t.Errorf("m6i.metal = %+v", m)
	}
	if m := lookup(t, "m6i.16xlarge"); m.NetworkInfo.EfaSupported || !m.NetworkInfo.EnaSrdSupported ||
		m.NetworkInfo.FlexibleEnaQueuesSupport != "supported" || !m.NetworkInfo.EncryptionInTransitSupported {
		t.Errorf("m6i.16xlarge network = %+v", m.NetworkInfo)
	}
	for _, name := range []string{"c5.24xlarge", "c5.metal", "i4i.12xlarge", "i4i.24xlarge", "t2.micro", "t3a.large"} {
		if lookup(t, name).DedicatedHostsSupported {
			t.Errorf("%s: dedicated hosts supported, EC2 says not", name)
		}
	}
	// AWS now lists m5, c5, r5, m6i and r6i as previous generation.
	for name, want := range map[string]bool{"m5.large": false, "m6i.large": false, "c5.large": false, "c6i.large": true,
		"r5.large": false, "r6i.large": false, "t2.micro": true, "t3.micro": true, "i3.large": true, "i4i.large": true} {
		if got := lookup(t, name).CurrentGeneration; got != want {
			t.Errorf("%s: current generation = %v, want %v", name, got, want)
		}
	}
}

var sizeOrder = []string{"nano", "micro", "small", "medium", "large", "xlarge", "2xlarge", "4xlarge",
	"8xlarge", "9xlarge", "12xlarge", "16xlarge", "18xlarge", "24xlarge", "32xlarge", "metal"}

func TestFamiliesAndSizes(t *testing.T) {
	want := map[string][]string{
		"t2":  {"nano", "micro", "small", "medium", "large", "xlarge", "2xlarge"},
		"t3":  {"nano", "micro", "small", "medium", "large", "xlarge", "2xlarge"},
		"t3a": {"nano", "micro", "small", "medium", "large", "xlarge", "2xlarge"},
		"m5":  {"large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge", "metal"},
		"m6i": {"large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge", "32xlarge", "metal"},
		"c5":  {"large", "xlarge", "2xlarge", "4xlarge", "9xlarge", "12xlarge", "18xlarge", "24xlarge", "metal"},
		"c6i": {"large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge", "32xlarge", "metal"},
		"r5":  {"large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge", "metal"},
		"r6i": {"large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge", "32xlarge", "metal"},
		"i3":  {"large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "16xlarge", "metal"},
		"i4i": {"large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge", "32xlarge", "metal"},
	}
	got := map[string][]string{}
	naming := regexp.MustCompile(`^([a-z][a-z0-9]*)\.(nano|micro|small|medium|large|[1-9][0-9]*xlarge|xlarge|metal)$`)
	seen := map[string]bool{}
	all := InstanceTypes()
	for i, it := range all {
		m := naming.FindStringSubmatch(it.InstanceType)
		if m == nil {
			t.Errorf("%q does not follow EC2's family.size naming", it.InstanceType)
			continue
		}
		if seen[it.InstanceType] {
			t.Errorf("%s listed twice", it.InstanceType)
		}
		seen[it.InstanceType] = true
		if i > 0 && all[i-1].InstanceType >= it.InstanceType {
			t.Errorf("not sorted: %s before %s", all[i-1].InstanceType, it.InstanceType)
		}
		got[m[1]] = append(got[m[1]], m[2])
	}
	for fam, sizes := range got {
		slices.SortFunc(sizes, func(a, b string) int { return slices.Index(sizeOrder, a) - slices.Index(sizeOrder, b) })
		if !slices.Equal(sizes, want[fam]) {
			t.Errorf("%s sizes = %v, want %v", fam, sizes, want[fam])
		}
	}
	if len(got) != len(want) {
		t.Errorf("families = %d, want %d", len(got), len(want))
	}
	if len(all) != 95 {
		t.Errorf("%d instance types, want 95", len(all))
	}
	for _, name := range []string{"", "m5", "m5.", "m5.huge", "m7.large", ".large", "M5.LARGE"} {
		if _, ok := LookupInstanceType(name); ok {
			t.Errorf("LookupInstanceType(%q) found something", name)
		}
	}
}

// Within a type, the figures must agree with each other and with size rules.
func TestConsistency(t *testing.T) {
	for _, it := range InstanceTypes() {
		n := it.InstanceType
		fam, size, _ := strings.Cut(n, ".")
		v := it.VCpuInfo
		if v.DefaultCores*v.DefaultThreadsPerCore != v.DefaultVCpus {
			t.Errorf("%s: %d cores x %d threads != %d vCPUs", n, v.DefaultCores, v.DefaultThreadsPerCore, v.DefaultVCpus)
		}
		if len(v.ValidCores) > 0 && v.ValidCores[len(v.ValidCores)-1] != v.DefaultCores {
			t.Errorf("%s: valid cores %v do not end at %d", n, v.ValidCores, v.DefaultCores)
		}
		metal := size == "metal"
		if metal != it.BareMetal || metal != (it.Hypervisor == "") || (metal && len(v.ValidCores) > 0) {
			t.Errorf("%s: bare metal %v, hypervisor %q, valid cores %v", n, it.BareMetal, it.Hypervisor, v.ValidCores)
		}
		if !metal && fam != "t2" && len(v.ValidCores) == 0 {
			t.Errorf("%s: no valid cores", n)
		}
		net := it.NetworkInfo
		if len(net.NetworkCards) != 1 || net.NetworkCards[0].NetworkPerformance != net.NetworkPerformance ||
			net.NetworkCards[0].MaximumNetworkInterfaces != net.MaximumNetworkInterfaces || net.MaximumNetworkCards != 1 {
			t.Errorf("%s: network cards %+v disagree with %+v", n, net.NetworkCards, net)
		}
		if net.Ipv6AddressesPerInterface != net.Ipv4AddressesPerInterface || !net.Ipv6Supported {
			t.Errorf("%s: IPv6 %d vs IPv4 %d", n, net.Ipv6AddressesPerInterface, net.Ipv4AddressesPerInterface)
		}
		if e := it.EbsInfo.EbsOptimizedInfo; e != nil {
			if e.BaselineThroughputInMBps*8 != float64(e.BaselineBandwidthInMbps) || e.MaximumThroughputInMBps*8 != float64(e.MaximumBandwidthInMbps) ||
				e.BaselineBandwidthInMbps > e.MaximumBandwidthInMbps || e.BaselineIops > e.MaximumIops {
				t.Errorf("%s: EBS figures %+v", n, e)
			}
		} else if fam != "t2" {
			t.Errorf("%s: not EBS-optimized", n)
		}
		if s := it.InstanceStorageInfo; s != nil {
			var total int64
			for _, d := range s.Disks {
				total += d.SizeInGB * int64(d.Count)
			}
			if total != s.TotalSizeInGB || !it.InstanceStorageSupported {
				t.Errorf("%s: instance store %+v", n, s)
			}
		}
		if it.HibernationSupported && (metal || it.MemoryInfo.SizeInMiB >= 150*1024) {
			t.Errorf("%s: hibernation on metal or 150 GiB or more", n)
		}
		if it.BurstablePerformanceSupported != strings.HasPrefix(n, "t") {
			t.Errorf("%s: burstable = %v", n, it.BurstablePerformanceSupported)
		}
	}
}

// The marshalled XML must use EC2's wire names (as the SDK's
// awsEc2query_deserializeDocument* functions read them), in lists of <item>.
func TestXML(t *testing.T) {
	members := map[string][]string{
		"item": {"instanceType", "currentGeneration", "freeTierEligible", "supportedUsageClasses", "supportedRootDeviceTypes",
			"supportedVirtualizationTypes", "bareMetal", "hypervisor", "processorInfo", "vCpuInfo", "memoryInfo",
			"instanceStorageSupported", "instanceStorageInfo", "ebsInfo", "networkInfo", "placementGroupInfo",
			"hibernationSupported", "burstablePerformanceSupported", "dedicatedHostsSupported", "autoRecoverySupported",
			"supportedBootModes", "nitroEnclavesSupport", "nitroTpmSupport", "nitroTpmInfo", "phcSupport",
			"rebootMigrationSupport", "supportedInRegion"},
		"processorInfo":       {"supportedArchitectures", "sustainedClockSpeedInGhz", "supportedFeatures", "manufacturer"},
		"vCpuInfo":            {"defaultVCpus", "defaultCores", "defaultThreadsPerCore", "validCores", "validThreadsPerCore"},
		"memoryInfo":          {"sizeInMiB"},
		"instanceStorageInfo": {"totalSizeInGB", "disks", "nvmeSupport", "encryptionSupport"},
		"disks/item":          {"sizeInGB", "count", "type"},
		"ebsInfo":             {"ebsOptimizedSupport", "encryptionSupport", "ebsOptimizedInfo", "nvmeSupport", "maximumEbsAttachments", "attachmentLimitType"},
		"ebsOptimizedInfo": {"baselineBandwidthInMbps", "baselineThroughputInMBps", "baselineIops",
			"maximumBandwidthInMbps", "maximumThroughputInMBps", "maximumIops"},
		"networkInfo": {"networkPerformance", "maximumNetworkInterfaces", "maximumNetworkCards", "defaultNetworkCardIndex",
			"networkCards", "ipv4AddressesPerInterface", "ipv6AddressesPerInterface", "ipv6Supported", "enaSupport",
			"efaSupported", "efaInfo", "encryptionInTransitSupported", "enaSrdSupported", "bandwidthWeightings",
			"flexibleEnaQueuesSupport", "connectionTrackingConfiguration", "secondaryNetworkSupported"},
		"networkCards/item": {"networkCardIndex", "networkPerformance", "maximumNetworkInterfaces", "additionalFlexibleNetworkInterfaces",
			"baselineBandwidthInGbps", "peakBandwidthInGbps", "defaultEnaQueueCountPerInterface", "maximumEnaQueueCount",
			"maximumEnaQueueCountPerInterface"},
		"efaInfo":                         {"maximumEfaInterfaces"},
		"connectionTrackingConfiguration": {"defaultTcpEstablishedTimeout", "defaultUdpTimeout", "defaultUdpStreamTimeout"},
		"placementGroupInfo":              {"supportedStrategies"},
		"nitroTpmInfo":                    {"supportedVersions"},
	}
	lists := []string{"supportedUsageClasses", "supportedRootDeviceTypes", "supportedVirtualizationTypes", "supportedBootModes",
		"supportedArchitectures", "supportedFeatures", "validCores", "validThreadsPerCore", "disks", "networkCards",
		"bandwidthWeightings", "supportedStrategies", "supportedVersions"}
	for _, it := range InstanceTypes() {
		b, err := xml.Marshal(it)
		if err != nil {
			t.Fatalf("%s: %v", it.InstanceType, err)
		}
		d := xml.NewDecoder(strings.NewReader(string(b)))
		var stack []string
		for {
			tok, err := d.Token()
			if err != nil {
				break
			}
			switch tok := tok.(type) {
			case xml.StartElement:
				name := tok.Name.Local
				switch {
				case len(stack) == 0:
					if name != "item" {
						t.Fatalf("%s: root element <%s>", it.InstanceType, name)
					}
				case slices.Contains(lists, stack[len(stack)-1]):
					if name != "item" {
						t.Errorf("%s: <%s> inside list <%s>", it.InstanceType, name, stack[len(stack)-1])
					}
				default:
					parent := stack[len(stack)-1]
					if parent == "item" && len(stack) > 1 {
						parent = stack[len(stack)-2] + "/item"
					}
					if !slices.Contains(members[parent], name) {
						t.Errorf("%s: unexpected <%s> in <%s>", it.InstanceType, name, parent)
					}
				}
				stack = append(stack, name)
			case xml.EndElement:
				stack = stack[:len(stack)-1]
			}
		}
		if empty := regexp.MustCompile(`<\w+></\w+>`).Find(b); empty != nil {
			t.Errorf("%s: empty element %s (EC2 leaves empty lists out)", it.InstanceType, empty)
		}

		// What EC2 returns reads back into the same value.
		var back InstanceType
		if err := xml.Unmarshal(b, &back); err != nil {
			t.Fatalf("%s: %v", it.InstanceType, err)
		}
		back.XMLName = xml.Name{}
		if !reflect.DeepEqual(back, it) {
			t.Errorf("%s: XML round trip\n got %+v\nwant %+v", it.InstanceType, back, it)
		}
	}

	b, err := xml.Marshal(lookup(t, "c5.large"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{
		`<item><instanceType>c5.large</instanceType><currentGeneration>false</currentGeneration><freeTierEligible>false</freeTierEligible>`,
		`<supportedUsageClasses><item>on-demand</item><item>spot</item></supportedUsageClasses>`,
		`<hypervisor>nitro</hypervisor>`,
		`<processorInfo><supportedArchitectures><item>x86_64</item></supportedArchitectures><sustainedClockSpeedInGhz>3.4</sustainedClockSpeedInGhz><manufacturer>Intel</manufacturer></processorInfo>`,
		`<vCpuInfo><defaultVCpus>2</defaultVCpus><defaultCores>1</defaultCores><defaultThreadsPerCore>2</defaultThreadsPerCore><validCores><item>1</item></validCores><validThreadsPerCore><item>1</item><item>2</item></validThreadsPerCore></vCpuInfo>`,
		`<memoryInfo><sizeInMiB>4096</sizeInMiB></memoryInfo>`,
		`<baselineThroughputInMBps>81.25</baselineThroughputInMBps>`,
		`<maximumThroughputInMBps>593.75</maximumThroughputInMBps>`,
		`<networkPerformance>Up to 10 Gigabit</networkPerformance><maximumNetworkInterfaces>3</maximumNetworkInterfaces>`,
		`<ipv4AddressesPerInterface>10</ipv4AddressesPerInterface>`,
		`<networkCards><item><networkCardIndex>0</networkCardIndex>`,
		`<placementGroupInfo><supportedStrategies><item>cluster</item><item>partition</item><item>spread</item></supportedStrategies></placementGroupInfo>`,
		`<supportedBootModes><item>legacy-bios</item><item>uefi</item></supportedBootModes>`,
	} {
		if !strings.Contains(s, want) {
			t.Errorf("c5.large XML lacks %s\nin %s", want, s)
		}
	}
	if strings.Contains(s, "instanceStorageInfo") || strings.Contains(s, "efaInfo") {
		t.Errorf("c5.large XML has elements EC2 leaves out: %s", s)
	}
	b, _ = xml.Marshal(lookup(t, "m5.metal"))
	if s := string(b); strings.Contains(s, "<hypervisor>") || strings.Contains(s, "<validCores>") {
		t.Errorf("m5.metal XML has a hypervisor or valid cores: %s", s)
	}
	b, _ = xml.Marshal(lookup(t, "i3.large"))
	if s := string(b); !strings.Contains(s, `<instanceStorageInfo><totalSizeInGB>475</totalSizeInGB><disks><item><sizeInGB>475</sizeInGB><count>1</count><type>ssd</type></item></disks><nvmeSupport>required</nvmeSupport><encryptionSupport>required</encryptionSupport></instanceStorageInfo>`) {
		t.Errorf("i3.large instance storage XML: %s", s)
	}
}

func TestFilterValues(t *testing.T) {
	tests := []struct {
		typ, filter string
		want        []string
	}{
		{"c5.large", "instance-type", []string{"c5.large"}},
		{"c5.large", "vcpu-info.default-vcpus", []string{"2"}},
		{"c5.large", "vcpu-info.default-cores", []string{"1"}},
		{"c5.large", "vcpu-info.default-threads-per-core", []string{"2"}},
		{"c5.large", "vcpu-info.valid-cores", []string{"1"}},
		{"c5.large", "vcpu-info.valid-threads-per-core", []string{"1", "2"}},
		{"c5.large", "memory-info.size-in-mib", []string{"4096"}},
		{"c5.large", "network-info.network-performance", []string{"Up to 10 Gigabit"}},
		{"c5.large", "network-info.maximum-network-interfaces", []string{"3"}},
		{"c5.large", "network-info.ipv4-addresses-per-interface", []string{"10"}},
		{"c5.large", "network-info.ipv6-addresses-per-interface", []string{"10"}},
		{"c5.large", "network-info.ipv6-supported", []string{"true"}},
		{"c5.large", "network-info.ena-support", []string{"required"}},
		{"c5.large", "network-info.efa-supported", []string{"false"}},
		{"c5.large", "network-info.efa-info.maximum-efa-interfaces", nil},
		{"c5.large", "network-info.maximum-network-cards", []string{"1"}},
		{"c5.large", "network-info.encryption-in-transit-supported", []string{"false"}},
		{"c5.large", "network-info.flexible-ena-queues-support", []string{"unsupported"}},
		{"c5.large", "network-info.bandwidth-weightings", nil},
		{"c5.large", "processor-info.supported-architecture", []string{"x86_64"}},
		{"c5.large", "processor-info.sustained-clock-speed-in-ghz", []string{"3.4"}},
		{"c5.large", "processor-info.manufacturer", []string{"Intel"}},
		{"c5.large", "processor-info.supported-features", nil},
		{"c5.large", "ebs-info.ebs-optimized-support", []string{"default"}},
		{"c5.large", "ebs-info.encryption-support", []string{"supported"}},
		{"c5.large", "ebs-info.nvme-support", []string{"required"}},
		{"c5.large", "ebs-info.maximum-ebs-attachments", []string{"27"}},
		{"c5.large", "ebs-info.attachment-limit-type", []string{"shared"}},
		{"c5.large", "ebs-info.ebs-optimized-info.baseline-bandwidth-in-mbps", []string{"650"}},
		{"c5.large", "ebs-info.ebs-optimized-info.baseline-iops", []string{"4000"}},
		{"c5.large", "ebs-info.ebs-optimized-info.baseline-throughput-in-mbps", []string{"81.25"}},
		{"c5.large", "ebs-info.ebs-optimized-info.maximum-bandwidth-in-mbps", []string{"4750"}},
		{"c5.large", "ebs-info.ebs-optimized-info.maximum-iops", []string{"20000"}},
		{"c5.large", "ebs-info.ebs-optimized-info.maximum-throughput-in-mbps", []string{"593.75"}},
		{"c5.large", "hypervisor", []string{"nitro"}},
		{"c5.large", "bare-metal", []string{"false"}},
		{"c5.large", "current-generation", []string{"false"}},
		{"c5.large", "free-tier-eligible", []string{"false"}},
		{"c5.large", "hibernation-supported", []string{"true"}},
		{"c5.large", "burstable-performance-supported", []string{"false"}},
		{"c5.large", "dedicated-hosts-supported", []string{"true"}},
		{"c5.large", "auto-recovery-supported", []string{"true"}},
		{"c5.large", "instance-storage-supported", []string{"false"}},
		{"c5.large", "instance-storage-info.total-size-in-gb", nil},
		{"c5.large", "instance-storage-info.disk.type", nil},
		{"c5.large", "supported-usage-class", []string{"on-demand", "spot"}},
		{"c5.large", "supported-root-device-type", []string{"ebs"}},
		{"c5.large", "supported-virtualization-type", []string{"hvm"}},
		{"c5.large", "supported-boot-mode", []string{"legacy-bios", "uefi"}},
		{"c5.large", "placement-group-info.supported-strategy", []string{"cluster", "partition", "spread"}},
		{"c5.large", "nitro-enclaves-support", []string{"unsupported"}},
		{"c5.large", "nitro-tpm-support", []string{"supported"}},
		{"c5.large", "nitro-tpm-info.supported-versions", []string{"2.0"}},
		{"c5.large", "reboot-migration-support", []string{"supported"}},
		{"c5.xlarge", "nitro-enclaves-support", []string{"supported"}},
		{"m5.metal", "hypervisor", nil},
		{"m5.metal", "bare-metal", []string{"true"}},
		{"m5.metal", "vcpu-info.valid-cores", nil},
		{"m5.metal", "vcpu-info.default-vcpus", []string{"96"}},
		{"m5.24xlarge", "vcpu-info.valid-cores", []string{"4", "6", "8", "10", "12", "14", "16", "18", "20", "22", "24",
			"26", "28", "30", "32", "34", "36", "38", "40", "42", "44", "46", "48"}},
		{"m6i.metal", "network-info.efa-supported", []string{"true"}},
		{"m6i.metal", "network-info.efa-info.maximum-efa-interfaces", []string{"1"}},
		{"m6i.metal", "ebs-info.ebs-optimized-info.maximum-throughput-in-mbps", []string{"5000"}},
		{"t2.micro", "free-tier-eligible", []string{"true"}},
		{"t2.micro", "hypervisor", []string{"xen"}},
		{"t2.micro", "processor-info.supported-architecture", []string{"i386", "x86_64"}},
		{"t2.micro", "processor-info.sustained-clock-speed-in-ghz", []string{"2.5"}},
		{"t2.micro", "ebs-info.ebs-optimized-support", []string{"unsupported"}},
		{"t2.micro", "ebs-info.ebs-optimized-info.maximum-iops", nil},
		{"t2.micro", "burstable-performance-supported", []string{"true"}},
		{"t2.micro", "placement-group-info.supported-strategy", []string{"partition", "spread"}},
		{"t3a.micro", "processor-info.manufacturer", []string{"AMD"}},
		{"t3.nano", "ebs-info.ebs-optimized-info.baseline-throughput-in-mbps", []string{"5.375"}},
		{"i3.large", "instance-storage-supported", []string{"true"}},
		{"i3.large", "instance-storage-info.total-size-in-gb", []string{"475"}},
		{"i3.large", "instance-storage-info.disk.count", []string{"1"}},
		{"i3.large", "instance-storage-info.disk.size-in-gb", []string{"475"}},
		{"i3.large", "instance-storage-info.disk.type", []string{"ssd"}},
		{"i3.large", "instance-storage-info.nvme-support", []string{"required"}},
		{"i3.large", "instance-storage-info.encryption-support", []string{"required"}},
		{"i3.large", "auto-recovery-supported", []string{"false"}},
		{"i4i.32xlarge", "instance-storage-info.disk.count", []string{"8"}},
		{"i4i.32xlarge", "instance-storage-info.total-size-in-gb", []string{"30000"}},
		{"i4i.12xlarge", "network-info.network-performance", []string{"28.12 Gigabit"}},
	}
	for _, tc := range tests {
		got, ok := lookup(t, tc.typ).FilterValues(tc.filter)
		if !ok {
			t.Errorf("%s: filter %s unknown", tc.typ, tc.filter)
			continue
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: filter %s = %q, want %q", tc.typ, tc.filter, got, tc.want)
		}
	}

	m5 := lookup(t, "m5.large")
	for _, name := range []string{"", "instance-types", "vcpus", "tag:Name", "tag-key", "availability-zone", "location", "Instance-Type", "vcpu-info"} {
		if v, ok := m5.FilterValues(name); ok {
			t.Errorf("FilterValues(%q) = %q, ok; EC2 has no such filter", name, v)
		}
	}

	// Every filter EC2 documents for DescribeInstanceTypes is known.
	documented := []string{"auto-recovery-supported", "bare-metal", "burstable-performance-supported", "current-generation",
		"dedicated-hosts-supported", "ebs-info.attachment-limit-type", "ebs-info.maximum-ebs-attachments",
		"ebs-info.ebs-optimized-info.baseline-bandwidth-in-mbps", "ebs-info.ebs-optimized-info.baseline-iops",
		"ebs-info.ebs-optimized-info.baseline-throughput-in-mbps", "ebs-info.ebs-optimized-info.maximum-bandwidth-in-mbps",
		"ebs-info.ebs-optimized-info.maximum-iops", "ebs-info.ebs-optimized-info.maximum-throughput-in-mbps",
		"ebs-info.ebs-optimized-support", "ebs-info.encryption-support", "ebs-info.nvme-support", "free-tier-eligible",
		"hibernation-supported", "hypervisor", "instance-storage-info.disk.count", "instance-storage-info.disk.size-in-gb",
		"instance-storage-info.disk.type", "instance-storage-info.encryption-support", "instance-storage-info.nvme-support",
		"instance-storage-info.total-size-in-gb", "instance-storage-supported", "instance-type", "memory-info.size-in-mib",
		"network-info.bandwidth-weightings", "network-info.efa-info.maximum-efa-interfaces", "network-info.efa-supported",
		"network-info.ena-support", "network-info.flexible-ena-queues-support", "network-info.encryption-in-transit-supported",
		"network-info.ipv4-addresses-per-interface", "network-info.ipv6-addresses-per-interface", "network-info.ipv6-supported",
		"network-info.maximum-network-cards", "network-info.maximum-network-interfaces", "network-info.network-performance",
		"nitro-enclaves-support", "nitro-tpm-support", "nitro-tpm-info.supported-versions",
		"processor-info.supported-architecture", "processor-info.sustained-clock-speed-in-ghz",
		"processor-info.supported-features", "reboot-migration-support", "supported-boot-mode", "supported-root-device-type",
		"supported-usage-class", "supported-virtualization-type", "vcpu-info.default-cores",
		"vcpu-info.default-threads-per-core", "vcpu-info.default-vcpus", "vcpu-info.valid-cores",
		"vcpu-info.valid-threads-per-core"}
	for _, name := range documented {
		if !slices.Contains(InstanceTypeFilters(), name) {
			t.Errorf("InstanceTypeFilters lacks %s", name)
		}
	}
	if names := InstanceTypeFilters(); !slices.IsSorted(names) || len(slices.Compact(slices.Clone(names))) != len(names) {
		t.Errorf("InstanceTypeFilters not sorted and unique: %v", names)
	}
	for _, it := range InstanceTypes() {
		for _, name := range InstanceTypeFilters() {
			if _, ok := it.FilterValues(name); !ok {
				t.Errorf("%s: listed filter %s unknown", it.InstanceType, name)
			}
		}
	}
}

// Callers get values of their own: changing one changes nothing else.
func TestValuesAreCopies(t *testing.T) {
	a := lookup(t, "m5.large")
	a.SupportedUsageClasses[0] = "changed"
	a.VCpuInfo.ValidThreadsPerCore[0] = 99
	a.EbsInfo.EbsOptimizedInfo.MaximumIops = 1
	a.NetworkInfo.NetworkCards[0].MaximumNetworkInterfaces = 99
	vs, _ := a.FilterValues("supported-usage-class")
	vs[0] = "changed again"
	all := InstanceTypes()
	all[0].SupportedBootModes[0] = "changed"
	b := lookup(t, "m5.large")
	if b.SupportedUsageClasses[0] != "on-demand" || b.VCpuInfo.ValidThreadsPerCore[0] != 1 ||
		b.EbsInfo.EbsOptimizedInfo.MaximumIops != 18750 || b.NetworkInfo.NetworkCards[0].MaximumNetworkInterfaces != 3 {
		t.Errorf("catalogue changed through a returned value: %+v", b)
	}
	if InstanceTypes()[0].SupportedBootModes[0] != "legacy-bios" {
		t.Error("catalogue changed through InstanceTypes")
	}
}

func TestOfferings(t *testing.T) {
	n := len(InstanceTypes())
	region := Offerings("region", "eu-west-1", []string{"eu-west-1a"}, []string{"euw1-az1"})
	if len(region) != n {
		t.Fatalf("region offerings = %d, want %d", len(region), n)
	}
	if region[0] != (Offering{InstanceType: "c5.12xlarge", LocationType: "region", Location: "eu-west-1"}) {
		t.Errorf("first region offering = %+v", region[0])
	}
	zones := Offerings("availability-zone", "eu-west-1", []string{"eu-west-1a", "eu-west-1b"}, nil)
	if len(zones) != 2*n {
		t.Fatalf("zone offerings = %d, want %d", len(zones), 2*n)
	}
	if zones[1] != (Offering{InstanceType: "c5.12xlarge", LocationType: "availability-zone", Location: "eu-west-1b"}) {
		t.Errorf("second zone offering = %+v", zones[1])
	}
	ids := Offerings("availability-zone-id", "eu-west-1", []string{"eu-west-1a"}, []string{"euw1-az1", "euw1-az2", "euw1-az3"})
	if len(ids) != 3*n || ids[2].Location != "euw1-az3" || ids[2].LocationType != "availability-zone-id" {
		t.Errorf("zone id offerings: %d, third %+v", len(ids), ids[2])
	}
	if got := Offerings("outpost", "eu-west-1", nil, nil); got != nil {
		t.Errorf("unknown location type offered %d", len(got))
	}

	o := Offering{InstanceType: "t3.micro", LocationType: "availability-zone", Location: "eu-west-1a"}
	if v, ok := o.FilterValues("instance-type"); !ok || !slices.Equal(v, []string{"t3.micro"}) {
		t.Errorf("instance-type = %q, %v", v, ok)
	}
	if v, ok := o.FilterValues("location"); !ok || !slices.Equal(v, []string{"eu-west-1a"}) {
		t.Errorf("location = %q, %v", v, ok)
	}
	if _, ok := o.FilterValues("location-type"); ok {
		t.Error("location-type accepted; EC2 documents only instance-type and location")
	}
	b, err := xml.Marshal(struct {
		XMLName xml.Name   `xml:"instanceTypeOfferingSet"`
		Items   []Offering `xml:"item"`
	}{Items: []Offering{o}})
	if err != nil {
		t.Fatal(err)
	}
	if want := `<instanceTypeOfferingSet><item><instanceType>t3.micro</instanceType><locationType>availability-zone</locationType><location>eu-west-1a</location></item></instanceTypeOfferingSet>`; string(b) != want {
		t.Errorf("offering XML = %s, want %s", b, want)
	}
}
