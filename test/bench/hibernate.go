package main

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	osexec "os/exec"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"

	"nubo/internal/nubotest"
)

// benchHibernate measures StopInstances Hibernate → stopped and
// StartInstances → running for an instance holding 256 MiB of dirty
// memory, against a normal stop and start (a boot) of the same instance in
// the same run.
func benchHibernate(ctx context.Context, rounds int) error {
	if os.Geteuid() != 0 {
		fmt.Println("\nhibernate: skipped (needs root)")
		return nil
	}
	srv, c, stop, err := benchServer(ctx, "debian-12-minimal", "--host-vcpus", "64", "--host-memory-mib", "65536")
	if err != nil {
		return err
	}
	defer stop()
	image, err := imageID(ctx, c, "debian-12-minimal")
	if err != nil {
		return err
	}
	out, err := c.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: image, InstanceType: types.InstanceTypeT3Micro,
		MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		HibernationOptions: &types.HibernationOptionsRequest{Configured: aws.Bool(true)},
		BlockDeviceMappings: []types.BlockDeviceMapping{{DeviceName: aws.String("/dev/xvda"),
			Ebs: &types.EbsBlockDevice{Encrypted: aws.Bool(true), VolumeSize: aws.Int32(10)}}},
		UserData: aws.String(base64.StdEncoding.EncodeToString([]byte(nubotest.RAMWorkload)))})
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorCode() == "UnsupportedHibernationConfiguration" {
		fmt.Printf("\nhibernate: skipped (%s)\n", ae.ErrorMessage())
		return nil
	}
	if err != nil {
		return err
	}
	id := aws.ToString(out.Instances[0].InstanceId)
	if err := waitRunning(ctx, c, []string{id}, 20*time.Millisecond); err != nil {
		return err
	}
	if err := waitInside(srv, id, "test -s /run/data.sha256"); err != nil {
		return err
	}
	var hib, res, halt, boot []time.Duration
	// All hibernations first: a normal stop loses the data in RAM, and the
	// user data that makes it runs at the first boot only.
	for _, hibernate := range []bool{true, false} {
		for i := 0; i < rounds; i++ {
			t0 := time.Now()
			if _, err := c.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{id}, Hibernate: aws.Bool(hibernate)}); err != nil {
				return err
			}
			if err := waitFor(ctx, c, id, types.InstanceStateNameStopped); err != nil {
				return err
			}
			t1 := time.Now()
			if hibernate {
				if err := hibernated(ctx, c, id); err != nil {
					return fmt.Errorf("round %d: %w", i, err)
				}
			}
			if _, err := c.StartInstances(ctx, &ec2.StartInstancesInput{InstanceIds: []string{id}}); err != nil {
				return err
			}
			if err := waitRunning(ctx, c, []string{id}, 20*time.Millisecond); err != nil {
				return err
			}
			t2 := time.Now()
			if hibernate {
				hib, res = append(hib, t1.Sub(t0)), append(res, t2.Sub(t1))
				if err := waitInside(srv, id, "test -s /run/data.sha256"); err != nil {
					return fmt.Errorf("after resume %d: %w", i, err)
				}
				continue
			}
			halt, boot = append(halt, t1.Sub(t0)), append(boot, t2.Sub(t1))
		}
	}
	fmt.Printf("\nhibernate (debian-12-minimal t3.micro, 256 MiB of dirty memory in a process, encrypted root; %d rounds, then as many normal stops and starts)\n", rounds)
	fmt.Printf("  hibernate: StopInstances Hibernate → stopped  p50 %9s  p90 %9s   (target ≤ 1500 ms)\n", ms(pct(hib, 50)), ms(pct(hib, 90)))
	fmt.Printf("  resume:    StartInstances → running          p50 %9s  p90 %9s   (target ≤ 2000 ms)\n", ms(pct(res, 50)), ms(pct(res, 90)))
	fmt.Printf("  baseline:  StopInstances → stopped           p50 %9s   hibernate/stop %.2f\n", ms(pct(halt, 50)), float64(pct(hib, 50))/float64(pct(halt, 50)))
	fmt.Printf("             StartInstances → running (boot)   p50 %9s   resume/boot    %.2f\n", ms(pct(boot, 50)), float64(pct(res, 50))/float64(pct(boot, 50)))
	return nil
}

// hibernated checks that a stopped instance hibernated (a failed save
// shuts it down instead, and says so in its reason).
func hibernated(ctx context.Context, c *ec2.Client, id string) error {
	out, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		return err
	}
	r := out.Reservations[0].Instances[0].StateReason
	if r == nil || aws.ToString(r.Code) != "Client.UserInitiatedHibernate" {
		return fmt.Errorf("%s did not hibernate: %+v", id, aws.ToString(r.Message))
	}
	return nil
}

// waitFor polls until the instance is in state.
func waitFor(ctx context.Context, c *ec2.Client, id string, state types.InstanceStateName) error {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		out, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
		if err != nil {
			return err
		}
		if s := out.Reservations[0].Instances[0].State.Name; s == state {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("%s not %s after 2 minutes", id, state)
}

// waitInside runs a shell test inside the instance until it succeeds.
func waitInside(srv *nubotest.Server, id, script string) error {
	deadline := time.Now().Add(time.Minute)
	for {
		pid, err := srv.InstancePID(id)
		if err == nil {
			var out []byte
			out, err = osexec.Command("nsenter", "-t", pid, "-a", "/bin/sh", "-c", script).CombinedOutput()
			if err == nil {
				return nil
			}
			err = fmt.Errorf("%w: %s", err, strings.TrimSpace(string(out)))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: %q not true after a minute: %v", id, script, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
