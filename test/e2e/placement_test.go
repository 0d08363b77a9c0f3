package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"

	"nubo/internal/account"
	"nubo/internal/nubotest"
)

// imdsPlacement reads meta-data/placement/<leaf> from inside instance id (IMDSv2).
func imdsPlacement(t *testing.T, srv *nubotest.Server, id, leaf string) string {
	t.Helper()
	m := newIMDSClient(t, srv, id)
	tok := m.token("60")
	code, body := m.do("GET", "/latest/meta-data/placement/"+leaf, "X-aws-ec2-metadata-token", tok)
	if code != 200 {
		t.Fatalf("%s: IMDS placement/%s: %d %q", id, leaf, code, body)
	}
	return strings.TrimSpace(body)
}

func createGroup(t *testing.T, c *ec2.Client, name string, strategy types.PlacementStrategy, partitions int32) string {
	t.Helper()
	in := &ec2.CreatePlacementGroupInput{GroupName: aws.String(name), Strategy: strategy}
	if partitions != 0 {
		in.PartitionCount = aws.Int32(partitions)
	}
	out, err := c.CreatePlacementGroup(ctx(t), in)
	if err != nil {
		t.Fatalf("CreatePlacementGroup %s: %v", name, err)
	}
	return aws.ToString(out.PlacementGroup.GroupId)
}

// checkFailedStop checks that in was stopped by the failure of its host
// (host, in rack zone/rack): stopped, with StateReason Server.InternalError
// naming the host and the rack.
func checkFailedStop(t *testing.T, in types.Instance, host, rack string) {
	t.Helper()
	id := aws.ToString(in.InstanceId)
	if in.State.Name != types.InstanceStateNameStopped {
		t.Errorf("%s on failed rack %s: %s, want stopped", id, rack, in.State.Name)
		return
	}
	if in.StateReason == nil || aws.ToString(in.StateReason.Code) != "Server.InternalError" {
		t.Errorf("%s: StateReason %+v, want code Server.InternalError", id, in.StateReason)
		return
	}
	msg := aws.ToString(in.StateReason.Message)
	_, r, _ := strings.Cut(rack, "/")
	if !strings.Contains(msg, host) || !strings.Contains(msg, r) {
		t.Errorf("%s: StateReason message %q names neither host %s nor rack %s", id, msg, host, rack)
	}
}

