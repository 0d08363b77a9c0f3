package main

import (
	"context"
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"nubo/internal/scheduler"
	"nubo/internal/topology"
)

// benchPlacement measures placement groups two ways. In process: the
// scheduler's throughput placing 1,000 instances over 1,000 hosts, one
// request at a time (each request's snapshot holds the instances placed
// before it, as real launches' do) and in one request. End to end: a single
// instance's RunInstances → running, and RunInstances' own round trip (where
// the scheduler and the group's compare-and-swap run), with no group, a
// partition group and a spread group, launched alternately.
func benchPlacement(ctx context.Context, reps, launches int) error {
	benchScheduler(reps)
	if os.Geteuid() != 0 {
		fmt.Println("\nplacement launches: skipped (needs root)")
		return nil
	}
	return benchPlacementLaunches(ctx, launches)
}

// The in-process topology: 4 zones × 25 racks × 10 hosts = 1,000 hosts, each
// 32 vCPUs, 128 GiB, 16 slots; instances of 2 vCPUs and 512 MiB (t3.nano),
// so a host takes 16 and a rack 160.
const (
	schedZones, schedRacks, schedPerRack = 4, 25, 10
	schedVCPUs, schedMemMiB, schedSlots  = 32, 131072, 16
	instVCPUs, instMemMiB                = 2, 512
)

func schedulerView() topology.View {
	l := topology.Layout{Zones: []string{"us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d"},
		Racks: schedRacks, HostsPerRack: schedPerRack, VCPUs: schedVCPUs, MemoryMiB: schedMemMiB, Slots: schedSlots}
	v := topology.View{Hosts: l.Hosts("us-east-1", "bench"), Alloc: map[string]topology.Allocation{}, Live: map[string]bool{"bench": true}}
	sort.Slice(v.Hosts, func(i, j int) bool { return v.Hosts[i].ID < v.Hosts[j].ID })
	return v
}

type schedCase struct {
	name   string
	n      int // instances placed
	atOnce bool
	group  *scheduler.Group
}

// schedRun places c.n instances on an empty 1,000-host view and returns the
// time spent in View.Scheduling (the snapshot the API builds) and in Place.
// Recording each placement in the view (the store's write, in the API) is
// not timed.
func schedRun(c schedCase) (snapshot, place time.Duration, err error) {
	v := schedulerView()
	per, calls := 1, c.n
	if c.atOnce {
		per, calls = c.n, 1
	}
	req := scheduler.Request{MinCount: per, MaxCount: per, VCPUs: instVCPUs, MemoryMiB: instMemMiB, Account: "000000000000", Group: c.group}
	id := 0
	for i := 0; i < calls; i++ {
		t0 := time.Now()
		snap := v.Scheduling(nil, "")
		t1 := time.Now()
		ps, err := scheduler.Place(req, snap)
		t2 := time.Now()
		snapshot, place = snapshot+t1.Sub(t0), place+t2.Sub(t1)
		if err != nil {
			return 0, 0, fmt.Errorf("%s: call %d: %w", c.name, i, err)
		}
		if len(ps) != per {
			return 0, 0, fmt.Errorf("%s: call %d placed %d of %d", c.name, i, len(ps), per)
		}
		for _, p := range ps {
			a := v.Alloc[p.Host]
			if a.Instances == nil {
				a.Instances = map[string]topology.Usage{}
			}
			id++
			u := topology.Usage{VCPUs: instVCPUs, MemoryMiB: instMemMiB, Account: req.Account, Partition: p.Partition}
			if c.group != nil {
				u.Group = c.group.ID
			}
			a.Instances[fmt.Sprintf("i-%017x", id)] = u
			v.Alloc[p.Host] = a
		}
	}
	return snapshot, place, nil
}

