package catalog

// Columns of the size tables: see type size in catalog.go.

// t2: burstable, Xen, Intel; no EBS optimization, no ENA.
var t2 = family{
	name: "t2", manufacturer: "Intel", ghz: 2.3,
	ghzOf: map[string]float64{"nano": 2.4, "micro": 2.5, "small": 2.5}, threads: 1,
	hypervisor: xen, current: true, burstable: true, ena: "unsupported", ebsNVMe: "unsupported",
	hibernation: true,
	sizes: []size{
		// size, vCPUs, MiB, valid cores, network, ENIs, IPs per ENI, Gbps, ENA queues, EBS, instance store, quirks
		{"nano", 1, 512, noCores, "Low to Moderate", 2, 2, bw(0.032, 0.512), q(1, 0, 0), noEBS, noStore, i386 | onDemandOnly},
		{"micro", 1, 1024, noCores, "Low to Moderate", 2, 2, bw(0.064, 1.024), q(1, 0, 0), noEBS, noStore, freeTier | i386},
		{"small", 1, 2048, noCores, "Low to Moderate", 3, 4, bw(0.128, 1.024), q(1, 0, 0), noEBS, noStore, i386},
		{"medium", 2, 4096, noCores, "Low to Moderate", 3, 6, bw(0.256, 1.024), q(1, 0, 0), noEBS, noStore, i386},
		{"large", 2, 8192, noCores, "Low to Moderate", 3, 12, bw(0.512, 1.024), q(1, 0, 0), noEBS, noStore, 0},
		{"xlarge", 4, 16384, noCores, "Moderate", 3, 15, bw(0.75, 1.024), q(1, 0, 0), noEBS, noStore, 0},
		{"2xlarge", 8, 32768, noCores, "Moderate", 3, 15, bw(1, 1.024), q(1, 0, 0), noEBS, noStore, 0},
	},
}

// t3: burstable, Nitro, Intel Xeon.
var t3 = family{
	name: "t3", manufacturer: "Intel", ghz: 2.5, threads: 2, hypervisor: nitro, current: true,
	burstable: true, ena: "required", ebsNVMe: "required", hibernation: true, dedicated: true,
	sizes: []size{
		// size, vCPUs, MiB, valid cores, network, ENIs, IPs per ENI, Gbps, ENA queues, EBS, instance store, quirks
		{"nano", 2, 512, vc(1, 1), "Up to 5 Gigabit", 2, 2, bw(0.032, 5), q(2, 0, 0), ebs(43, 250, 2085, 11800), noStore, 0},
		{"micro", 2, 1024, vc(1, 1), "Up to 5 Gigabit", 2, 2, bw(0.064, 5), q(2, 0, 0), ebs(87, 500, 2085, 11800), noStore, freeTier},
		{"small", 2, 2048, vc(1, 1), "Up to 5 Gigabit", 3, 4, bw(0.128, 5), q(2, 0, 0), ebs(174, 1000, 2085, 11800), noStore, 0},
		{"medium", 2, 4096, vc(1, 1), "Up to 5 Gigabit", 3, 6, bw(0.256, 5), q(2, 0, 0), ebs(347, 2000, 2085, 11800), noStore, 0},
		{"large", 2, 8192, vc(1, 1), "Up to 5 Gigabit", 3, 12, bw(0.512, 5), q(2, 0, 0), ebs(695, 4000, 2780, 15700), noStore, 0},
		{"xlarge", 4, 16384, vc(2, 1), "Up to 5 Gigabit", 4, 15, bw(1.024, 5), q(4, 0, 0), ebs(695, 4000, 2780, 15700), noStore, 0},
		{"2xlarge", 8, 32768, vc(2, 2), "Up to 5 Gigabit", 4, 15, bw(2.048, 5), q(8, 0, 0), ebs(695, 4000, 2780, 15700), noStore, 0},
	},
}

// t3a: burstable, Nitro, AMD EPYC.
var t3a = family{
	name: "t3a", manufacturer: "AMD", ghz: 2.2, threads: 2, hypervisor: nitro, current: true,
	burstable: true, ena: "required", ebsNVMe: "required", hibernation: true,
	sizes: []size{
		// size, vCPUs, MiB, valid cores, network, ENIs, IPs per ENI, Gbps, ENA queues, EBS, instance store, quirks
		{"nano", 2, 512, vc(1, 1), "Up to 5 Gigabit", 2, 2, bw(0.032, 5), q(8, 0, 0), ebs(45, 250, 2085, 11800), noStore, 0},
		{"micro", 2, 1024, vc(1, 1), "Up to 5 Gigabit", 2, 2, bw(0.064, 5), q(8, 0, 0), ebs(90, 500, 2085, 11800), noStore, 0},
		{"small", 2, 2048, vc(1, 1), "Up to 5 Gigabit", 2, 4, bw(0.128, 5), q(8, 0, 0), ebs(175, 1000, 2085, 11800), noStore, 0},
		{"medium", 2, 4096, vc(1, 1), "Up to 5 Gigabit", 3, 6, bw(0.256, 5), q(8, 0, 0), ebs(350, 2000, 2085, 11800), noStore, 0},
		{"large", 2, 8192, vc(1, 1), "Up to 5 Gigabit", 3, 12, bw(0.512, 5), q(8, 0, 0), ebs(695, 4000, 2780, 15700), noStore, 0},
		{"xlarge", 4, 16384, vc(2, 1), "Up to 5 Gigabit", 4, 15, bw(1.024, 5), q(8, 0, 0), ebs(695, 4000, 2780, 15700), noStore, 0},
		{"2xlarge", 8, 32768, vc(2, 2), "Up to 5 Gigabit", 4, 15, bw(2.048, 5), q(8, 0, 0), ebs(695, 4000, 2780, 15700), noStore, 0},
	},
}
