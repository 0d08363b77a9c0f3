package ec2

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"nubo/internal/instance"
	"nubo/internal/store"
)

// TestHibernationWithSDK drives hibernation through the query layer:
// HibernationOptions at launch, DescribeInstances' hibernationOptions and
// its filter, StopInstances Hibernate.
func TestHibernationWithSDK(t *testing.T) {
	e := newVolEnv(t)
	e.v.a.Instances.Volumes = e.v.a.Volumes // block root volumes, encryptable
	c, ctx := e.c, tctx(t)
	run := func(hibernation *types.HibernationOptionsRequest, size int32) (*ec2.RunInstancesOutput, error) {
		in := &ec2.RunInstancesInput{ImageId: aws.String(e.v.image), InstanceType: types.InstanceTypeT3Micro,
			MinCount: aws.Int32(1), MaxCount: aws.Int32(1), HibernationOptions: hibernation}
		if size > 0 {
			in.BlockDeviceMappings = []types.BlockDeviceMapping{{DeviceName: aws.String("/dev/xvda"),
				Ebs: &types.EbsBlockDevice{Encrypted: aws.Bool(true), VolumeSize: aws.Int32(size)}}}
		}
		return c.RunInstances(ctx, in)
	}
	configured := &types.HibernationOptionsRequest{Configured: aws.Bool(true)}

	_, err := run(configured, 0)
	wantAPIError(t, err, instance.UnsupportedHibernationConfiguration) // not encrypted
	_, err = run(configured, 8)
	wantAPIError(t, err, instance.UnsupportedHibernationConfiguration) // 1 GiB of memory + the 8 GiB image
	e.v.a.Instances.Hibernation = func() error { return errors.New("CRIU 4 is not installed on this host: criu: not found") }
	_, err = run(configured, 9)
	if msg := wantAPIError(t, err, instance.UnsupportedHibernationConfiguration); !strings.Contains(msg, "CRIU 4 is not installed") {
		t.Fatalf("message %q does not say why", msg)
	}
	e.v.a.Instances.Hibernation = nil

	out, err := run(configured, 9)
	if err != nil {
		t.Fatal(err)
	}
	id := *out.Instances[0].InstanceId
	if h := out.Instances[0].HibernationOptions; h == nil || !aws.ToBool(h.Configured) {
		t.Fatalf("RunInstances hibernationOptions %+v", h)
	}
	plain, err := run(&types.HibernationOptionsRequest{Configured: aws.Bool(false)}, 0)
	if err != nil {
		t.Fatal(err)
	}
	other := *plain.Instances[0].InstanceId
	if h := describeOne(t, c, id).HibernationOptions; h == nil || !aws.ToBool(h.Configured) {
		t.Fatalf("DescribeInstances hibernationOptions %+v", h)
	}
	if h := describeOne(t, c, other).HibernationOptions; h == nil || aws.ToBool(h.Configured) {
		t.Fatalf("DescribeInstances hibernationOptions of a plain launch %+v", h)
	}
	found, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{
		Filters: []types.Filter{{Name: aws.String("hibernation-options.configured"), Values: []string{"true"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(found.Reservations) != 1 || *found.Reservations[0].Instances[0].InstanceId != id {
		t.Fatalf("filter hibernation-options.configured=true found %+v", found.Reservations)
	}

	running := func(id string) {
		t.Helper()
		_, err := store.Update(context.Background(), e.v.a.Instances.Store, instance.Key(e.v.account, "us-east-1", id),
			func(in *instance.Instance) error { in.State = instance.Running; return nil })
		if err != nil {
			t.Fatal(err)
		}
	}
	running(id)
	running(other)
	_, err = c.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{other}, Hibernate: aws.Bool(true)})
	wantAPIError(t, err, instance.UnsupportedHibernationConfiguration)
	_, err = c.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{id}, Hibernate: aws.Bool(true), Force: aws.Bool(true)})
	wantAPIError(t, err, "InvalidParameterCombination")

	stop, err := c.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{id}, Hibernate: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	if s := stop.StoppingInstances[0]; s.CurrentState.Name != types.InstanceStateNameStopping || s.PreviousState.Name != types.InstanceStateNameRunning {
		t.Fatalf("StopInstances answered %s → %s", s.PreviousState.Name, s.CurrentState.Name)
	}
	got := describeOne(t, c, id)
	if r := got.StateReason; r == nil || aws.ToString(r.Code) != "Client.UserInitiatedHibernate" ||
		aws.ToString(r.Message) != "Client.UserInitiatedHibernate: User initiated hibernate" {
		t.Fatalf("state reason %+v", r)
	}
	if in, err := e.v.a.Instances.Get(ctx, e.v.account, id); err != nil || !in.Hibernate {
		t.Fatalf("record hibernate %v (%v)", in.Hibernate, err)
	}
}