func benchScheduler(reps int) {
	spreadHost := &scheduler.Group{ID: "pg-spreadhost", Name: "spread-host", Strategy: scheduler.Spread, SpreadLevel: scheduler.LevelHost}
	partition := &scheduler.Group{ID: "pg-partition7", Name: "partition-7", Strategy: scheduler.Partition, PartitionCount: 7}
	cluster := &scheduler.Group{ID: "pg-cluster", Name: "cluster", Strategy: scheduler.Cluster}
	cases := []schedCase{
		{"no group", 1000, false, nil},
		{"spread, level host", 1000, false, spreadHost},
		{"partition, 7 partitions, automatic", 1000, false, partition},
		{"cluster (fills one rack: 160)", 160, false, cluster},
		{"no group", 1000, true, nil},
		{"spread, level host (one zone: 250 hosts)", 250, true, spreadHost},
		{"partition, 7 partitions, automatic", 1000, true, partition},
		{"cluster (fills one rack: 160)", 160, true, cluster},
	}
	fmt.Printf("\nscheduler throughput (in process; %d hosts: %d zones × %d racks × %d hosts of %d vCPUs, %d GiB, %d slots; t3.nano-sized instances; median of %d runs)\n",
		schedZones*schedRacks*schedPerRack, schedZones, schedRacks, schedPerRack, schedVCPUs, schedMemMiB/1024, schedSlots, reps)
	fmt.Printf("  Place: the scheduler alone; +snapshot: with View.Scheduling building each call's snapshot, as the API does per launch;\n  per request: snapshot + Place, mean over a run's requests (median of the runs)\n")
	fmt.Printf("  %-44s %-22s %8s %14s %16s %12s\n", "group", "requests", "placed", "Place pl/s", "+snapshot pl/s", "per request")
	for _, c := range cases {
		var onlyPlace, withSnap []float64
		var perReq []time.Duration
		var err error
		for r := 0; r < reps; r++ {
			var s, p time.Duration
			if s, p, err = schedRun(c); err != nil {
				break
			}
			onlyPlace = append(onlyPlace, float64(c.n)/p.Seconds())
			withSnap = append(withSnap, float64(c.n)/(s+p).Seconds())
			calls := c.n
			if c.atOnce {
				calls = 1
			}
			perReq = append(perReq, (s+p)/time.Duration(calls))
		}
		how := fmt.Sprintf("%d × MaxCount=1", c.n)
		if c.atOnce {
			how = fmt.Sprintf("1 × MaxCount=%d", c.n)
		}
		if err != nil {
			fmt.Printf("  %-44s %-22s  error: %v\n", c.name, how, err)
			continue
		}
		fmt.Printf("  %-44s %-22s %8d %14.0f %16.0f %12s\n", c.name, how, c.n, medianF(onlyPlace), medianF(withSnap), pct(perReq, 50).Round(time.Microsecond))
	}
}

