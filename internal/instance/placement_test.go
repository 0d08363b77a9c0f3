package instance

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"nubo/internal/apierr"
	"nubo/internal/scheduler"
	"nubo/internal/store"
	"nubo/internal/topology"
)

// withGroups gives s placement groups kept as plain records: name → rules.
func withGroups(t *testing.T, s *Service, groups ...scheduler.Group) {
	t.Helper()
	byName := map[string]scheduler.Group{}
	for _, g := range groups {
		byName[g.Name], byName[g.ID] = g, g
		if err := s.Store.Apply(context.Background(), store.Op{Key: store.Root + "test/pg/" + g.ID, Value: g}); err != nil {
			t.Fatal(err)
		}
	}
	s.PlacementGroups = func(ctx context.Context, account, name, id string) (PlacementGroup, error) {
		g, ok := byName[name+id]
		if !ok {
			return PlacementGroup{}, apierr.New("InvalidPlacementGroup.Unknown", "unknown %s", name+id)
		}
		return PlacementGroup{Group: &g, Key: store.Root + "test/pg/" + g.ID}, nil
	}
}

// race launches n single instances at once and counts who got one.
func race(t *testing.T, s *Service, sp RunSpec, n int) (ok int, codes map[string]int) {
	t.Helper()
	var mu sync.Mutex
	var wg sync.WaitGroup
	codes = map[string]int{}
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Run(context.Background(), account, sp)
			mu.Lock()
			defer mu.Unlock()
			var ae *apierr.Error
			switch {
			case err == nil:
				ok++
			case errors.As(err, &ae):
				codes[ae.Code]++
			default:
				t.Errorf("launch: %v", err)
			}
		}()
	}
	wg.Wait()
	return ok, codes
}

// perHost counts the instances each host's allocation holds.
func perHost(t *testing.T, s *Service) map[string]int {
	t.Helper()
	v, err := topology.Read(context.Background(), s.Store)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, h := range v.Hosts {
		out[h.ID] = len(v.Alloc[h.ID].Instances)
	}
	return out
}

// TestRunRacesForLastSlots: concurrent launches never overfill a host.
func TestRunRacesForLastSlots(t *testing.T) {
	s, image := newServiceOn(t, topology.Layout{Zones: []string{"us-east-1a"}, Racks: 1, HostsPerRack: 2, VCPUs: 64, Slots: 2})
	ok, codes := race(t, s, spec(image, nil), 10)
	if ok != 4 || codes[scheduler.InsufficientInstanceCapacity] != 6 {
		t.Fatalf("%d launched, errors %v; want 4 and 6 InsufficientInstanceCapacity", ok, codes)
	}
	for h, n := range perHost(t, s) {
		if n != 2 {
			t.Fatalf("host %s holds %d instances, want its 2 slots", h, n)
		}
	}
}

// TestSpreadRaceKeepsSeven: concurrent launches into one spread group,
// each free to pick any empty rack, still stop at 7 in the zone.
func TestSpreadRaceKeepsSeven(t *testing.T) {
	s, image := newServiceOn(t, topology.Layout{Zones: []string{"us-east-1a"}, Racks: 10, HostsPerRack: 1, VCPUs: 64})
	withGroups(t, s, scheduler.Group{ID: "pg-1", Name: "web", Strategy: scheduler.Spread})
	ok, codes := race(t, s, spec(image, func(r *RunSpec) { r.PlacementGroupName = "web" }), 10)
	if ok != 7 || codes[scheduler.InsufficientInstanceCapacity] != 3 {
		t.Fatalf("%d launched, errors %v; want 7 and 3 InsufficientInstanceCapacity", ok, codes)
	}
	for h, n := range perHost(t, s) {
		if n > 1 {
			t.Fatalf("host %s (its own rack) holds %d members", h, n)
		}
	}
}