// TestPlacementPartitionRackFailure: 9 instances in a 3-partition group
// land 3 per partition on pairwise disjoint racks (from the topology, not
// the API's word); IMDS agrees; failing a rack of partition 2 stops exactly
// its instances and nothing else, and a restarted one comes back in
// partition 2 on a rack of its own.
func TestPlacementPartitionRackFailure(t *testing.T) {
	srv, c, image := startWithImages(t) // 8 racks of 2 hosts per zone
	groupID := createGroup(t, c, "parts", types.PlacementStrategyPartition, 3)
	ids, err := launch(ctx(t), c, image, 9, &types.Placement{AvailabilityZone: aws.String("us-east-1a"), GroupName: aws.String("parts")})
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, c, "running", ids...)
	desc := describe(t, c, ids...)
	topo := readTopology(t, srv)

	byPart := map[int32][]string{}
	racks := map[int32]map[string]bool{}
	for _, id := range ids {
		in := desc[id]
		p := in.Placement
		pn := aws.ToInt32(p.PartitionNumber)
		if aws.ToString(p.GroupName) != "parts" || aws.ToString(p.GroupId) != groupID || aws.ToString(p.AvailabilityZone) != "us-east-1a" ||
			p.Tenancy != types.TenancyDefault {
			t.Errorf("%s: Placement %s/%s zone %s tenancy %s, want parts/%s us-east-1a default", id,
				aws.ToString(p.GroupName), aws.ToString(p.GroupId), aws.ToString(p.AvailabilityZone), p.Tenancy, groupID)
		}
		h, ok := topo.where[id]
		if !ok {
			t.Fatalf("%s (running) holds capacity on no host of the topology", id)
		}
		if aws.ToString(p.HostId) != h.ID {
			t.Errorf("%s: DescribeInstances HostId %q, topology has it on %s", id, aws.ToString(p.HostId), h.ID)
		}
		if h.Zone != "us-east-1a" {
			t.Errorf("%s: on host %s in %s, want us-east-1a", id, h.ID, h.Zone)
		}
		if ti := topo.inst[id]; ti.Group != groupID || int32(ti.Partition) != pn {
			t.Errorf("%s: topology has it in %s partition %d, DescribeInstances in %s partition %d", id, ti.Group, ti.Partition, groupID, pn)
		}
		byPart[pn] = append(byPart[pn], id)
		if racks[pn] == nil {
			racks[pn] = map[string]bool{}
		}
		racks[pn][topo.rackOf(id)] = true
	}
	for p := int32(1); p <= 3; p++ {
		if len(byPart[p]) != 3 {
			t.Errorf("partition %d has %d instances %v, want 3", p, len(byPart[p]), byPart[p])
		}
	}
	if len(byPart) != 3 {
		t.Fatalf("partitions %v, want exactly 1..3", byPart)
	}
	for p := int32(1); p <= 3; p++ {
		for q := p + 1; q <= 3; q++ {
			for r := range racks[p] {
				if racks[q][r] {
					t.Errorf("rack %s holds partitions %d and %d (racks: %v)", r, p, q, racks)
				}
			}
		}
	}
	if t.Failed() {
		t.Fatalf("topology:\n%s", nuboTopology(t, srv))
	}

	// The placement-partition-number filter, and what the instances see.
	out, err := c.DescribeInstances(ctx(t), &ec2.DescribeInstancesInput{Filters: []types.Filter{
		{Name: aws.String("placement-group-name"), Values: []string{"parts"}},
		{Name: aws.String("placement-partition-number"), Values: []string{"2"}}}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range out.Reservations {
		for _, in := range r.Instances {
			got = append(got, aws.ToString(in.InstanceId))
		}
	}
	sort.Strings(got)
	want2 := append([]string(nil), byPart[2]...)
	sort.Strings(want2)
	if !reflect.DeepEqual(got, want2) {
		t.Errorf("filter placement-partition-number=2: %v, want %v", got, want2)
	}
	for p := int32(1); p <= 3; p++ {
		id := byPart[p][0]
		if got := imdsPlacement(t, srv, id, "partition-number"); got != fmt.Sprint(p) {
			t.Errorf("%s: IMDS placement/partition-number %q, DescribeInstances %d", id, got, p)
		}
		if got := imdsPlacement(t, srv, id, "group-name"); got != "parts" {
			t.Errorf("%s: IMDS placement/group-name %q", id, got)
		}
		if got := imdsPlacement(t, srv, id, "host-id"); got != topo.where[id].ID {
			t.Errorf("%s: IMDS placement/host-id %q, topology %s", id, got, topo.where[id].ID)
		}
	}

	// Fail a rack of partition 2: exactly its instances stop.
	var rack string
	for r := range racks[2] {
		if rack == "" || r < rack {
			rack = r
		}
	}
	var onRack, offRack []string
	oldHost := map[string]string{}
	for _, id := range ids {
		oldHost[id] = topo.where[id].ID
		if topo.rackOf(id) == rack {
			onRack = append(onRack, id)
		} else {
			offRack = append(offRack, id)
		}
	}
	sort.Strings(onRack)
	stopped, failedHosts := failRack(t, srv, rack)
	if !reflect.DeepEqual(stopped, onRack) {
		t.Errorf("nubo topology fail --rack %s stopped %v, want the instances on it %v", rack, stopped, onRack)
	}
	if len(failedHosts) != 2 {
		t.Errorf("nubo topology fail --rack %s failed hosts %v, want the rack's 2", rack, failedHosts)
	}
	for _, h := range failedHosts {
		if !strings.HasPrefix(h, rack+"/h-") {
			t.Errorf("failed host %q is not in rack %s", h, rack)
		}
	}
	waitState(t, c, "stopped", onRack...)
	after := waitSettled(t, c, ids...)
	for _, id := range onRack {
		checkFailedStop(t, after[id], oldHost[id], rack)
	}
	for _, id := range offRack {
		if s := after[id].State.Name; s != types.InstanceStateNameRunning {
			t.Errorf("%s (not on failed rack %s): %s, want running", id, rack, s)
		}
	}
	topo = readTopology(t, srv)
	for _, h := range topo.Hosts {
		if h.Zone+"/"+h.Rack != rack {
			continue
		}
		if h.State != "failed" || len(h.Instances) != 0 {
			t.Errorf("host %s of failed rack %s: state %s, instances %v; want failed, none", h.ID, rack, h.State, h.Instances)
		}
	}
	if t.Failed() {
		t.Fatalf("topology:\n%s", nuboTopology(t, srv))
	}

	// Start one again: partition 2, on a rack neither failed nor another
	// partition's.
	id := onRack[0]
	if _, err := c.StartInstances(ctx(t), &ec2.StartInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Fatal(err)
	}
	waitState(t, c, "running", id)
	in := describe(t, c, id)[id]
	topo = readTopology(t, srv)
	h, ok := topo.where[id]
	if !ok {
		t.Fatalf("%s running again but on no host of the topology:\n%s", id, nuboTopology(t, srv))
	}
	if pn := aws.ToInt32(in.Placement.PartitionNumber); pn != 2 || topo.inst[id].Partition != 2 {
		t.Errorf("%s restarted in partition %d (topology %d), want 2", id, pn, topo.inst[id].Partition)
	}
	if aws.ToString(in.Placement.HostId) != h.ID {
		t.Errorf("%s: HostId %q, topology %s", id, aws.ToString(in.Placement.HostId), h.ID)
	}
	newRack := topo.rackOf(id)
	if newRack == rack || racks[1][newRack] || racks[3][newRack] || h.State != "up" {
		t.Errorf("%s restarted on %s (%s, %s): want a live rack other than the failed %s and partitions 1 %v and 3 %v",
			id, h.ID, newRack, h.State, rack, racks[1], racks[3])
	}
	if got := imdsPlacement(t, srv, id, "partition-number"); got != "2" {
		t.Errorf("%s restarted: IMDS placement/partition-number %q, want 2", id, got)
	}
	if got := imdsPlacement(t, srv, id, "host-id"); got != h.ID {
		t.Errorf("%s restarted: IMDS placement/host-id %q, topology %s", id, got, h.ID)
	}
	// The host-id filter matches what the topology has on the host.
	out, err = c.DescribeInstances(ctx(t), &ec2.DescribeInstancesInput{Filters: []types.Filter{
		{Name: aws.String("host-id"), Values: []string{h.ID}}}})
	if err != nil {
		t.Fatal(err)
	}
	got = nil
	for _, r := range out.Reservations {
		for _, in := range r.Instances {
			got = append(got, aws.ToString(in.InstanceId))
		}
	}
	var onHost []string
	for _, x := range h.Instances {
		onHost = append(onHost, x.ID)
	}
	if sort.Strings(got); !reflect.DeepEqual(got, sortedCopy(onHost)) {
		t.Errorf("filter host-id=%s: %v, topology has %v", h.ID, got, onHost)
	}

	// Two more into partition 2 go to its own rack (it has room), not to a
	// new one.
	more, err := launch(ctx(t), c, image, 2, &types.Placement{GroupName: aws.String("parts"), PartitionNumber: aws.Int32(2)})
	if err != nil {
		t.Fatal(err)
	}
	topo = readTopology(t, srv)
	for _, m := range more {
		if r := topo.rackOf(m); r != newRack || topo.inst[m].Partition != 2 {
			t.Errorf("%s launched into partition 2: rack %q partition %d, want partition 2's rack %s", m, r, topo.inst[m].Partition, newRack)
		}
	}
	waitState(t, c, "running", more...)
	if t.Failed() {
		t.Logf("topology:\n%s", nuboTopology(t, srv))
	}
}

// TestPlacementSpreadLimit: a rack-level spread group takes 7 instances in
// a zone, each on its own rack; the 8th in that zone is refused for
// capacity, in another zone it runs; failing one rack stops one member.
func TestPlacementSpreadLimit(t *testing.T) {
	srv, c, image := startWithImages(t)
	groupID := createGroup(t, c, "spread", types.PlacementStrategySpread, 0)
	inA := &types.Placement{AvailabilityZone: aws.String("us-east-1a"), GroupName: aws.String("spread")}
	var ids []string
	for i := 0; i < 7; i++ {
		got, err := launch(ctx(t), c, image, 1, inA)
		if err != nil {
			t.Fatalf("launch %d of 7 into the spread group: %v", i+1, err)
		}
		ids = append(ids, got...)
	}
	_, err := launch(ctx(t), c, image, 1, inA)
	wantAPIError(t, err, "InsufficientInstanceCapacity", 0)
	inB, err := launch(ctx(t), c, image, 1, &types.Placement{AvailabilityZone: aws.String("us-east-1b"), GroupName: aws.String("spread")})
	if err != nil {
		t.Fatalf("8th member in us-east-1b: %v", err)
	}
	all := append(append([]string(nil), ids...), inB...)
	waitState(t, c, "running", all...)
	if got, want := inGroup(t, c, "spread"), sortedCopy(all); !reflect.DeepEqual(got, want) {
		t.Errorf("instances in the group %v, want %v (the refused 8th left something behind?)", got, want)
	}

	topo := readTopology(t, srv)
	seen := map[string]string{}
	for _, id := range ids {
		r := topo.rackOf(id)
		if !strings.HasPrefix(r, "us-east-1a/") {
			t.Errorf("%s on rack %q, want one of us-east-1a", id, r)
		}
		if other, ok := seen[r]; ok {
			t.Errorf("%s and %s share rack %s", id, other, r)
		}
		seen[r] = id
		if topo.inst[id].Group != groupID {
			t.Errorf("%s: topology group %q, want %s", id, topo.inst[id].Group, groupID)
		}
	}
	if r := topo.rackOf(inB[0]); !strings.HasPrefix(r, "us-east-1b/") {
		t.Errorf("%s (us-east-1b) on rack %q", inB[0], r)
	}
	if t.Failed() {
		t.Fatalf("topology:\n%s", nuboTopology(t, srv))
	}

	victim := ids[3]
	rack := topo.rackOf(victim)
	stopped, _ := failRack(t, srv, rack)
	if !reflect.DeepEqual(stopped, []string{victim}) {
		t.Errorf("failing %s stopped %v, want only %s", rack, stopped, victim)
	}
	waitState(t, c, "stopped", victim)
	after := waitSettled(t, c, all...)
	checkFailedStop(t, after[victim], topo.where[victim].ID, rack)
	for _, id := range all {
		if id != victim && after[id].State.Name != types.InstanceStateNameRunning {
			t.Errorf("%s: %s after failing %s, want running", id, after[id].State.Name, rack)
		}
	}

	// Started again, the victim takes the one rack of us-east-1a that is
	// neither failed nor another member's; then the zone is full again.
	if _, err := c.StartInstances(ctx(t), &ec2.StartInstancesInput{InstanceIds: []string{victim}}); err != nil {
		t.Fatal(err)
	}
	waitState(t, c, "running", victim)
	topo = readTopology(t, srv)
	r := topo.rackOf(victim)
	if r == rack || !strings.HasPrefix(r, "us-east-1a/") || seen[r] != "" {
		t.Errorf("%s restarted on rack %q: want the free one of us-east-1a (failed: %s, members: %v)", victim, r, rack, seen)
	}
	_, err = launch(ctx(t), c, image, 1, inA)
	wantAPIError(t, err, "InsufficientInstanceCapacity", 0)

	// A whole zone fails: its one member stops, the others run on.
	out := nuboTopology(t, srv, "fail", "--zone", "us-east-1b")
	if want := "stopped " + inB[0]; !strings.Contains(out, want) || strings.Count(out, "stopped ") != 1 ||
		strings.Count(out, "failed us-east-1b/") != 16 {
		t.Errorf("nubo topology fail --zone us-east-1b:\n%s\nwant 16 hosts failed and only %s stopped", out, inB[0])
	}
	waitState(t, c, "stopped", inB[0])
	after = waitSettled(t, c, all...)
	checkFailedStop(t, after[inB[0]], topo.where[inB[0]].ID, topo.rackOf(inB[0]))
	for _, id := range ids {
		if after[id].State.Name != types.InstanceStateNameRunning {
			t.Errorf("%s (us-east-1a): %s after us-east-1b failed", id, after[id].State.Name)
		}
	}
	if t.Failed() {
		t.Logf("topology:\n%s", nuboTopology(t, srv))
	}
}

func sortedCopy(s []string) []string {
	s = append([]string(nil), s...)
	sort.Strings(s)
	return s
}

// TestPlacementClusterOneRack: a cluster group needs one rack for the
// whole launch: 5 where racks hold 4 is refused and leaves nothing; 4 land
// on one rack, and failing it stops them all.
func TestPlacementClusterOneRack(t *testing.T) {
	srv, c, image := startWithImages(t, "--racks", "2", "--hosts-per-rack", "2", "--host-slots", "2")
	groupID := createGroup(t, c, "cluster", types.PlacementStrategyCluster, 0)
	inCluster := &types.Placement{GroupName: aws.String("cluster")}
	_, err := launch(ctx(t), c, image, 5, inCluster)
	wantAPIError(t, err, "InsufficientInstanceCapacity", 0)
	if got := inGroup(t, c, "cluster"); len(got) != 0 {
		t.Errorf("the refused launch left instances in the group: %v", got)
	}
	if topo := readTopology(t, srv); len(topo.where) != 0 {
		t.Errorf("the refused launch left capacity held:\n%s", nuboTopology(t, srv))
	}

	ids, err := launch(ctx(t), c, image, 4, inCluster)
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, c, "running", ids...)
	topo := readTopology(t, srv)
	rack := topo.rackOf(ids[0])
	for _, id := range ids {
		if r := topo.rackOf(id); r != rack || r == "" {
			t.Errorf("%s on rack %q, %s on %q: a cluster group wants one rack", id, r, ids[0], rack)
		}
		if topo.inst[id].Group != groupID {
			t.Errorf("%s: topology group %q, want %s", id, topo.inst[id].Group, groupID)
		}
	}
	for _, h := range topo.Hosts {
		if len(h.Instances) > 2 {
			t.Errorf("host %s holds %d instances, over its 2 slots", h.ID, len(h.Instances))
		}
	}
	if t.Failed() {
		t.Fatalf("topology:\n%s", nuboTopology(t, srv))
	}

	stopped, _ := failRack(t, srv, rack)
	if want := sortedCopy(ids); !reflect.DeepEqual(stopped, want) {
		t.Errorf("failing %s stopped %v, want %v", rack, stopped, want)
	}
	waitState(t, c, "stopped", ids...)
	after := describe(t, c, ids...)
	for _, id := range ids {
		checkFailedStop(t, after[id], topo.where[id].ID, rack)
	}

	// Started again, they hold no capacity on the failed rack: the group
	// moves, whole, to the other rack of its zone.
	if _, err := c.StartInstances(ctx(t), &ec2.StartInstancesInput{InstanceIds: ids}); err != nil {
		t.Fatal(err)
	}
	waitState(t, c, "running", ids...)
	topo = readTopology(t, srv)
	zone, _, _ := strings.Cut(rack, "/")
	moved := topo.rackOf(ids[0])
	for _, id := range ids {
		if r := topo.rackOf(id); r != moved || r == rack || !strings.HasPrefix(r, zone+"/") {
			t.Errorf("%s restarted on rack %q (%s on %q): want all on the other rack of %s than the failed %s", id, r, ids[0], moved, zone, rack)
		}
	}
	// Repaired, the rack's hosts are up again and empty.
	out := nuboTopology(t, srv, "repair", "--rack", rack)
	if n := strings.Count(out, "repaired "+rack+"/h-"); n != 2 {
		t.Errorf("nubo topology repair --rack %s: %q, want its 2 hosts repaired", rack, out)
	}
	topo = readTopology(t, srv)
	for _, h := range topo.Hosts {
		if h.Zone+"/"+h.Rack == rack && (h.State != "up" || len(h.Instances) != 0) {
			t.Errorf("repaired host %s: %s with %v, want up and empty", h.ID, h.State, h.Instances)
		}
	}
	if t.Failed() {
		t.Logf("topology:\n%s", nuboTopology(t, srv))
	}
}