func medianF(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// benchPlacementLaunches launches single instances one at a time, the
// variants alternating (none, partition, spread, none, …) to cancel drift,
// each terminated (and waited for) before the next launch so that capacity
// and the spread group's 7-per-zone limit are not the variable.
func benchPlacementLaunches(ctx context.Context, n int) error {
	srv, c, stop, err := benchServer(ctx, "debian-12-minimal")
	if err != nil {
		return err
	}
	defer stop()
	// stuck says what an instance that did not run looks like, and what the
	// server logged.
	stuck := func(what string, ids []string, err error) error {
		state := ""
		if d, derr := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: ids}); derr == nil && len(d.Reservations) > 0 {
			in := d.Reservations[0].Instances[0]
			state = fmt.Sprintf(" (state %s, reason %q, host %s)", in.State.Name, aws.ToString(in.StateTransitionReason), aws.ToString(in.Placement.HostId))
			if in.StateReason != nil {
				state += fmt.Sprintf(" (state reason %q)", aws.ToString(in.StateReason.Message))
			}
		}
		log := srv.Stderr()
		if len(log) > 4000 {
			log = log[len(log)-4000:]
		}
		return fmt.Errorf("%s: %s: %w%s\nserver log (tail):\n%s", what, ids, err, state, log)
	}
	image, err := imageID(ctx, c, "debian-12-minimal")
	if err != nil {
		return err
	}
	if _, err := c.CreatePlacementGroup(ctx, &ec2.CreatePlacementGroupInput{GroupName: aws.String("bench-partition"),
		Strategy: types.PlacementStrategyPartition, PartitionCount: aws.Int32(7)}); err != nil {
		return err
	}
	if _, err := c.CreatePlacementGroup(ctx, &ec2.CreatePlacementGroupInput{GroupName: aws.String("bench-spread"),
		Strategy: types.PlacementStrategySpread}); err != nil {
		return err
	}
	variants := []struct {
		name  string
		group string
	}{
		{"no group", ""},
		{"partition group (7, automatic)", "bench-partition"},
		{"spread group (level rack)", "bench-spread"},
	}
	call := make([][]time.Duration, len(variants))
	total := make([][]time.Duration, len(variants))
	// One launch of each first, unmeasured: the image cache and first paths warm.
	for round := -1; round < n; round++ {
		for vi, v := range variants {
			in := &ec2.RunInstancesInput{ImageId: image, InstanceType: types.InstanceTypeT3Nano, MinCount: aws.Int32(1), MaxCount: aws.Int32(1)}
			if v.group != "" {
				in.Placement = &types.Placement{GroupName: aws.String(v.group)}
			}
			t0 := time.Now()
			out, err := c.RunInstances(ctx, in)
			if err != nil {
				return fmt.Errorf("%s: %w", v.name, err)
			}
			rtt := time.Since(t0)
			ids := []string{aws.ToString(out.Instances[0].InstanceId)}
			if err := waitRunning(ctx, c, ids, 5*time.Millisecond); err != nil {
				return stuck(fmt.Sprintf("%s, round %d", v.name, round), ids, err)
			}
			running := time.Since(t0)
			if round >= 0 {
				call[vi] = append(call[vi], rtt)
				total[vi] = append(total[vi], running)
			}
			if _, err := c.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: ids}); err != nil {
				return err
			}
			if err := ec2.NewInstanceTerminatedWaiter(c, func(o *ec2.InstanceTerminatedWaiterOptions) {
				o.MinDelay, o.MaxDelay = 20*time.Millisecond, 100*time.Millisecond
			}).Wait(ctx, &ec2.DescribeInstancesInput{InstanceIds: ids}, 2*time.Minute); err != nil {
				return stuck(fmt.Sprintf("%s, round %d, terminating", v.name, round), ids, err)
			}
		}
	}
	fmt.Printf("\nplacement group launch overhead (debian-12-minimal t3.nano, one at a time, variants alternating, n=%d each, each terminated before the next launch; default topology)\n", n)
	fmt.Printf("  %-32s %26s %8s   %26s %8s\n", "", "RunInstances → running", "p50/none", "RunInstances call alone", "p50/none")
	for vi, v := range variants {
		fmt.Printf("  %-32s p50 %8s  p90 %8s %8s   p50 %8s  p90 %8s %8s\n", v.name,
			ms(pct(total[vi], 50)), ms(pct(total[vi], 90)), fmt.Sprintf("%.2fx", float64(pct(total[vi], 50))/float64(pct(total[0], 50))),
			ms(pct(call[vi], 50)), ms(pct(call[vi], 90)), fmt.Sprintf("%.2fx", float64(pct(call[vi], 50))/float64(pct(call[0], 50))))
	}
	for _, g := range []string{"bench-partition", "bench-spread"} {
		if _, err := c.DeletePlacementGroup(ctx, &ec2.DeletePlacementGroupInput{GroupName: aws.String(g)}); err != nil {
			return fmt.Errorf("deleting %s: %w", g, err)
		}
	}
	return nil
}
