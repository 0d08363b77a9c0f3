package main

import (
	"context"
	"fmt"
	"os"
	osexec "os/exec"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"nubo/internal/nubotest"
)

// benchServer starts `nubo serve` with the named image (built once, then
// cached) in a temporary data dir; stop stops it and removes what it made.
func benchServer(ctx context.Context, image string, args ...string) (srv *nubotest.Server, c *ec2.Client, stop func(), err error) {
	images, err := nubotest.ImageCache(ctx, image)
	if err != nil {
		return nil, nil, nil, err
	}
	dir, err := os.MkdirTemp("", "nubo-bench-")
	if err != nil {
		return nil, nil, nil, err
	}
	srv, err = nubotest.Start(ctx, dir, append([]string{"--image-dir", images, "--terminated-ttl", "1m"}, args...)...)
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, nil, err
	}
	stop = func() {
		srv.Stop()
		if out, err := osexec.Command(srv.Bin, "serve", "--cleanup", "--data-dir", dir).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "cleaning up %s: %v\n%s", dir, err, out)
		}
		if err := os.RemoveAll(dir); err != nil {
			fmt.Fprintf(os.Stderr, "removing %s: %v\n", dir, err)
		}
	}
	if c, err = srv.EC2(); err != nil {
		stop()
		return nil, nil, nil, err
	}
	return srv, c, stop, nil
}

// imageID finds a registered image by name.
func imageID(ctx context.Context, c *ec2.Client, name string) (*string, error) {
	out, err := c.DescribeImages(ctx, &ec2.DescribeImagesInput{Filters: []types.Filter{{Name: aws.String("name"), Values: []string{name}}}})
	if err != nil || len(out.Images) == 0 {
		return nil, fmt.Errorf("%s not registered: %v", name, err)
	}
	return out.Images[0].ImageId, nil
}