// TestPlacementClusterJoinsItsZone: a cluster group's members fix its zone:
// a launch naming another zone is refused with InvalidPlacementGroup.InUse,
// one naming none joins the members' zone and rack.
func TestPlacementClusterJoinsItsZone(t *testing.T) {
	srv, c, image := startWithImages(t)
	createGroup(t, c, "cluster", types.PlacementStrategyCluster, 0)
	ids, err := launch(ctx(t), c, image, 2, &types.Placement{GroupName: aws.String("cluster"), AvailabilityZone: aws.String("us-east-1b")})
	if err != nil {
		t.Fatal(err)
	}
	topo := readTopology(t, srv)
	rack := topo.rackOf(ids[0])
	if rack != topo.rackOf(ids[1]) || !strings.HasPrefix(rack, "us-east-1b/") {
		t.Fatalf("cluster members on racks %q and %q, want one rack of us-east-1b", rack, topo.rackOf(ids[1]))
	}
	_, err = launch(ctx(t), c, image, 1, &types.Placement{GroupName: aws.String("cluster"), AvailabilityZone: aws.String("us-east-1a")})
	wantAPIError(t, err, "InvalidPlacementGroup.InUse", 0)

	more, err := launch(ctx(t), c, image, 1, &types.Placement{GroupName: aws.String("cluster")})
	if err != nil {
		t.Fatalf("launch into the cluster group without a zone: %v", err)
	}
	topo = readTopology(t, srv)
	if r := topo.rackOf(more[0]); r != rack {
		t.Errorf("%s launched without a zone on rack %q, want the cluster's %s", more[0], r, rack)
	}
}

