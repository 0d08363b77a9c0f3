package e2e

import (
	"context"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"nubo/internal/nubotest"
)

// topoHost is one line of `nubo topology`.
type topoHost struct {
	Zone, Rack, ID, Machine, State string
	Instances                      []topoInstance
}

// topoInstance is one instance a host holds capacity for.
type topoInstance struct {
	ID, Group string
	Partition int
}

// topoView is `nubo topology` parsed: hosts, and where each instance holding
// capacity is.
type topoView struct {
	Hosts []topoHost
	byID  map[string]topoHost
	where map[string]topoHost     // instance ID → its host
	inst  map[string]topoInstance // instance ID → group and partition
}

var topoInstanceRE = regexp.MustCompile(`(i-[0-9a-f]+)(?: \((pg-[0-9a-f]+)(?: partition (\d+))?\))?`)

// nuboTopology runs `nubo topology [args] --data-dir D` and returns its output.
func nuboTopology(t *testing.T, srv *nubotest.Server, args ...string) string {
	t.Helper()
	args = append(append([]string{"topology"}, args...), "--data-dir", srv.DataDir)
	cmd := exec.Command(srv.Bin, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("nubo %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// readTopology parses `nubo topology`.
func readTopology(t *testing.T, srv *nubotest.Server) topoView {
	t.Helper()
	out := nuboTopology(t, srv)
	v := topoView{byID: map[string]topoHost{}, where: map[string]topoHost{}, inst: map[string]topoInstance{}}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 2 || !strings.HasPrefix(lines[0], "ZONE") {
		t.Fatalf("nubo topology: unexpected output:\n%s", out)
	}
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) < 7 || !strings.HasPrefix(f[2], "h-") {
			t.Fatalf("nubo topology: unexpected line %q in:\n%s", l, out)
		}
		h := topoHost{Zone: f[0], Rack: f[1], ID: f[2], Machine: f[3], State: f[4]}
		for _, m := range topoInstanceRE.FindAllStringSubmatch(strings.Join(f[7:], " "), -1) {
			p, _ := strconv.Atoi(m[3])
			h.Instances = append(h.Instances, topoInstance{ID: m[1], Group: m[2], Partition: p})
		}
		v.Hosts = append(v.Hosts, h)
		v.byID[h.ID] = h
		for _, in := range h.Instances {
			if prev, ok := v.where[in.ID]; ok {
				t.Fatalf("nubo topology: %s on two hosts, %s and %s:\n%s", in.ID, prev.ID, h.ID, out)
			}
			v.where[in.ID] = h
			v.inst[in.ID] = in
		}
	}
	return v
}

// rackOf is "zone/rack" of the host an instance holds capacity on ("" if none).
func (v topoView) rackOf(id string) string {
	h, ok := v.where[id]
	if !ok {
		return ""
	}
	return h.Zone + "/" + h.Rack
}

// rackOfHost is "zone/rack" of a host ID ("" if unknown).
func (v topoView) rackOfHost(host string) string {
	h, ok := v.byID[host]
	if !ok {
		return ""
	}
	return h.Zone + "/" + h.Rack
}

// launch runs n instances (MinCount = MaxCount = n) of t3.nano with
// placement p and returns their IDs.
func launch(ctx context.Context, c *ec2.Client, image string, n int32, p *types.Placement) ([]string, error) {
	out, err := c.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(image), InstanceType: types.InstanceTypeT3Nano,
		MinCount: aws.Int32(n), MaxCount: aws.Int32(n), Placement: p})
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, in := range out.Instances {
		ids = append(ids, aws.ToString(in.InstanceId))
	}
	return ids, nil
}

// describe returns the instances by ID.
func describe(t *testing.T, c *ec2.Client, ids ...string) map[string]types.Instance {
	t.Helper()
	out, err := c.DescribeInstances(ctx(t), &ec2.DescribeInstancesInput{InstanceIds: ids})
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]types.Instance{}
	for _, r := range out.Reservations {
		for _, in := range r.Instances {
			m[aws.ToString(in.InstanceId)] = in
		}
	}
	if len(m) != len(ids) {
		t.Fatalf("DescribeInstances %v: got %d instances", ids, len(m))
	}
	return m
}

// inGroup lists the IDs of the instances in placement group name that are
// not terminated (placement-group-name filter).
func inGroup(t *testing.T, c *ec2.Client, name string) []string {
	t.Helper()
	return notTerminated(t, c, types.Filter{Name: aws.String("placement-group-name"), Values: []string{name}})
}

// notTerminated lists, sorted, the IDs of the instances filters select
// that are not terminated.
func notTerminated(t *testing.T, c *ec2.Client, filters ...types.Filter) []string {
	t.Helper()
	out, err := c.DescribeInstances(ctx(t), &ec2.DescribeInstancesInput{Filters: filters})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range out.Reservations {
		for _, in := range r.Instances {
			if in.State.Name != types.InstanceStateNameTerminated {
				ids = append(ids, aws.ToString(in.InstanceId))
			}
		}
	}
	sort.Strings(ids)
	return ids
}

// failRack runs `nubo topology fail --rack zone/rack` and returns the
// instance IDs it says it stopped, and the hosts it failed.
func failRack(t *testing.T, srv *nubotest.Server, rack string) (stopped, hosts []string) {
	t.Helper()
	out := nuboTopology(t, srv, "fail", "--rack", rack, "--reason", "e2e test")
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		switch f := strings.Fields(l); {
		case len(f) == 2 && f[0] == "stopped":
			stopped = append(stopped, f[1])
		case len(f) == 2 && f[0] == "failed":
			hosts = append(hosts, f[1])
		default:
			t.Fatalf("nubo topology fail: unexpected line %q in:\n%s", l, out)
		}
	}
	sort.Strings(stopped)
	return stopped, hosts
}

// waitSettled waits until none of ids is pending or stopping.
func waitSettled(t *testing.T, c *ec2.Client, ids ...string) map[string]types.Instance {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		m := describe(t, c, ids...)
		busy := false
		for _, in := range m {
			if s := in.State.Name; s == types.InstanceStateNamePending || s == types.InstanceStateNameStopping || s == types.InstanceStateNameShuttingDown {
				busy = true
			}
		}
		if !busy {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("instances %v still changing state after a minute", ids)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
