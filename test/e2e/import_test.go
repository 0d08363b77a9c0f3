package e2e

import (
	"archive/tar"
	"bytes"
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"nubo/internal/nubotest"
)

// busyboxTarball is a root filesystem as `docker export` would give: busybox
// and an init of its own that is not nubo-init.
func busyboxTarball(t *testing.T) string {
	t.Helper()
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Skipf("needs busybox-static: %v", err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(h *tar.Header, body []byte) {
		h.Size = int64(len(body))
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write(body)
	}
	for _, d := range []string{"bin", "sbin", "proc", "sys", "dev", "tmp", "run", "etc", "root"} {
		add(&tar.Header{Name: d + "/", Typeflag: tar.TypeDir, Mode: 0o755}, nil)
	}
	add(&tar.Header{Name: "bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755}, bb)
	for _, applet := range []string{"sh", "sleep", "hostname", "cat", "echo"} {
		add(&tar.Header{Name: "bin/" + applet, Typeflag: tar.TypeSymlink, Linkname: "busybox"}, nil)
	}
	add(&tar.Header{Name: "sbin/init", Typeflag: tar.TypeReg, Mode: 0o755},
		[]byte("#!/bin/sh\necho \"custom init up on $(hostname)\"\ntrap 'echo bye; exit 0' TERM\nwhile :; do sleep 1 & wait $!; done\n"))
	tw.Close()
	path := filepath.Join(t.TempDir(), "rootfs.tar")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestImportedImageRuns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("instances need root")
	}
	tarball := busyboxTarball(t)
	images := t.TempDir()
	bin, err := nubotest.Binary()
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "image", "import", "busybox-custom", tarball, "--image-dir", images, "--description", "my own rootfs").CombinedOutput(); err != nil {
		t.Fatalf("nubo image import: %v\n%s", err, out)
	}
	srv, c := start(t, "--image-dir", images)
	d, err := c.DescribeImages(ctx(t), &ec2.DescribeImagesInput{Owners: []string{"nubo"}, Filters: []types.Filter{{Name: aws.String("name"), Values: []string{"busybox-*"}}}})
	if err != nil || len(d.Images) != 1 || aws.ToString(d.Images[0].Description) != "my own rootfs" || aws.ToString(d.Images[0].PlatformDetails) != "Linux/UNIX" {
		t.Fatalf("imported image: %v %+v", err, d)
	}
	out, err := c.RunInstances(ctx(t), &ec2.RunInstancesInput{ImageId: d.Images[0].ImageId, InstanceType: types.InstanceTypeT2Micro,
		MinCount: aws.Int32(1), MaxCount: aws.Int32(1)})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(out.Instances[0].InstanceId)
	waitState(t, c, "running", id)
	if n := inside(t, srv, id, "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us"); n != "100000" {
		t.Errorf("t2.micro CPU quota %s, want one CPU (100000)", n)
	}
	var console string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		co, err := c.GetConsoleOutput(ctx(t), &ec2.GetConsoleOutputInput{InstanceId: aws.String(id)})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := base64.StdEncoding.DecodeString(aws.ToString(co.Output))
		if console = string(b); strings.Contains(console, "custom init up on ip-") {
			break
		}
	}
	if !strings.Contains(console, "custom init up on ip-") {
		t.Fatalf("console output %q", console)
	}
	if _, err := c.TerminateInstances(ctx(t), &ec2.TerminateInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Fatal(err)
	}
	waitState(t, c, "terminated", id)
}
