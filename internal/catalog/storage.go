package catalog

// Columns of the size tables: see type size in catalog.go.

// i3: storage optimized, Xen (metal: Nitro), NVMe SSD instance store.
var i3 = family{
	name: "i3", manufacturer: "Intel", ghz: 2.3, threads: 2, hypervisor: xen, current: true,
	ena: "supported", ebsNVMe: "supported", hibernation: true, dedicated: true,
	sizes: []size{
		// size, vCPUs, MiB, valid cores, network, ENIs, IPs per ENI, Gbps, ENA queues, EBS, instance store, quirks
		{"large", 2, 15616, vc(1, 1), "Up to 10 Gigabit", 3, 10, bw(0.75, 10), q(8, 0, 0), ebs(425, 3000, 425, 3000), nvme(1, 475), 0},
		{"xlarge", 4, 31232, vc(1, 1), "Up to 10 Gigabit", 4, 15, bw(1.25, 10), q(8, 0, 0), ebs(850, 6000, 850, 6000), nvme(1, 950), 0},
		{"2xlarge", 8, 62464, vc(1, 1), "Up to 10 Gigabit", 4, 15, bw(2.5, 10), q(8, 0, 0), ebs(1700, 12000, 1700, 12000), nvme(1, 1900), 0},
		{"4xlarge", 16, 124928, vc(1, 1), "Up to 10 Gigabit", 8, 30, bw(5, 10), q(8, 0, 0), ebs(3500, 16000, 3500, 16000), nvme(2, 1900), 0},
		{"8xlarge", 32, 249856, vc(1, 1), "10 Gigabit", 8, 30, bw(12, 12), q(8, 0, 0), ebs(7000, 32500, 7000, 32500), nvme(4, 1900), 0},
		{"16xlarge", 64, 499712, vc(2, 2), "25 Gigabit", 15, 50, bw(25, 25), q(8, 0, 0), ebs(14000, 65000, 14000, 65000), nvme(8, 1900), 0},
		{"metal", 72, 524288, noCores, "25 Gigabit", 15, 50, bw(25, 25), q(8, 0, 0), ebs(19000, 80000, 19000, 80000), nvme(8, 1900), 0},
	},
}

// i4i: storage optimized, Nitro, NVMe SSD instance store (AWS Nitro SSD).
var i4i = family{
	name: "i4i", manufacturer: "Intel", ghz: 3.5, threads: 2, hypervisor: nitro, current: true,
	ena: "required", ebsNVMe: "required", dedicated: true, inTransit: true, enaSRD: true,
	efa: true,
	sizes: []size{
		// size, vCPUs, MiB, valid cores, network, ENIs, IPs per ENI, Gbps, ENA queues, EBS, instance store, quirks
		{"large", 2, 16384, vc(1, 1), "Up to 10 Gigabit", 3, 10, bw(0.781, 10), q(2, 0, 0), ebs(625, 2500, 10000, 40000), nvme(1, 468), 0},
		{"xlarge", 4, 32768, vc(1, 1), "Up to 10 Gigabit", 4, 15, bw(1.875, 10), q(4, 0, 0), ebs(1250, 5000, 10000, 40000), nvme(1, 937), 0},
		{"2xlarge", 8, 65536, vc(1, 1), "Up to 12 Gigabit", 4, 15, bw(4.687, 12), q(8, 0, 0), ebs(2500, 10000, 10000, 40000), nvme(1, 1875), 0},
		{"4xlarge", 16, 131072, vc(1, 1), "Up to 25 Gigabit", 8, 30, bw(9.375, 25), q(8, 0, 0), ebs(5000, 20000, 10000, 40000), nvme(1, 3750), 0},
		{"8xlarge", 32, 262144, vc(1, 1), "18.75 Gigabit", 8, 30, bw(18.75, 18.75), q(8, 0, 0), ebs(10000, 40000, 10000, 40000), nvme(2, 3750), 0},
		{"12xlarge", 48, 393216, vc(1, 1), "28.12 Gigabit", 8, 30, bw(28.125, 28.125), q(8, 0, 0), ebs(15000, 60000, 15000, 60000), nvme(3, 3750), noDH},
		{"16xlarge", 64, 524288, vc(2, 2), "37.5 Gigabit", 15, 50, bw(37.5, 37.5), q(8, 0, 0), ebs(20000, 80000, 20000, 80000), nvme(4, 3750), 0},
		{"24xlarge", 96, 786432, vc(2, 2), "56.25 Gigabit", 15, 30, bw(56.25, 56.25), q(8, 0, 0), ebs(30000, 120000, 30000, 120000), nvme(6, 3750), noDH},
		{"32xlarge", 128, 1048576, vc(2, 2), "75 Gigabit", 15, 50, bw(75, 75), q(8, 0, 0), ebs(40000, 160000, 40000, 160000), nvme(8, 3750), 0},
		{"metal", 128, 1048576, noCores, "75 Gigabit", 15, 50, bw(75, 75), q(8, 0, 0), ebs(40000, 160000, 40000, 160000), nvme(8, 3750), 0},
	},
}
