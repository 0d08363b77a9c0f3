package image

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	nuboruntime "nubo/internal/runtime"
	"nubo/internal/runtime/runc"
)

// The boot tests run an image as nubo runs instances (the runc driver,
// unprivileged, over an overlay root volume, in a network namespace made
// outside the instance) with a metadata service at 169.254.169.254 that
// answers as EC2's: a key pair, user data, EC2 Instance Connect keys. They
// log in with the system's ssh client, from inside that namespace.

// nuboBinary is the nubo binary whose runc-shim runs the instances:
// $NUBO_BIN, or bin/nubo of this checkout.
func nuboBinary(t *testing.T) string {
	t.Helper()
	if b := os.Getenv("NUBO_BIN"); b != "" {
		return b
	}
	_, file, _, _ := runtime.Caller(0)
	b := filepath.Join(filepath.Dir(file), "..", "..", "bin", "nubo")
	if _, err := os.Stat(b); err != nil {
		t.Skipf("needs the nubo binary for its runc shim (make build, or NUBO_BIN): %v", err)
	}
	return b
}

func requireBootTools(t *testing.T) {
	t.Helper()
	requireRoot(t)
	for _, tool := range []string{"runc", "ip", "nsenter", "ssh", "ssh-keygen", "mount"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s", tool)
		}
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// sshKey makes an ed25519 key pair; it returns the private key's path and
// the public key line.
func sshKey(t *testing.T, comment string) (string, string) {
	t.Helper()
	p := filepath.Join(t.TempDir(), comment)
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", p).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v %s", err, out)
	}
	pub, err := os.ReadFile(p + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	return p, strings.TrimSpace(string(pub))
}

// cgroupParent keeps the test's instances apart from a real nubo's.
const cgroupParent = "/nubo-imagetest"

// vm is one instance of an image under the runc driver.
type vm struct {
	t     *testing.T
	d     *runc.Driver
	spec  nuboruntime.Spec
	netns string
}

