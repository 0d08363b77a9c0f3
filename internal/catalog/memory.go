package catalog

// Columns of the size tables: see type size in catalog.go.

// r5: memory optimized, Intel Xeon Platinum 8175M/8259CL.
var r5 = family{
	name: "r5", manufacturer: "Intel", ghz: 3.1, threads: 2, hypervisor: nitro, current: false,
	ena: "required", ebsNVMe: "required", hibernation: true, dedicated: true,
	sizes: []size{
		// size, vCPUs, MiB, valid cores, network, ENIs, IPs per ENI, Gbps, ENA queues, EBS, instance store, quirks
		{"large", 2, 16384, vc(1, 1), "Up to 10 Gigabit", 3, 10, bw(0.75, 10), q(8, 0, 0), ebs(650, 3600, 4750, 18750), noStore, 0},
		{"xlarge", 4, 32768, vc(2, 1), "Up to 10 Gigabit", 4, 15, bw(1.25, 10), q(8, 0, 0), ebs(1150, 6000, 4750, 18750), noStore, 0},
		{"2xlarge", 8, 65536, vc(2, 2), "Up to 10 Gigabit", 4, 15, bw(2.5, 10), q(8, 0, 0), ebs(2300, 12000, 4750, 18750), noStore, 0},
		{"4xlarge", 16, 131072, vc(2, 2), "Up to 10 Gigabit", 8, 30, bw(5, 10), q(8, 0, 0), ebs(4750, 18750, 4750, 18750), noStore, 0},
		{"8xlarge", 32, 262144, vc(2, 2), "10 Gigabit", 8, 30, bw(10, 10), q(8, 0, 0), ebs(6800, 30000, 6800, 30000), noStore, 0},
		{"12xlarge", 48, 393216, vc(2, 2), "12 Gigabit", 8, 30, bw(12, 12), q(8, 0, 0), ebs(9500, 40000, 9500, 40000), noStore, 0},
		{"16xlarge", 64, 524288, vc(2, 2), "20 Gigabit", 15, 50, bw(20, 20), q(8, 0, 0), ebs(13600, 60000, 13600, 60000), noStore, 0},
		{"24xlarge", 96, 786432, vc(4, 2), "25 Gigabit", 15, 50, bw(25, 25), q(8, 0, 0), ebs(19000, 80000, 19000, 80000), noStore, 0},
		{"metal", 96, 786432, noCores, "25 Gigabit", 15, 50, bw(25, 25), q(8, 0, 0), ebs(19000, 80000, 19000, 80000), noStore, 0},
	},
}

// r6i: memory optimized, 3rd generation Intel Xeon (Ice Lake).
var r6i = family{
	name: "r6i", manufacturer: "Intel", ghz: 3.5, threads: 2, hypervisor: nitro, current: false,
	ena: "required", ebsNVMe: "required", dedicated: true, inTransit: true, enaSRD: true,
	efa: true,
	sizes: []size{
		// size, vCPUs, MiB, valid cores, network, ENIs, IPs per ENI, Gbps, ENA queues, EBS, instance store, quirks
		{"large", 2, 16384, vc(1, 1), "Up to 12.5 Gigabit", 3, 10, bw(0.781, 12.5), q(2, 6, 2), ebs(650, 3600, 10000, 40000), noStore, 0},
		{"xlarge", 4, 32768, vc(1, 1), "Up to 12.5 Gigabit", 4, 15, bw(1.562, 12.5), q(4, 16, 4), ebs(1250, 6000, 10000, 40000), noStore, 0},
		{"2xlarge", 8, 65536, vc(2, 2), "Up to 12.5 Gigabit", 4, 15, bw(3.125, 12.5), q(8, 32, 8), ebs(2500, 12000, 10000, 40000), noStore, 0},
		{"4xlarge", 16, 131072, vc(2, 2), "Up to 12.5 Gigabit", 8, 30, bw(6.25, 12.5), q(8, 64, 16), ebs(5000, 20000, 10000, 40000), noStore, 0},
		{"8xlarge", 32, 262144, vc(2, 2), "12.5 Gigabit", 8, 30, bw(12.5, 12.5), q(8, 64, 32), ebs(10000, 40000, 10000, 40000), noStore, 0},
		{"12xlarge", 48, 393216, vc(2, 2), "18.75 Gigabit", 8, 30, bw(18.75, 18.75), q(8, 64, 32), ebs(15000, 60000, 15000, 60000), noStore, 0},
		{"16xlarge", 64, 524288, vc(2, 2), "25 Gigabit", 15, 50, bw(25, 25), q(8, 120, 32), ebs(20000, 80000, 20000, 80000), noStore, 0},
		{"24xlarge", 96, 786432, vc(2, 2), "37.5 Gigabit", 15, 50, bw(37.5, 37.5), q(8, 120, 32), ebs(30000, 120000, 30000, 120000), noStore, 0},
		{"32xlarge", 128, 1048576, vc(2, 2), "50 Gigabit", 15, 50, bw(50, 50), q(8, 120, 32), ebs(40000, 160000, 40000, 160000), noStore, 0},
		{"metal", 128, 1048576, noCores, "50 Gigabit", 15, 50, bw(50, 50), q(8, 0, 32), ebs(40000, 160000, 40000, 160000), noStore, 0},
	},
}
