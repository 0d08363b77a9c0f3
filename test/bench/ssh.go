package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"sort"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"golang.org/x/crypto/ssh"

	"nubo/internal/nubotest"
)

// benchSSH measures what a user waits for: RunInstances called → the first
// SSH login as the image's default user (admin) with the launch's key pair
// succeeds (a session that runs `true`), over n launches per image.
func benchSSH(ctx context.Context, n int) error {
	if os.Geteuid() != 0 {
		fmt.Println("\nssh: skipped (needs root)")
		return nil
	}
	targets := map[string]time.Duration{"debian-12-minimal": 600 * time.Millisecond, "debian-12": 4 * time.Second}
	fmt.Printf("\nlaunch → first SSH login as admin (t3.micro, n=%d per image; AWS takes about 25 s)\n", n)
	for _, name := range []string{"debian-12-minimal", "debian-12"} {
		lat, err := sshLogins(ctx, name, n)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		verdict := "ok"
		if lat[n/2] > targets[name] {
			verdict = "below target"
		}
		fmt.Printf("  %-18s p50 %s  p90 %s  min %s  max %s  (target p50 ≤ %s)  %s\n", name,
			lat[n/2].Round(time.Millisecond), lat[n*9/10].Round(time.Millisecond), lat[0].Round(time.Millisecond),
			lat[n-1].Round(time.Millisecond), targets[name], verdict)
	}
	return nil
}

// sshLogins starts a server with the image and measures n launches.
func sshLogins(ctx context.Context, name string, n int) ([]time.Duration, error) {
	_, c, stop, err := benchServer(ctx, name)
	if err != nil {
		return nil, err
	}
	defer stop()
	kp, err := c.CreateKeyPair(ctx, &ec2.CreateKeyPairInput{KeyName: aws.String("bench"), KeyType: types.KeyTypeEd25519})
	if err != nil {
		return nil, err
	}
	signer, err := ssh.ParsePrivateKey([]byte(aws.ToString(kp.KeyMaterial)))
	if err != nil {
		return nil, err
	}
	if _, err := nubotest.OpenDefaultGroup(ctx, c, "", 22); err != nil {
		return nil, err
	}
	out, err := c.DescribeImages(ctx, &ec2.DescribeImagesInput{Filters: []types.Filter{{Name: aws.String("name"), Values: []string{name}}}})
	if err != nil || len(out.Images) == 0 {
		return nil, fmt.Errorf("%s not registered: %v", name, err)
	}
	var lat []time.Duration
	for range n {
		took, err := launchAndLogin(ctx, c, out.Images[0].ImageId, signer)
		if err != nil {
			return nil, err
		}
		lat = append(lat, took)
	}
	return lat, nil
}

// launchAndLogin runs one instance and tries to log in every 20 ms until a
// login succeeds; it terminates the instance.
func launchAndLogin(ctx context.Context, c *ec2.Client, image *string, signer ssh.Signer) (time.Duration, error) {
	t0 := time.Now()
	out, err := c.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: image, InstanceType: types.InstanceTypeT3Micro,
		MinCount: aws.Int32(1), MaxCount: aws.Int32(1), KeyName: aws.String("bench")})
	if err != nil {
		return 0, err
	}
	id := aws.ToString(out.Instances[0].InstanceId)
	defer c.TerminateInstances(context.WithoutCancel(ctx), &ec2.TerminateInstancesInput{InstanceIds: []string{id}})
	ip := aws.ToString(out.Instances[0].PublicIpAddress)
	for ip == "" {
		d, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
		if err != nil {
			return 0, err
		}
		ip = aws.ToString(d.Reservations[0].Instances[0].PublicIpAddress)
		time.Sleep(5 * time.Millisecond)
	}
	cfg := &ssh.ClientConfig{User: "admin", Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)}, HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 300 * time.Millisecond}
	for time.Since(t0) < 2*time.Minute {
		if login(ip, cfg) == nil {
			return time.Since(t0), nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return 0, fmt.Errorf("no SSH login to %s (%s) within 2 minutes", id, ip)
}

func login(ip string, cfg *ssh.ClientConfig) error {
	conn, err := net.DialTimeout("tcp", net.JoinHostPort(ip, "22"), cfg.Timeout)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
	cc, chans, reqs, err := ssh.NewClientConn(conn, ip, cfg)
	if err != nil {
		return err
	}
	client := ssh.NewClient(cc, chans, reqs)
	defer client.Close()
	s, err := client.NewSession()
	if err != nil {
		return err
	}
	defer s.Close()
	return s.Run("true")
}