// bootVM creates and starts an instance of m over a fresh overlay, with
// the current nubo-init in it (the cached image may hold an older one).
func bootVM(t *testing.T, m Manifest, netns, initBin string) (*vm, time.Time) {
	t.Helper()
	dir := t.TempDir()
	for p := dir; p != os.TempDir() && p != "/"; p = filepath.Dir(p) {
		os.Chmod(p, 0o711)
	}
	upper, work, merged := filepath.Join(dir, "upper"), filepath.Join(dir, "work"), filepath.Join(dir, "rootfs")
	for _, p := range []string{upper, work, merged} {
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.Chown(upper, int(m.UIDBase), int(m.UIDBase))
	opts := "lowerdir=" + m.RootFS + ",upperdir=" + upper + ",workdir=" + work
	if out, err := exec.Command("mount", "-t", "overlay", "overlay", "-o", opts, merged).CombinedOutput(); err != nil {
		t.Fatalf("mount overlay: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", merged).Run() })
	dst := filepath.Join(merged, "usr/sbin/nubo-init")
	if err := copyFile(initBin, dst, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Lchown(dst, int(m.UIDBase), int(m.UIDBase))

	// Registered before the instance's own cleanup, so it runs after it:
	// the parent cgroups go once empty.
	t.Cleanup(func() {
		dirs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup/*", cgroupParent))
		for _, d := range dirs {
			os.Remove(d)
		}
	})
	d, err := runc.New(runc.Config{Root: filepath.Join(dir, "runtime"), Shim: []string{nuboBinary(t), "runc-shim"},
		CgroupParent: cgroupParent, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	spec := nuboruntime.Spec{
		ID: "i-0" + randHex(8)[:16], RootFS: merged, Hostname: "ip-10-0-0-5", Init: m.Init,
		Env:   []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "container=nubo"},
		VCPUs: 1, MemoryMiB: 1024, PidsLimit: 1024,
		UIDBase: m.UIDBase, GIDBase: m.UIDBase, IDCount: 65536,
		NetNS: netns, ConsoleLog: filepath.Join(dir, "console.log"),
	}
	ctx := context.Background()
	if err := d.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(spec.ConsoleLog)
			t.Logf("console of %s:\n%s", spec.ID, b)
		}
		if err := d.Delete(context.Background(), spec.ID); err != nil {
			t.Errorf("delete %s: %v", spec.ID, err)
		}
	})
	v := &vm{t: t, d: d, spec: spec, netns: netns}
	return v, v.start()
}

func (v *vm) start() time.Time {
	v.t.Helper()
	t0 := time.Now()
	if err := v.d.Start(context.Background(), v.spec.ID); err != nil {
		v.t.Fatal(err)
	}
	return t0
}

func (v *vm) stop() {
	v.t.Helper()
	if err := v.d.Stop(context.Background(), v.spec.ID, 20*time.Second); err != nil {
		v.t.Fatal(err)
	}
}

func (v *vm) console() string {
	b, _ := os.ReadFile(v.spec.ConsoleLog)
	return string(b)
}

// ssh runs command as user with key.
func (v *vm) ssh(key, user, command string) (string, error) {
	cmd := exec.Command("nsenter", "--net="+v.netns, "--", "ssh", "-F", "/dev/null", "-i", key,
		"-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
		"-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR", user+"@127.0.0.1", command)
	// Only stdout is the answer: the test's namespace has no DNS (nubo's
	// VPCs have a resolver that knows the instance's name), so sudo warns
	// on stderr, which would interleave with it.
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(stdout.String()), err
}

func (v *vm) mustSSH(key, user, command string) string {
	v.t.Helper()
	out, err := v.ssh(key, user, command)
	if err != nil {
		v.t.Fatalf("ssh %s@ %q: %v: %s", user, command, err, out)
	}
	return out
}

// firstLogin tries to log in until it works; it returns when it did.
func (v *vm) firstLogin(key string) time.Time {
	v.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		if out, err := v.ssh(key, "admin", "true"); err == nil {
			return time.Now()
		} else if time.Now().After(deadline) {
			v.t.Fatalf("no login as admin: %v %s", err, out)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// cachedImage returns the named image of the current recipe from the test
// cache, building it when missing if build is set (skipping otherwise).
func cachedImage(t *testing.T, name string, build bool) (Manifest, string) {
	t.Helper()
	initBin := buildNuboInit(t)
	if name == "debian-12-minimal" {
		_, m := minimalImage(t)
		return m, initBin
	}
	b := &Builder{Dir: imageCacheDir(), InitBinary: initBin}
	m, err := b.Get(name)
	if err == nil && m.Recipe == recipes[name].version {
		return m, initBin
	}
	if !build {
		t.Skipf("no %s of recipe %s in %s: set NUBO_TEST_DEBIAN12=1 to build it", name, recipes[name].version, imageCacheDir())
	}
	requireBuildTools(t)
	if err == nil {
		if err := b.Remove(name); err != nil {
			t.Fatal(err)
		}
	}
	var progress bytes.Buffer
	m, err = b.Build(context.Background(), name, &progress)
	if err != nil {
		t.Fatalf("build %s: %v\n%s", name, err, progress.String())
	}
	return m, initBin
}

// userDataCheck is the cloud-config both images get: a file, a user with
// a key and sudo, and runcmd (which appends: it must run once).
const userDataCheck = `#cloud-config
write_files:
  - path: /etc/nubo-test
    content: written by user data
    permissions: '0640'
users:
  - default
  - name: bob
    shell: /bin/bash
    sudo: ALL=(ALL) NOPASSWD:ALL
    ssh_authorized_keys: [%s]
runcmd:
  - echo "runcmd as $(id -un)" >> /var/tmp/runcmd-ran
`

func metadataFor(id, pub string) map[string]string {
	doc := `{"accountId":"123456789012","architecture":"x86_64","availabilityZone":"us-east-1a","imageId":"ami-0123456789abcdef0",` +
		`"instanceId":"` + id + `","instanceType":"t3.micro","privateIp":"10.0.0.5","region":"us-east-1","version":"2017-09-30"}`
	return map[string]string{
		"dynamic/instance-identity/document":    doc,
		"dynamic/instance-identity/signature":   "c2lnbmF0dXJl",
		"meta-data/instance-id":                 id,
		"meta-data/ami-id":                      "ami-0123456789abcdef0",
		"meta-data/instance-type":               "t3.micro",
		"meta-data/local-hostname":              "ip-10-0-0-5.ec2.internal",
		"meta-data/hostname":                    "ip-10-0-0-5.ec2.internal",
		"meta-data/local-ipv4":                  "10.0.0.5",
		"meta-data/placement/availability-zone": "us-east-1a",
		"meta-data/mac":                         "0e:00:00:00:00:05",
		"meta-data/network/interfaces/macs/0e:00:00:00:00:05/device-number": "0",
		"meta-data/network/interfaces/macs/0e:00:00:00:00:05/local-ipv4s":   "10.0.0.5",
		"meta-data/public-keys/0/openssh-key":                               pub + " kp-test\n",
	}
}

// TestBootLogin boots each image with a key pair and user data: the first
// login as admin with the key pair's key works (its time from Start is
// logged), admin has passwordless sudo, root's key only points to admin,
// the user data ran once (not again after a restart), its user logs in,
// an EC2 Instance Connect key is accepted while the service holds it, and
// the host keys are on the console. debian-12 runs when its image is cached
// or NUBO_TEST_DEBIAN12=1.
func TestBootLogin(t *testing.T) {
	requireBootTools(t)
	for _, name := range []string{"debian-12-minimal", "debian-12"} {
		t.Run(name, func(t *testing.T) {
			m, initBin := cachedImage(t, name, os.Getenv("NUBO_TEST_DEBIAN12") == "1")
			key, pub := sshKey(t, "kp")
			bobKey, bobPub := sshKey(t, "bob")
			eicKey, eicPub := sshKey(t, "eic")
			f := &fakeIMDS{items: metadataFor("i-0"+randHex(8)[:16], pub), userData: fmt.Sprintf(userDataCheck, bobPub)}
			netns := imdsNetns(t, f)
			v, t0 := bootVM(t, m, netns, initBin)
			login := v.firstLogin(key).Sub(t0)
			t.Logf("%s: Start → first SSH login as admin: %s", name, login.Round(time.Millisecond))

			// User data is done when cloud-init says so, or nubo-init has
			// marked the boot finished, as cloud-init does.
			if name == "debian-12" {
				if st := v.mustSSH(key, "admin", "cloud-init status --wait >/dev/null; cloud-init status --long"); !strings.Contains(st, "status: done") {
					t.Errorf("cloud-init status: %s", st)
				}
				// cloud-init knows it is on EC2 (ec2Datasource).
				if id := v.mustSSH(key, "admin", "cloud-id; cloud-init query region"); id != "aws\nus-east-1" {
					t.Errorf("cloud-id, region: %q", id)
				}
			} else {
				v.mustSSH(key, "admin", "for i in $(seq 300); do [ -e /var/lib/cloud/instance/boot-finished ] && exit; sleep 0.1; done; exit 1")
			}
			got := v.mustSSH(key, "admin", "id -un; sudo -n id -u; sudo cat /etc/nubo-test; echo; cat /var/tmp/runcmd-ran; stat -c '%U %a' ~/.ssh ~/.ssh/authorized_keys; sudo grep -c 'Please login as the user .*admin' /root/.ssh/authorized_keys; ls /var/log/cloud-init-output.log")
			want := "admin\n0\nwritten by user data\nruncmd as root\nadmin 700\nadmin 600\n1\n/var/log/cloud-init-output.log"
			if got != want {
				t.Errorf("in the instance:\n%s\nwant:\n%s", got, want)
			}
			if out, err := v.ssh(bobKey, "bob", "sudo -n id -un"); err != nil || out != "root" {
				t.Errorf("bob: %v %q", err, out)
			}
			// EC2 Instance Connect: refused until the service holds the key.
			if out, err := v.ssh(eicKey, "admin", "true"); err == nil {
				t.Errorf("an Instance Connect key was accepted before it was sent: %s", out)
			}
			f.set("meta-data/managed-ssh-keys/active-keys/admin", eicPub+"\n")
			if out, err := v.ssh(eicKey, "admin", "echo eic"); err != nil || out != "eic" {
				t.Errorf("Instance Connect login: %v %q", err, out)
			}
			if con := v.console(); !strings.Contains(con, "-----BEGIN SSH HOST KEY KEYS-----") || !strings.Contains(con, "SSH HOST KEY FINGERPRINTS") {
				t.Errorf("no host keys on the console:\n%s", con)
			}

			// A restart with other user data: nothing runs again.
			f.mu.Lock()
			f.userData = "#!/bin/sh\necho changed >> /var/tmp/runcmd-ran\n"
			f.mu.Unlock()
			v.stop()
			t0 = v.start()
			login = v.firstLogin(key).Sub(t0)
			t.Logf("%s: later boot: Start → first SSH login: %s", name, login.Round(time.Millisecond))
			if name == "debian-12" {
				v.mustSSH(key, "admin", "cloud-init status --wait >/dev/null")
			} else {
				v.mustSSH(key, "admin", "for i in $(seq 300); do [ -e /var/lib/cloud/instance/boot-finished ] && exit; sleep 0.1; done; exit 1")
			}
			if got := v.mustSSH(key, "admin", "cat /var/tmp/runcmd-ran"); got != "runcmd as root" {
				t.Errorf("user data ran again: %q", got)
			}
			if testing.Verbose() {
				f.mu.Lock()
				t.Logf("metadata requests:\n%s", strings.Join(f.requests, "\n"))
				f.mu.Unlock()
				t.Logf("console:\n%s", v.console())
			}
		})
	}
}

// TestBootTimes measures Start → first SSH login as admin over fresh
// instances (first boots, with a key pair and no user data): set
// NUBO_BOOT_TIMES to the number of boots per image.
func TestBootTimes(t *testing.T) {
	n := 0
	fmt.Sscan(os.Getenv("NUBO_BOOT_TIMES"), &n)
	if n <= 0 {
		t.Skip("set NUBO_BOOT_TIMES=N to measure N boots of each image")
	}
	requireBootTools(t)
	for _, name := range []string{"debian-12-minimal", "debian-12"} {
		t.Run(name, func(t *testing.T) {
			m, initBin := cachedImage(t, name, os.Getenv("NUBO_TEST_DEBIAN12") == "1")
			key, pub := sshKey(t, "kp")
			var times []time.Duration
			for i := 0; i < n; i++ {
				f := &fakeIMDS{items: metadataFor("i-0"+randHex(8)[:16], pub)}
				netns := imdsNetns(t, f)
				v, t0 := bootVM(t, m, netns, initBin)
				times = append(times, v.firstLogin(key).Sub(t0))
				v.stop()
			}
			sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
			t.Logf("%s: Start → first SSH login over %d first boots: p50 %s, min %s, max %s", name, n,
				times[len(times)/2].Round(time.Millisecond), times[0].Round(time.Millisecond), times[len(times)-1].Round(time.Millisecond))
		})
	}
}
