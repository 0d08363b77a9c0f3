package netbench_test

import (
	"context"
	"os"
	"testing"
	"time"

	"nubo/internal/network/netbench"
	"nubo/internal/network/networktest"
)

// A short run: every path carries data (the figures themselves are for
// BenchmarkDataplane and `make bench`).
func TestRunShort(t *testing.T) {
	networktest.RequireRoot(t)
	res, err := netbench.Run(context.Background(), netbench.Options{Duration: 300 * time.Millisecond, Rounds: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + res.String())
	if res.Baseline <= 0 || res.InstanceToInstance <= 0 || res.HostToPublicIP <= 0 {
		t.Errorf("a path carried nothing: %+v", res)
	}
}

// BenchmarkDataplane prints the throughputs and their ratios to the bare
// veth pair (NUBO_NETBENCH_SECONDS per measurement, default 5; 3 rounds).
func BenchmarkDataplane(b *testing.B) {
	networktest.RequireRoot(b)
	d := 5 * time.Second
	if s := os.Getenv("NUBO_NETBENCH_SECONDS"); s != "" {
		if v, err := time.ParseDuration(s + "s"); err == nil {
			d = v
		}
	}
	for range b.N {
		res, err := netbench.Run(context.Background(), netbench.Options{Duration: d})
		if err != nil {
			b.Fatal(err)
		}
		b.Log("\n" + res.String())
		ri, rp := res.Ratios()
		b.ReportMetric(res.Baseline/1e9, "baseline-Gbit/s")
		b.ReportMetric(res.InstanceToInstance/1e9, "instance-Gbit/s")
		b.ReportMetric(res.HostToPublicIP/1e9, "public-Gbit/s")
		b.ReportMetric(ri, "instance-ratio")
		b.ReportMetric(rp, "public-ratio")
	}
}
