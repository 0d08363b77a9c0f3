package volume

// Limits is the I/O a volume of v's type and size delivers, which the host
// enforces on the instance using it: IOPS and MiB/s. Where EC2 bursts (gp2
// credits, st1/sc1), the burst figure is the limit: a fresh volume's.
func Limits(v Volume) (iops, mibps int) {
	tib := float64(v.SizeGiB) / 1024
	switch v.Type {
	case "gp2":
		iops = min(max(3*v.SizeGiB, 100), 16000)
		if v.SizeGiB <= 170 {
			return iops, 128
		}
		return iops, 250
	case "io1", "io2":
		// 256 KiB per I/O at most, up to the type's ceiling.
		ceiling := 1000
		if v.Type == "io2" {
			ceiling = 4000
		}
		return v.Iops, min(v.Iops/4, ceiling)
	case "st1":
		return 500, min(int(250*tib), 500)
	case "sc1":
		return 250, min(int(80*tib), 250)
	case "standard":
		return 200, 90
	default: // gp3
		return orDefault(v.Iops, 3000), orDefault(v.Throughput, 125)
	}
}

func orDefault(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}
