package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"nubo/internal/network/netns"
	"nubo/internal/nubotest"
)

// benchENIFailover measures the failover: an ENI with a secondary
// address moves between two instances serving HTTP on it while a third
// loops on that address (a new connection every 10 ms, 1 s timeout). The
// figure is AttachNetworkInterface returning → the first answer from the
// new holder; the baseline is one request's round trip in the same loop.
func benchENIFailover(ctx context.Context, moves int) error {
	if os.Geteuid() != 0 {
		fmt.Println("\nENI failover: skipped (needs root)")
		return nil
	}
	srv, c, stop, err := benchServer(ctx, "debian-12-minimal")
	if err != nil {
		return err
	}
	defer stop()
	image, err := imageID(ctx, c, "debian-12-minimal")
	if err != nil {
		return err
	}
	ids, err := launch(ctx, c, image, 3)
	if err != nil {
		return err
	}
	if err := waitRunning(ctx, c, ids, 20*time.Millisecond); err != nil {
		return err
	}
	d, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: ids[:1]})
	if err != nil {
		return err
	}
	created, err := c.CreateNetworkInterface(ctx, &ec2.CreateNetworkInterfaceInput{SubnetId: d.Reservations[0].Instances[0].SubnetId,
		SecondaryPrivateIpAddressCount: aws.Int32(1)})
	if err != nil {
		return err
	}
	eni := aws.ToString(created.NetworkInterface.NetworkInterfaceId)
	service := ""
	for _, p := range created.NetworkInterface.PrivateIpAddresses {
		if !aws.ToBool(p.Primary) {
			service = aws.ToString(p.PrivateIpAddress)
		}
	}
	ns := make([]string, 3)
	for i, id := range ids {
		pid, err := srv.InstancePID(id)
		if err != nil {
			return err
		}
		ns[i] = "/proc/" + pid + "/ns/net"
	}
	for i, name := range []string{"a", "b"} { // servers in A and B, on every address
		ln, err := netns.Listen(ns[i], "tcp4", "0.0.0.0:8080")
		if err != nil {
			return err
		}
		hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, name) })}
		go hs.Serve(ln)
		defer hs.Close()
	}
	loop := nubotest.StartLoop(ns[2], "http://"+service+":8080/", 10*time.Millisecond, time.Second)
	defer loop.Stop()

	fmt.Printf("\nENI failover (debian-12-minimal t3.nano ×3; a client instance loops on the ENI's secondary address, a new connection every 10 ms)\n")
	var failover, detach []time.Duration
	failed := 0
	for i := 0; i < moves; i++ {
		to, name := ids[i%2], []string{"a", "b"}[i%2]
		att, err := c.AttachNetworkInterface(ctx, &ec2.AttachNetworkInterfaceInput{NetworkInterfaceId: aws.String(eni), InstanceId: aws.String(to), DeviceIndex: aws.Int32(1)})
		if err != nil {
			return err
		}
		t0 := time.Now()
		before := len(loop.Answers())
		at, ok := loop.WaitFor(name, t0, 10*time.Second)
		if !ok {
			return fmt.Errorf("move %d: no answer from %s within 10 s", i, name)
		}
		failover = append(failover, at.Sub(t0))
		for _, a := range loop.Answers()[before:] {
			if a.Err != nil && a.At.Before(at) {
				failed++
			}
		}
		if err := waitENIStatus(ctx, c, eni, "in-use"); err != nil {
			return err
		}
		t1 := time.Now()
		if _, err := c.DetachNetworkInterface(ctx, &ec2.DetachNetworkInterfaceInput{AttachmentId: att.AttachmentId}); err != nil {
			return err
		}
		if err := waitENIStatus(ctx, c, eni, "available"); err != nil {
			return err
		}
		detach = append(detach, time.Since(t1))
	}
	var rtt []time.Duration
	prev := time.Time{}
	for _, a := range loop.Answers() { // a request's time: from the end of the one before, less the 10 ms pause
		if a.Err == nil && !prev.IsZero() {
			if d := a.At.Sub(prev) - 10*time.Millisecond; d > 0 && d < 100*time.Millisecond {
				rtt = append(rtt, d)
			}
		}
		prev = a.At
	}
	fmt.Printf("  attach returned → first answer from the new holder: p50 %s  p90 %s  max %s over %d moves (target 1 s: %s)\n",
		ms(pct(failover, 50)), ms(pct(failover, 90)), ms(pct(failover, 100)), moves, verdict(pct(failover, 90) <= time.Second))
	fmt.Printf("  requests failed while the ENI was away (detached, refused at once): %d\n", failed)
	fmt.Printf("  detach call → available: %s\n", dist(detach))
	fmt.Printf("  baseline, one request's round trip in the loop: p50 %s\n", ms(pct(rtt, 50)))
	return nil
}

func waitENIStatus(ctx context.Context, c *ec2.Client, id, status string) error {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		out, err := c.DescribeNetworkInterfaces(ctx, &ec2.DescribeNetworkInterfacesInput{NetworkInterfaceIds: []string{id}})
		if err != nil {
			return err
		}
		n := out.NetworkInterfaces[0]
		if string(n.Status) == status && (status != "in-use" || n.Attachment.Status == types.AttachmentStatusAttached) {
			return nil
		}
	}
	return fmt.Errorf("%s never %s", id, status)
}