// TestPlacementDedicatedTenancy: on two hosts, dedicated instances of two
// accounts never share a host with the other account's instances, whatever
// the order of launches; DescribeInstances shows the tenancy.
func TestPlacementDedicatedTenancy(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("instances need root")
	}
	dir := t.TempDir()
	first := account.Account{ID: "111122223333", Name: "first", AccessKeyID: "AKIAFIRSTACCOUNT0000", SecretAccessKey: "first-secret"}
	second := account.Account{ID: "222233334444", Name: "second", AccessKeyID: "AKIASECONDACCOUNT000", SecretAccessKey: "second-secret"}
	b, _ := json.Marshal(account.Set{Accounts: []account.Account{first, second}})
	if err := os.WriteFile(filepath.Join(dir, account.FileName), b, 0o600); err != nil {
		t.Fatal(err)
	}
	srv, c1, image := startWithImagesIn(t, dir, "--racks", "1", "--hosts-per-rack", "2", "--zones", "a")
	cfg, err := srv.Config(&second)
	if err != nil {
		t.Fatal(err)
	}
	c2 := ec2.NewFromConfig(cfg)
	owner := map[string]string{}
	run := func(c *ec2.Client, who string, tenancy types.Tenancy) string {
		t.Helper()
		ids, err := launch(ctx(t), c, image, 1, &types.Placement{Tenancy: tenancy})
		if err != nil {
			t.Fatalf("%s: %s launch: %v", who, tenancy, err)
		}
		in := describe(t, c, ids[0])[ids[0]]
		if in.Placement.Tenancy != tenancy {
			t.Errorf("%s: Placement.Tenancy %q, want %q", ids[0], in.Placement.Tenancy, tenancy)
		}
		owner[ids[0]] = who
		return ids[0]
	}
	d1 := run(c1, "first", types.TenancyDedicated)
	s2 := run(c2, "second", types.TenancyDefault)
	d2 := run(c2, "second", types.TenancyDedicated)
	s1 := run(c1, "first", types.TenancyDefault)
	d1b := run(c1, "first", types.TenancyDedicated)
	s2b := run(c2, "second", types.TenancyDefault)

	topo := readTopology(t, srv)
	for _, h := range topo.Hosts {
		accounts := map[string]bool{}
		for _, in := range h.Instances {
			accounts[owner[in.ID]] = true
		}
		if len(accounts) > 1 {
			t.Errorf("host %s holds instances of both accounts (with dedicated ones): %v", h.ID, h.Instances)
		}
	}
	if len(topo.where) != 6 {
		t.Errorf("topology holds %d instances, want 6", len(topo.where))
	}
	for _, pair := range [][2]string{{d1, s1}, {d1, d1b}, {s2, d2}, {s2, s2b}} {
		if topo.where[pair[0]].ID != topo.where[pair[1]].ID {
			t.Errorf("%s and %s (one account, 2 hosts) on %s and %s", pair[0], pair[1], topo.where[pair[0]].ID, topo.where[pair[1]].ID)
		}
	}
	if t.Failed() {
		t.Logf("topology:\n%s", nuboTopology(t, srv))
	}
	waitState(t, c1, "running", d1, s1, d1b)
	waitState(t, c2, "running", s2, d2, s2b)
}

