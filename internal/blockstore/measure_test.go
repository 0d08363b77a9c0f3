package blockstore

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// BenchmarkSequential measures sequential O_DIRECT throughput through volume
// devices, encrypted and not, attached with and without direct I/O, and
// prints the figures and the encrypted/unencrypted ratios. NUBO_EBS_BENCH_MIB
// sets the size written and read per volume (default 1024).
func BenchmarkSequential(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	size := int64(1024)
	if v, err := strconv.ParseInt(os.Getenv("NUBO_EBS_BENCH_MIB"), 10, 64); err == nil && v > 0 {
		size = v
	}
	for b.Loop() {
		r, err := Measure(ctx, filepath.Join(b.TempDir(), "measure"), size<<20)
		if err != nil {
			b.Fatal(err)
		}
		b.Log("\n" + r.String())
		w, rd := r.DirectIO.Ratio()
		b.ReportMetric(r.DirectIO.Plain.WriteMiBs, "plain-write-MiB/s")
		b.ReportMetric(r.DirectIO.Plain.ReadMiBs, "plain-read-MiB/s")
		b.ReportMetric(r.DirectIO.Encrypted.WriteMiBs, "enc-write-MiB/s")
		b.ReportMetric(r.DirectIO.Encrypted.ReadMiBs, "enc-read-MiB/s")
		b.ReportMetric(w, "enc/plain-write")
		b.ReportMetric(rd, "enc/plain-read")
	}
}
