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

	"nubo/internal/network/netbench"
	"nubo/internal/nubotest"
)

// benchInstances measures RunInstances → running for debian-12-minimal: one
// at a time (p50/p90 over n launches), then many at once.
func benchInstances(ctx context.Context, n, many int) error {
	if os.Geteuid() != 0 {
		fmt.Println("\ninstances: skipped (needs root)")
		return nil
	}
	_, c, stop, err := benchServer(ctx, "debian-12-minimal")
	if err != nil {
		return err
	}
	defer stop()
	image, err := imageID(ctx, c, "debian-12-minimal")
	if err != nil {
		return err
	}

	fmt.Printf("\ninstances (debian-12-minimal, t3.nano)\n")
	var lat []time.Duration
	for i := 0; i < n; i++ {
		t0 := time.Now()
		ids, err := launch(ctx, c, image, 1)
		if err != nil {
			return err
		}
		if err := waitRunning(ctx, c, ids, 5*time.Millisecond); err != nil {
			return err
		}
		lat = append(lat, time.Since(t0))
		if _, err := c.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: ids}); err != nil {
			return err
		}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	fmt.Printf("  RunInstances → running, one at a time (n=%d): p50 %s  p90 %s  min %s  max %s\n", n,
		lat[n/2].Round(time.Millisecond), lat[n*9/10].Round(time.Millisecond), lat[0].Round(time.Millisecond), lat[n-1].Round(time.Millisecond))

	t0 := time.Now()
	ids, err := launch(ctx, c, image, int32(many))
	if err != nil {
		return err
	}
	if err := waitRunning(ctx, c, ids, 50*time.Millisecond); err != nil {
		return err
	}
	fmt.Printf("  RunInstances of %d at once → all running: %s\n", many, time.Since(t0).Round(time.Millisecond))
	t0 = time.Now()
	if _, err := c.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: ids}); err != nil {
		return err
	}
	if err := ec2.NewInstanceTerminatedWaiter(c, func(o *ec2.InstanceTerminatedWaiterOptions) {
		o.MinDelay, o.MaxDelay = 50*time.Millisecond, 200*time.Millisecond
	}).
		Wait(ctx, &ec2.DescribeInstancesInput{InstanceIds: ids}, 5*time.Minute); err != nil {
		return err
	}
	fmt.Printf("  TerminateInstances of %d → all terminated: %s\n", many, time.Since(t0).Round(time.Millisecond))
	return benchElasticIPMove(ctx, c, image, 5)
}

// benchElasticIPMove moves an Elastic IP between two running instances
// under a client loop and reports when the first attempt that reached the
// new instance began (an upper bound: attempts have a 40 ms deadline, and
// the one in flight during the move is lost).
func benchElasticIPMove(ctx context.Context, c *ec2.Client, image *string, moves int) error {
	if _, err := nubotest.OpenDefaultGroup(ctx, c, "", 22); err != nil {
		return err
	}
	ids, err := launch(ctx, c, image, 2)
	if err != nil {
		return err
	}
	defer c.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: ids})
	if err := waitRunning(ctx, c, ids, 20*time.Millisecond); err != nil {
		return err
	}
	eip, err := c.AllocateAddress(ctx, &ec2.AllocateAddressInput{})
	if err != nil {
		return err
	}
	ip := aws.ToString(eip.PublicIp)
	probe := func() string { k, _ := nubotest.SSHHostKey(ip, 40*time.Millisecond); return k }
	// settle associates to id and waits until the address answers steadily.
	settle := func(id string) (string, error) {
		if _, err := c.AssociateAddress(ctx, &ec2.AssociateAddressInput{AllocationId: eip.AllocationId, InstanceId: aws.String(id), AllowReassociation: aws.Bool(true)}); err != nil {
			return "", err
		}
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if k := probe(); k != "" && k == probe() {
				return k, nil
			}
		}
		return "", fmt.Errorf("elastic IP %s does not reach %s", ip, id)
	}
	from, err := settle(ids[0])
	if err != nil {
		return err
	}
	var took []time.Duration
	lost := 0
	for i := 0; i < moves; i++ {
		to := ids[(i+1)%2]
		t0 := time.Now()
		if _, err := c.AssociateAddress(ctx, &ec2.AssociateAddressInput{AllocationId: eip.AllocationId, InstanceId: aws.String(to), AllowReassociation: aws.Bool(true)}); err != nil {
			return err
		}
		for {
			start := time.Now()
			k := probe()
			if k != "" && k != from {
				took = append(took, start.Sub(t0))
				from = k
				break
			}
			if k == "" {
				lost++
			}
			if time.Since(t0) > 10*time.Second {
				return fmt.Errorf("elastic IP %s did not move to %s", ip, to)
			}
		}
	}
	sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
	fmt.Printf("  Elastic IP move under a client loop (n=%d): p50 %s, max %s (upper bounds: 40 ms attempts); %d attempts lost\n",
		moves, took[len(took)/2].Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond), lost)
	return nil
}

func launch(ctx context.Context, c *ec2.Client, image *string, n int32) ([]string, error) {
	out, err := c.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: image, InstanceType: types.InstanceTypeT3Nano, MinCount: aws.Int32(n), MaxCount: aws.Int32(n)})
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, in := range out.Instances {
		ids = append(ids, aws.ToString(in.InstanceId))
	}
	return ids, nil
}

// waitRunning polls DescribeInstances every poll until every instance runs.
func waitRunning(ctx context.Context, c *ec2.Client, ids []string, poll time.Duration) error {
	deadline := time.Now().Add(5 * time.Minute)
	for time.Now().Before(deadline) {
		out, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: ids})
		if err != nil {
			return err
		}
		running := 0
		for _, r := range out.Reservations {
			for _, in := range r.Instances {
				switch in.State.Name {
				case types.InstanceStateNameRunning:
					running++
				case types.InstanceStateNamePending:
				default:
					return fmt.Errorf("instance %s is %s", aws.ToString(in.InstanceId), in.State.Name)
				}
			}
		}
		if running == len(ids) {
			return nil
		}
		time.Sleep(poll)
	}
	return fmt.Errorf("instances not running after 5 minutes")
}

// benchNetwork measures the VPC data plane's TCP throughput against a bare
// veth pair measured in the same run.
func benchNetwork(ctx context.Context) error {
	if os.Geteuid() != 0 {
		fmt.Println("\nnetwork: skipped (needs root)")
		return nil
	}
	res, err := netbench.Run(ctx, netbench.Options{Duration: 3 * time.Second, Rounds: 3})
	if err != nil {
		return err
	}
	fmt.Printf("\nnetwork (one TCP stream, median of 3 rounds of 3 s)\n%s\n", res)
	return nil
}