// raceLaunches fires n concurrent RunInstances of one instance with
// placement p and returns the IDs launched and the error codes of the rest.
func raceLaunches(t *testing.T, c *ec2.Client, image string, n int, p *types.Placement) (ok []string, codes map[string]int) {
	t.Helper()
	cx := ctx(t)
	var mu sync.Mutex
	var wg sync.WaitGroup
	codes = map[string]int{}
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			ids, err := launch(cx, c, image, 1, p)
			mu.Lock()
			defer mu.Unlock()
			var ae smithy.APIError
			switch {
			case err == nil:
				ok = append(ok, ids...)
			case errors.As(err, &ae):
				codes[ae.ErrorCode()]++
			default:
				codes[err.Error()]++
			}
		}()
	}
	close(start)
	wg.Wait()
	sort.Strings(ok)
	return ok, codes
}

// TestPlacementConcurrentLastSlots: concurrent launches racing for the last
// slots get exactly the slots there are, no host over its limit; the same
// for a spread group's 7 per zone.
func TestPlacementConcurrentLastSlots(t *testing.T) {
	t.Run("slots", func(t *testing.T) {
		srv, c, image := startWithImages(t, "--racks", "1", "--hosts-per-rack", "2", "--host-slots", "2", "--zones", "a")
		ok, codes := raceLaunches(t, c, image, 10, nil)
		if len(ok) != 4 || codes["InsufficientInstanceCapacity"] != 6 || len(codes) != 1 {
			t.Errorf("10 concurrent launches for 4 slots: %d launched %v, errors %v; want 4 and 6 InsufficientInstanceCapacity", len(ok), ok, codes)
		}
		if got := notTerminated(t, c); !reflect.DeepEqual(got, ok) {
			t.Errorf("instances %v, want those launched %v", got, ok)
		}
		topo := readTopology(t, srv)
		for _, h := range topo.Hosts {
			if len(h.Instances) > 2 {
				t.Errorf("host %s holds %d instances, over its 2 slots", h.ID, len(h.Instances))
			}
		}
		var held []string
		for id := range topo.where {
			held = append(held, id)
		}
		if sort.Strings(held); !reflect.DeepEqual(held, ok) {
			t.Errorf("topology holds capacity for %v, want %v", held, ok)
		}
		if len(ok) != 4 {
			t.FailNow()
		}
		waitState(t, c, "running", ok...)
		// A stopped instance gives its slot back: another launch takes it,
		// and the stopped one cannot start again while all 4 are taken.
		if _, err := c.StopInstances(ctx(t), &ec2.StopInstancesInput{InstanceIds: ok[:1]}); err != nil {
			t.Fatal(err)
		}
		waitState(t, c, "stopped", ok[0])
		more, err := launch(ctx(t), c, image, 1, nil)
		if err != nil {
			t.Fatalf("launch into the slot a stopped instance gave back: %v", err)
		}
		_, err = c.StartInstances(ctx(t), &ec2.StartInstancesInput{InstanceIds: ok[:1]})
		wantAPIError(t, err, "InsufficientInstanceCapacity", 0)
		if s := describe(t, c, ok[0])[ok[0]].State.Name; s != types.InstanceStateNameStopped {
			t.Errorf("%s after a start refused for capacity: %s, want stopped", ok[0], s)
		}
		waitState(t, c, "running", more...)
		topo = readTopology(t, srv)
		for _, h := range topo.Hosts {
			if len(h.Instances) > 2 {
				t.Errorf("host %s holds %d instances, over its 2 slots", h.ID, len(h.Instances))
			}
		}
		if _, held := topo.where[ok[0]]; held || len(topo.where) != 4 {
			t.Errorf("topology holds %d instances (the stopped %s among them: %v), want 4 others", len(topo.where), ok[0], held)
		}
		if t.Failed() {
			t.Logf("topology:\n%s", nuboTopology(t, srv))
		}
	})
	t.Run("spread", func(t *testing.T) {
		srv, c, image := startWithImages(t, "--racks", "8", "--hosts-per-rack", "1", "--zones", "a")
		createGroup(t, c, "spread", types.PlacementStrategySpread, 0)
		ok, codes := raceLaunches(t, c, image, 10, &types.Placement{GroupName: aws.String("spread")})
		if len(ok) != 7 || codes["InsufficientInstanceCapacity"] != 3 || len(codes) != 1 {
			t.Errorf("10 concurrent launches into a spread group: %d launched %v, errors %v; want 7 and 3 InsufficientInstanceCapacity", len(ok), ok, codes)
		}
		if got := inGroup(t, c, "spread"); !reflect.DeepEqual(got, ok) {
			t.Errorf("instances in the group %v, want those launched %v", got, ok)
		}
		topo := readTopology(t, srv)
		racks := map[string]string{}
		for _, id := range ok {
			r := topo.rackOf(id)
			if other, dup := racks[r]; dup || r == "" {
				t.Errorf("%s on rack %q, as %s", id, r, other)
			}
			racks[r] = id
		}
		if len(ok) != 7 {
			t.FailNow()
		}
		waitState(t, c, "running", ok...)

		// Starts race too: stop 3 members, launch 2 new ones (6 running),
		// then start the 3 at once: exactly one gets the 7th rack.
		stoppedIDs := ok[:3]
		if _, err := c.StopInstances(ctx(t), &ec2.StopInstancesInput{InstanceIds: stoppedIDs}); err != nil {
			t.Fatal(err)
		}
		waitState(t, c, "stopped", stoppedIDs...)
		more, err := launch(ctx(t), c, image, 2, &types.Placement{GroupName: aws.String("spread")})
		if err != nil {
			t.Fatalf("2 launches into the racks 3 stopped members gave back: %v", err)
		}
		var mu sync.Mutex
		var wg sync.WaitGroup
		started, startCodes := []string{}, map[string]int{}
		cx := ctx(t)
		for _, id := range stoppedIDs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := c.StartInstances(cx, &ec2.StartInstancesInput{InstanceIds: []string{id}})
				mu.Lock()
				defer mu.Unlock()
				var ae smithy.APIError
				switch {
				case err == nil:
					started = append(started, id)
				case errors.As(err, &ae):
					startCodes[ae.ErrorCode()]++
				default:
					startCodes[err.Error()]++
				}
			}()
		}
		wg.Wait()
		if len(started) != 1 || startCodes["InsufficientInstanceCapacity"] != 2 || len(startCodes) != 1 {
			t.Errorf("3 concurrent starts for 1 spread slot: started %v, errors %v; want 1 and 2 InsufficientInstanceCapacity", started, startCodes)
		}
		waitState(t, c, "running", append(append([]string(nil), more...), started...)...)
		topo = readTopology(t, srv)
		racks = map[string]string{}
		for id := range topo.where {
			r := topo.rackOf(id)
			if other, dup := racks[r]; dup {
				t.Errorf("%s and %s share rack %s", id, other, r)
			}
			racks[r] = id
		}
		if len(topo.where) != 7 {
			t.Errorf("%d members hold capacity, want 7", len(topo.where))
		}
		if t.Failed() {
			t.Logf("topology:\n%s", nuboTopology(t, srv))
		}
	})
}