// TestFailHostsStopsOnlyTheirInstances: a failed rack's instances stop
// at once, with the reason; the rest do not notice.
func TestFailHostsStopsOnlyTheirInstances(t *testing.T) {
	s, image := newServiceOn(t, topology.Layout{Zones: []string{"us-east-1a"}, Racks: 2, HostsPerRack: 1, VCPUs: 64})
	ctx := context.Background()
	res, err := s.Run(ctx, account, spec(image, func(r *RunSpec) { r.MinCount, r.MaxCount = 4, 4 }))
	if err != nil {
		t.Fatal(err)
	}
	hosts, err := topology.Fail(ctx, s.Store, topology.Selector{Zone: "us-east-1a", Rack: "r01"}, "test")
	if err != nil || len(hosts) != 1 {
		t.Fatalf("fail: %v %v", hosts, err)
	}
	stopped, err := s.FailHosts(ctx, hosts)
	if err != nil {
		t.Fatal(err)
	}
	if len(stopped) != 2 { // least-loaded placement: two per host
		t.Fatalf("stopped %v, want the 2 on the failed host", stopped)
	}
	for _, in := range res.Instances {
		got, err := s.Get(ctx, account, in.ID)
		if err != nil {
			t.Fatal(err)
		}
		onFailed := got.Host == hosts[0].ID
		if onFailed != (got.State == Stopping && got.ForceStop && got.StateReason.Code == "Server.InternalError") {
			t.Fatalf("%s on %s (failed host %s): state %s reason %+v", got.ID, got.Host, hosts[0].ID, got.State, got.StateReason)
		}
	}
	if n := perHost(t, s)[hosts[0].ID]; n != 0 {
		t.Fatalf("failed host still holds %d instances", n)
	}
	// A failed host takes nothing new: the next two go to the other host.
	if _, err := s.Run(ctx, account, spec(image, func(r *RunSpec) { r.MinCount, r.MaxCount = 2, 2 })); err != nil {
		t.Fatal(err)
	}
	if n := perHost(t, s)[hosts[0].ID]; n != 0 {
		t.Fatalf("failed host got %d new instances", n)
	}
}

