package e2e

import (
	"context"
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
	"github.com/aws/aws-sdk-go-v2/service/ec2instanceconnect"

	"nubo/internal/nubotest"
)

// TestUserDataAndLogin launches each image as a user would, with a key pair
// and a user data script, and logs in over SSH as admin, the images'
// default user, with the system's ssh client and the key pair's private
// key, at the instance's public IP: the user data ran once as root (not
// again after a reboot), admin has passwordless sudo, the console shows the
// host keys, and a key sent with EC2 Instance Connect logs in.
func TestUserDataAndLogin(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("instances need root")
	}
	for _, tool := range []string{"runc", "ssh"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s", tool)
		}
	}
	for _, name := range []string{"debian-12-minimal", "debian-12"} {
		t.Run(name, func(t *testing.T) { testUserDataAndLogin(t, name) })
	}
}

const userDataScript = `#!/bin/bash
echo "user data ran as $(id -un) on $(hostname)" >> /var/tmp/user-data-ran
echo "nubo user data test: done"
`

func testUserDataAndLogin(t *testing.T, name string) {
	images, err := nubotest.ImageCache(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	srv, c := start(t, "--image-dir", images)
	imgs, err := c.DescribeImages(ctx(t), &ec2.DescribeImagesInput{Filters: []types.Filter{{Name: aws.String("name"), Values: []string{name}}}})
	if err != nil || len(imgs.Images) != 1 {
		t.Fatalf("%s not registered: %v %+v", name, err, imgs)
	}
	if _, err := nubotest.OpenDefaultGroup(ctx(t), c, "", 22); err != nil {
		t.Fatal(err)
	}
	kp, err := c.CreateKeyPair(ctx(t), &ec2.CreateKeyPairInput{KeyName: aws.String("login"), KeyType: types.KeyTypeEd25519})
	if err != nil {
		t.Fatal(err)
	}
	// As `aws ec2 create-key-pair --query KeyMaterial --output text > login.pem`
	// writes it: with a final newline, which OpenSSH needs.
	pem := filepath.Join(t.TempDir(), "login.pem")
	if err := os.WriteFile(pem, []byte(aws.ToString(kp.KeyMaterial)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	t0 := time.Now()
	out, err := c.RunInstances(ctx(t), &ec2.RunInstancesInput{ImageId: imgs.Images[0].ImageId, InstanceType: types.InstanceTypeT3Micro,
		MinCount: aws.Int32(1), MaxCount: aws.Int32(1), KeyName: aws.String("login"),
		UserData: aws.String(base64.StdEncoding.EncodeToString([]byte(userDataScript)))})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(out.Instances[0].InstanceId)
	ip := aws.ToString(describeOne(t, c, id).PublicIpAddress)
	if ip == "" {
		waitState(t, c, "running", id)
		ip = aws.ToString(describeOne(t, c, id).PublicIpAddress)
	}
	if ip == "" {
		t.Fatal("no public IP")
	}
	login := sshUntil(t, pem, ip, 2*time.Minute)
	// Coarse (a SYN sent before the instance's address exists waits for
	// TCP's retry); test/bench -only ssh measures this properly.
	t.Logf("%s: RunInstances → first SSH login as admin: %s", name, login.Sub(t0).Round(time.Millisecond))

	waitUserData(t, pem, ip, name)
	got := sshAdmin(t, pem, ip, "id -un; sudo -n id -un; cat /var/tmp/user-data-ran")
	if want := "admin\nroot\nuser data ran as root on "; !strings.HasPrefix(got, want) || strings.Count(got, "user data ran") != 1 {
		t.Errorf("in the instance:\n%s\nwant it to start with:\n%s", got, want)
	}
	// EC2 shows the host keys and the user data's output on the console.
	deadline := time.Now().Add(time.Minute)
	for {
		con, err := c.GetConsoleOutput(ctx(t), &ec2.GetConsoleOutputInput{InstanceId: aws.String(id), Latest: aws.Bool(true)})
		if err != nil {
			t.Fatal(err)
		}
		text := decode(aws.ToString(con.Output))
		if strings.Contains(text, "-----END SSH HOST KEY KEYS-----") && strings.Contains(text, "nubo user data test: done") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("console output lacks the host keys or the user data's output:\n%s", text)
		}
		time.Sleep(time.Second)
	}

	// EC2 Instance Connect: a key pushed with SendSSHPublicKey logs in
	// for 60 s, through sshd's AuthorizedKeysCommand.
	eicKey := filepath.Join(t.TempDir(), "eic")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", eicKey).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v %s", err, out)
	}
	eicPub, _ := os.ReadFile(eicKey + ".pub")
	if _, err := exec.Command("ssh", sshArgs(eicKey, ip, "true")...).CombinedOutput(); err == nil {
		t.Error("a key not sent yet logs in")
	}
	cfg, err := srv.Config(nil)
	if err != nil {
		t.Fatal(err)
	}
	sent, err := ec2instanceconnect.NewFromConfig(cfg).SendSSHPublicKey(ctx(t), &ec2instanceconnect.SendSSHPublicKeyInput{
		InstanceId: aws.String(id), InstanceOSUser: aws.String("admin"), SSHPublicKey: aws.String(strings.TrimSpace(string(eicPub)))})
	if err != nil || !sent.Success {
		t.Fatalf("SendSSHPublicKey: %v", err)
	}
	if got := sshAdmin(t, eicKey, ip, "echo eic"); got != "eic" {
		t.Errorf("Instance Connect login: %q", got)
	}

	// A reboot runs nothing again.
	if _, err := c.RebootInstances(ctx(t), &ec2.RebootInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // let the reboot begin before logging in again
	sshUntil(t, pem, ip, 2*time.Minute)
	waitUserData(t, pem, ip, name)
	if got := sshAdmin(t, pem, ip, "cat /var/tmp/user-data-ran"); strings.Count(got, "user data ran") != 1 {
		t.Errorf("user data ran again after a reboot:\n%s", got)
	}
}

// sshArgs are the ssh client's options for a fresh instance.
func sshArgs(pem, ip, command string) []string {
	return []string{"-F", "/dev/null", "-i", pem, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
		"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=5",
		"-o", "LogLevel=ERROR", "admin@" + ip, command}
}

// sshUntil tries to log in as admin until it works; it returns when it did.
func sshUntil(t *testing.T, pem, ip string, timeout time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		out, err := exec.Command("ssh", sshArgs(pem, ip, "true")...).CombinedOutput()
		if err == nil {
			return time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("no SSH login as admin@%s: %v: %s", ip, err, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sshAdmin runs command as admin and returns its output.
func sshAdmin(t *testing.T, pem, ip, command string) string {
	t.Helper()
	out, err := exec.Command("ssh", sshArgs(pem, ip, command)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh admin@%s %q: %v: %s", ip, command, err, out)
	}
	return strings.TrimSpace(string(out))
}

// waitUserData waits until the boot's user data is done: cloud-init says
// so, or nubo-init marked the boot finished as cloud-init does.
func waitUserData(t *testing.T, pem, ip, image string) {
	t.Helper()
	cmd := "for i in $(seq 600); do [ -e /var/lib/cloud/instance/boot-finished ] && exit; sleep 0.1; done; exit 1"
	if image == "debian-12" {
		cmd = "cloud-init status --wait >/dev/null; cloud-init status"
	}
	sshAdmin(t, pem, ip, cmd)
}