// TestPlacementGroupLifecycle: groups in use cannot be deleted; placement
// changes only while stopped, take effect at the next start (new group,
// partition 2, then no group); bad partition numbers and unknown groups are
// refused at launch.
func TestPlacementGroupLifecycle(t *testing.T) {
	srv, c, image := startWithImages(t)
	createGroup(t, c, "old", types.PlacementStrategySpread, 0)
	newID := createGroup(t, c, "new", types.PlacementStrategyPartition, 3)
	ids, err := launch(ctx(t), c, image, 1, &types.Placement{GroupName: aws.String("old")})
	if err != nil {
		t.Fatal(err)
	}
	id := ids[0]
	waitState(t, c, "running", id)

	_, err = c.DeletePlacementGroup(ctx(t), &ec2.DeletePlacementGroupInput{GroupName: aws.String("old")})
	wantAPIError(t, err, "InvalidPlacementGroup.InUse", 0)
	modify := func(group string, partition int32) error {
		in := &ec2.ModifyInstancePlacementInput{InstanceId: aws.String(id), GroupName: aws.String(group)}
		if partition != 0 {
			in.PartitionNumber = aws.Int32(partition)
		}
		_, err := c.ModifyInstancePlacement(ctx(t), in)
		return err
	}
	wantAPIError(t, modify("new", 2), "IncorrectInstanceState", 0)
	if p := describe(t, c, id)[id].Placement; aws.ToString(p.GroupName) != "old" {
		t.Errorf("refused ModifyInstancePlacement changed the group to %q", aws.ToString(p.GroupName))
	}

	stopStart := func(change func()) {
		t.Helper()
		if _, err := c.StopInstances(ctx(t), &ec2.StopInstancesInput{InstanceIds: []string{id}}); err != nil {
			t.Fatal(err)
		}
		waitState(t, c, "stopped", id)
		change()
		if _, err := c.StartInstances(ctx(t), &ec2.StartInstancesInput{InstanceIds: []string{id}}); err != nil {
			t.Fatal(err)
		}
		waitState(t, c, "running", id)
	}
	stopStart(func() {
		wantAPIError(t, modify("new", 4), "InvalidParameterValue", 0)
		if err := modify("new", 2); err != nil {
			t.Fatalf("ModifyInstancePlacement to new/2 while stopped: %v", err)
		}
	})
	p := describe(t, c, id)[id].Placement
	if aws.ToString(p.GroupName) != "new" || aws.ToString(p.GroupId) != newID || aws.ToInt32(p.PartitionNumber) != 2 {
		t.Errorf("after the move: group %s/%s partition %d, want new/%s partition 2",
			aws.ToString(p.GroupName), aws.ToString(p.GroupId), aws.ToInt32(p.PartitionNumber), newID)
	}
	topo := readTopology(t, srv)
	if ti := topo.inst[id]; ti.Group != newID || ti.Partition != 2 || topo.where[id].ID != aws.ToString(p.HostId) {
		t.Errorf("after the move the topology has %s in %q partition %d on %s; want %s partition 2 on %s",
			id, ti.Group, ti.Partition, topo.where[id].ID, newID, aws.ToString(p.HostId))
	}
	if got := imdsPlacement(t, srv, id, "partition-number"); got != "2" {
		t.Errorf("IMDS placement/partition-number %q, want 2", got)
	}
	if got := imdsPlacement(t, srv, id, "group-name"); got != "new" {
		t.Errorf("IMDS placement/group-name %q, want new", got)
	}
	// The old group is empty now; the new one is in use.
	if _, err := c.DeletePlacementGroup(ctx(t), &ec2.DeletePlacementGroupInput{GroupName: aws.String("old")}); err != nil {
		t.Errorf("deleting the group the instance left: %v", err)
	}
	_, err = c.DeletePlacementGroup(ctx(t), &ec2.DeletePlacementGroupInput{GroupName: aws.String("new")})
	wantAPIError(t, err, "InvalidPlacementGroup.InUse", 0)

	// Out of every group.
	stopStart(func() {
		if err := modify("", 0); err != nil {
			t.Fatalf("ModifyInstancePlacement GroupName \"\" while stopped: %v", err)
		}
	})
	p = describe(t, c, id)[id].Placement
	if aws.ToString(p.GroupName) != "" || aws.ToString(p.GroupId) != "" || aws.ToInt32(p.PartitionNumber) != 0 {
		t.Errorf("out of groups: group %q/%q partition %d", aws.ToString(p.GroupName), aws.ToString(p.GroupId), aws.ToInt32(p.PartitionNumber))
	}
	topo = readTopology(t, srv)
	if ti := topo.inst[id]; ti.Group != "" || ti.Partition != 0 || topo.where[id].ID == "" {
		t.Errorf("out of groups, the topology has %s in %q partition %d on %q", id, ti.Group, ti.Partition, topo.where[id].ID)
	}
	if _, err := c.DeletePlacementGroup(ctx(t), &ec2.DeletePlacementGroupInput{GroupName: aws.String("new")}); err != nil {
		t.Errorf("deleting the group after the instance left it: %v", err)
	}
	groups, err := c.DescribePlacementGroups(ctx(t), &ec2.DescribePlacementGroupsInput{})
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range groups.PlacementGroups {
		if g.State != types.PlacementGroupStateDeleted {
			t.Errorf("group %s still %s after deletion", aws.ToString(g.GroupName), g.State)
		}
	}

	// Launch-time refusals leave nothing behind.
	createGroup(t, c, "two", types.PlacementStrategyPartition, 2)
	_, err = launch(ctx(t), c, image, 1, &types.Placement{GroupName: aws.String("two"), PartitionNumber: aws.Int32(3)})
	wantAPIError(t, err, "InvalidParameterValue", 0)
	_, err = launch(ctx(t), c, image, 1, &types.Placement{GroupName: aws.String("nope")})
	wantAPIError(t, err, "InvalidPlacementGroup.Unknown", 0)
	if got := notTerminated(t, c); !reflect.DeepEqual(got, []string{id}) {
		t.Errorf("instances after refused launches: %v, want only %s", got, id)
	}

	if _, err := c.TerminateInstances(ctx(t), &ec2.TerminateInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Fatal(err)
	}
	waitState(t, c, "terminated", id)
}