// TestStartKeepsPartition: a restarted instance goes back to its
// partition, on a rack no other partition uses.
func TestStartKeepsPartition(t *testing.T) {
	s, image := newServiceOn(t, topology.Layout{Zones: []string{"us-east-1a"}, Racks: 6, HostsPerRack: 1, VCPUs: 64})
	withGroups(t, s, scheduler.Group{ID: "pg-2", Name: "kafka", Strategy: scheduler.Partition, PartitionCount: 3})
	ctx := context.Background()
	res, err := s.Run(ctx, account, spec(image, func(r *RunSpec) { r.MinCount, r.MaxCount, r.PlacementGroupID = 3, 3, "pg-2" }))
	if err != nil {
		t.Fatal(err)
	}
	parts := map[int]bool{}
	for _, in := range res.Instances {
		parts[in.Partition] = true
	}
	if len(parts) != 3 {
		t.Fatalf("partitions %v, want 1, 2 and 3 (automatic choice balances)", parts)
	}
	in := res.Instances[1]
	if _, err := s.Stop(ctx, account, []string{in.ID}, false); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Update(ctx, s.Store, Key(account, s.Region, in.ID), func(x *Instance) error { x.State = Stopped; return nil }); err != nil {
		t.Fatal(err)
	}
	// Take its host: the start must find another, in an unused rack.
	if _, err := topology.Fail(ctx, s.Store, topology.Selector{Host: in.Host}, "test"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Start(ctx, account, []string{in.ID}); err != nil {
		t.Fatal(err)
	}
	got, _ := s.Get(ctx, account, in.ID)
	if got.Partition != in.Partition || got.Host == in.Host {
		t.Fatalf("restarted in partition %d on %s; want partition %d off failed host %s", got.Partition, got.Host, in.Partition, in.Host)
	}
	for _, other := range res.Instances {
		if other.ID != in.ID && other.Host == got.Host {
			t.Fatalf("restarted onto %s, the host of %s (partition %d)", got.Host, other.ID, other.Partition)
		}
	}
}

// TestModifyPlacement: only stopped instances move, and only into what the
// group allows.
func TestModifyPlacement(t *testing.T) {
	s, image := newServiceOn(t, topology.Layout{Zones: []string{"us-east-1a"}, Racks: 4, HostsPerRack: 1, VCPUs: 64})
	withGroups(t, s, scheduler.Group{ID: "pg-3", Name: "p2", Strategy: scheduler.Partition, PartitionCount: 2},
		scheduler.Group{ID: "pg-4", Name: "spread", Strategy: scheduler.Spread})
	ctx := context.Background()
	res, err := s.Run(ctx, account, spec(image, nil))
	if err != nil {
		t.Fatal(err)
	}
	id := res.Instances[0].ID
	err = s.ModifyPlacement(ctx, account, id, PlacementChange{Group: true, GroupName: "p2"})
	wantError(t, err, "IncorrectInstanceState", "stopped")
	if _, err := store.Update(ctx, s.Store, Key(account, s.Region, id), func(x *Instance) error {
		x.Desired, x.State = Stopped, Stopped
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	err = s.ModifyPlacement(ctx, account, id, PlacementChange{Group: true, GroupName: "p2", Partition: 3})
	wantError(t, err, apierr.InvalidParameterValue, "2 partitions")
	err = s.ModifyPlacement(ctx, account, id, PlacementChange{Group: true, GroupName: "spread", Partition: 1})
	wantError(t, err, apierr.InvalidParameterCombination, "partition")
	if err := s.ModifyPlacement(ctx, account, id, PlacementChange{Group: true, GroupName: "p2", Partition: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Start(ctx, account, []string{id}); err != nil {
		t.Fatal(err)
	}
	got, _ := s.Get(ctx, account, id)
	if got.PlacementGroupID != "pg-3" || got.Partition != 2 {
		t.Fatalf("after the move: group %q partition %d", got.PlacementGroupID, got.Partition)
	}
	if in, err := s.InGroup(ctx, account, "pg-3"); err != nil || !in {
		t.Fatalf("InGroup: %v %v", in, err)
	}
}

// sixOfSpread is a zone of 8 one-host racks, a spread group "web" with
// six members on r01..r06, and two free racks: r07 (4 vCPUs, 2 used) the
// lighter, where a 2-vCPU launch goes, and r08 (16 vCPUs, 12 used) the
// only one a 4-vCPU launch fits on.
func sixOfSpread(t *testing.T) (*Service, string) {
	t.Helper()
	s, image := newServiceOn(t, topology.Layout{Zones: []string{"us-east-1a"}, Racks: 8, HostsPerRack: 1, VCPUs: 4})
	withGroups(t, s, scheduler.Group{ID: "pg-5", Name: "web", Strategy: scheduler.Spread})
	ctx := context.Background()
	v, err := topology.Read(ctx, s.Store)
	if err != nil {
		t.Fatal(err)
	}
	var ops []store.Op
	for i, h := range v.Hosts {
		a := topology.Allocation{Instances: map[string]topology.Usage{}}
		switch h.Rack {
		case "r07":
			a.Instances["i-fill7"] = topology.Usage{VCPUs: 2, MemoryMiB: 1}
		case "r08":
			h.VCPUs = 16
			ops = append(ops, store.Op{Key: topology.HostKey(h.ID), Value: h, ModRev: -1})
			a.Instances["i-fill8"] = topology.Usage{VCPUs: 12, MemoryMiB: 1}
		default:
			a.Instances["i-member"+h.Rack] = topology.Usage{VCPUs: 1, MemoryMiB: 1, Account: account, Group: "pg-5"}
		}
		ops = append(ops, store.Op{Key: topology.AllocationKey(v.Hosts[i].ID), Value: a, ModRev: -1})
	}
	if err := s.Store.Apply(ctx, ops...); err != nil {
		t.Fatal(err)
	}
	return s, image
}

// launchAt launches one instance of typ into "web" at a given address and
// without a public one, so that address claims never conflict.
func launchAt(ctx context.Context, s *Service, image, typ string, i int) error {
	_, err := s.Run(ctx, account, spec(image, func(r *RunSpec) {
		r.InstanceType, r.PlacementGroupName, r.PrivateIP = typ, "web", fmt.Sprintf("172.31.0.%d", 50+i)
		r.AssociatePublicIP = new(bool)
	}))
	return err
}

// TestGroupRuleHoldsAcrossHosts: two launches into one spread group that
// decide at the same time for different hosts (so no allocation conflicts)
// must still not both take the group's last slot in the zone: the group
// record's compare-and-swap makes one of them decide again.
func TestGroupRuleHoldsAcrossHosts(t *testing.T) {
	s, image := sixOfSpread(t)
	ctx := context.Background()
	// Both decide before either commits.
	var arrived sync.WaitGroup
	arrived.Add(2)
	var calls atomic.Int32
	testHookAfterRead = func() { // first attempts wait for each other; retries pass
		if calls.Add(1) <= 2 {
			arrived.Done()
			arrived.Wait()
		}
	}
	t.Cleanup(func() { testHookAfterRead = func() {} })
	errs := make(chan error, 2)
	for i, typ := range []string{"t3.micro", "t3.xlarge"} {
		go func() { errs <- launchAt(ctx, s, image, typ, i) }()
	}
	var failed int
	for range 2 {
		if err := <-errs; err != nil {
			wantError(t, err, scheduler.InsufficientInstanceCapacity, "")
			failed++
		}
	}
	if failed != 1 {
		t.Fatalf("%d of the 2 launches failed; a spread group holds 7 per zone, so exactly one must", failed)
	}
}

// TestGroupPicksTheZone: a launch into a group that names no subnet or
// zone goes where the group has room: a full spread group's 8th instance
// lands in another zone; with a zone named, it is refused.
func TestGroupPicksTheZone(t *testing.T) {
	s, image := newServiceOn(t, topology.Layout{Zones: []string{"us-east-1a", "us-east-1b"}, Racks: 8, HostsPerRack: 1, VCPUs: 64})
	withGroups(t, s, scheduler.Group{ID: "pg-6", Name: "web", Strategy: scheduler.Spread})
	ctx := context.Background()
	in := func(zone string) func(*RunSpec) {
		return func(r *RunSpec) { r.PlacementGroupName, r.Zone = "web", zone }
	}
	if _, err := s.Run(ctx, account, spec(image, func(r *RunSpec) { in("us-east-1a")(r); r.MinCount, r.MaxCount = 7, 7 })); err != nil {
		t.Fatal(err)
	}
	_, err := s.Run(ctx, account, spec(image, in("us-east-1a")))
	wantError(t, err, scheduler.InsufficientInstanceCapacity, "7")
	res, err := s.Run(ctx, account, spec(image, in("")))
	if err != nil {
		t.Fatal(err)
	}
	if z := res.Instances[0].Zone; z != "us-east-1b" {
		t.Fatalf("8th member in %s, want us-east-1b", z)
	}
}

// TestGroupReadBeforeTopology: a launch into the group that commits after
// another launch read the topology, and before it decides, is seen: the
// group's revision is read first, so the late launch fails its swap.
func TestGroupReadBeforeTopology(t *testing.T) {
	s, image := sixOfSpread(t)
	ctx := context.Background()
	var other atomic.Bool
	var otherErr error
	testHookAfterRead = func() {
		if other.CompareAndSwap(false, true) { // inside the first launch only
			otherErr = launchAt(ctx, s, image, "t3.xlarge", 1)
		}
	}
	t.Cleanup(func() { testHookAfterRead = func() {} })
	err := launchAt(ctx, s, image, "t3.micro", 0)
	if otherErr != nil {
		t.Fatalf("the launch in between: %v", otherErr)
	}
	wantError(t, err, scheduler.InsufficientInstanceCapacity, "7")
}
