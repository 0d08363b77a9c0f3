package agent

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"nubo/internal/ami"
	"nubo/internal/apierr"
	"nubo/internal/instance"
	"nubo/internal/keypair"
	"nubo/internal/network"
	netfake "nubo/internal/network/fake"
	"nubo/internal/resource"
	"nubo/internal/runtime"
	"nubo/internal/runtime/fake"
	"nubo/internal/store"
	"nubo/internal/store/storetest"
	"nubo/internal/topology"
	"nubo/internal/topology/topologytest"
	"nubo/internal/volume"
	"nubo/internal/vpc"
)

const account = "123456789012"

// env is one host: a real embedded etcd, the fake runtime, fake root volumes.
type env struct {
	st     *store.Store
	svc    *instance.Service
	rt     *fake.Driver
	net    *netfake.Driver
	roots  *fakeRoots
	blocks *fakeBlocks
	image  string
	dir    string
	cancel context.CancelFunc
	done   chan struct{}
}

func newEnv(t *testing.T, vcpus int) *env {
	t.Helper()
	ctx := context.Background()
	st := storetest.New(t)
	reg := &ami.Registry{Store: st, Region: "us-east-1"}
	im := ami.Image{Meta: resource.Meta{ID: "ami-0123456789abcdef0"}, Name: "test", Architecture: "x86_64",
		RootDevice: "/dev/xvda", SizeGiB: 8, State: "available", Location: "test", Init: []string{"/sbin/init"}, UIDBase: 100000}
	if err := reg.EnsurePublic(ctx, im); err != nil {
		t.Fatal(err)
	}
	topologytest.Serve(t, st, "us-east-1", "h1", topology.Layout{Zones: []string{"us-east-1a"}, VCPUs: vcpus})
	v := &env{st: st, rt: fake.New(), net: netfake.New(netfake.Config{PublicRange: netip.MustParsePrefix("198.18.0.0/24")}), roots: &fakeRoots{mounted: map[string]bool{}, deleted: map[string]bool{}}, blocks: newFakeBlocks(), image: im.ID, dir: t.TempDir()}
	v.svc = &instance.Service{Store: st, Region: "us-east-1", Zones: []string{"us-east-1a"}, Images: reg, KeyPairs: &keypair.Service{Store: st},
		VPCs:   &vpc.Service{Store: st, Region: "us-east-1", Zones: []vpc.Zone{{Name: "us-east-1a", ID: "use1-az1"}}},
		Public: &vpc.PublicPool{Store: st, Prefix: netip.MustParsePrefix("198.18.0.0/24")}}
	v.startAgent(t)
	return v
}

func (v *env) startAgent(t *testing.T) {
	a := &Agent{Store: v.st, Host: "h1", Runtime: v.rt, Network: v.net, VPCs: v.svc.VPCs, Roots: v.roots, Blocks: v.blocks, Keys: fakeKeys{}, Images: v.svc.Images,
		ImageRoot: func(im ami.Image) string { return "/images/" + im.Location }, Dir: v.dir,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Ready: func(string) bool { return true },
		Resync: 100 * time.Millisecond, StopGrace: time.Second, TerminatedTTL: time.Hour}
	ctx, cancel := context.WithCancel(context.Background())
	v.cancel, v.done = cancel, make(chan struct{})
	go func() { defer close(v.done); _ = a.Run(ctx) }()
	t.Cleanup(v.stopAgent)
}

func (v *env) stopAgent() {
	if v.cancel != nil {
		v.cancel()
		<-v.done
		v.cancel = nil
	}
}

func (v *env) run(t *testing.T, spec instance.RunSpec) []string {
	t.Helper()
	spec.ImageID = v.image
	if spec.InstanceType == "" {
		spec.InstanceType = "t3.micro"
	}
	if spec.MinCount == 0 {
		spec.MinCount, spec.MaxCount = 1, 1
	}
	if spec.ShutdownBehavior == "" {
		spec.ShutdownBehavior = "stop"
	}
	res, err := v.svc.Run(context.Background(), account, spec)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, in := range res.Instances {
		if in.State != instance.Pending {
			t.Fatalf("new instance is %s", in.State)
		}
		ids = append(ids, in.ID)
	}
	return ids
}

// wait polls until the instance is in state.
func (v *env) wait(t *testing.T, id, state string) instance.Instance {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		in, err := v.svc.Get(context.Background(), account, id)
		if errors.Is(err, store.ErrNotFound) || (err == nil && in.State == state) {
			return in
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: state %s, want %s (err %v)", id, in.State, state, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type fakeRoots struct {
	mu               sync.Mutex
	mounted, deleted map[string]bool
}

func (r *fakeRoots) Mount(id, image, target string, base uint32) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.mounted[target] = true
	return os.MkdirAll(target, 0o755)
}

func (r *fakeRoots) Unmount(target string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.mounted, target)
	return nil
}

func (r *fakeRoots) Delete(id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.deleted[id] = true
	return nil
}

var _ RootVolumes = (*fakeRoots)(nil)
var _ = volume.Roots{}

func code(err error) string {
	if e, ok := apierr.As(err); ok {
		return e.Code
	}
	return ""
}

func TestLifecycle(t *testing.T) {
	v := newEnv(t, 64)
	ctx := context.Background()
	id := v.run(t, instance.RunSpec{DeleteOnTermination: true})[0]
	v.wait(t, id, instance.Running)
	spec, ok := v.rt.Spec(id)
	if !ok || spec.VCPUs != 2 || spec.MemoryMiB != 1024 || spec.Hostname == "" || spec.UIDBase != 100000 {
		t.Fatalf("runtime spec %+v", spec)
	}
	if st, _ := v.rt.State(ctx, id); st.Status != runtime.Running {
		t.Fatalf("runtime says %s", st.Status)
	}

	ch, err := v.svc.Stop(ctx, account, []string{id}, false)
	if err != nil || ch[0].Previous != instance.Running || ch[0].State != instance.Stopping {
		t.Fatalf("stop: %v %+v", err, ch)
	}
	in := v.wait(t, id, instance.Stopped)
	if in.StateReason == nil || in.StateReason.Code != "Client.UserInitiatedShutdown" {
		t.Fatalf("reason %+v", in.StateReason)
	}
	if _, err := v.rt.State(ctx, id); !errors.Is(err, runtime.ErrNotFound) {
		t.Fatalf("stopped instance still in the runtime: %v", err)
	}
	if _, err := v.svc.Stop(ctx, account, []string{id}, false); err != nil {
		t.Fatalf("stopping a stopped instance: %v", err)
	}

	if _, err := v.svc.Start(ctx, account, []string{id}); err != nil {
		t.Fatal(err)
	}
	v.wait(t, id, instance.Running)
	starts := v.rt.Calls(fake.OpStart)
	if err := v.svc.Reboot(ctx, account, []string{id}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for v.rt.Calls(fake.OpStart) == starts && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if v.rt.Calls(fake.OpStart) != starts+1 {
		t.Fatalf("reboot did not restart the instance (%d starts)", v.rt.Calls(fake.OpStart))
	}
	v.wait(t, id, instance.Running)

	if _, err := v.svc.Terminate(ctx, account, []string{id}); err != nil {
		t.Fatal(err)
	}
	in = v.wait(t, id, instance.Terminated)
	if in.TerminatedAt.IsZero() || !v.roots.deleted[in.RootVolumeID] {
		t.Fatalf("terminated %+v, volume deleted %v", in, v.roots.deleted)
	}
	_, err = v.svc.Start(ctx, account, []string{id})
	if code(err) != "IncorrectInstanceState" {
		t.Fatalf("starting a terminated instance: %v", err)
	}
}

func TestShutdownFromInside(t *testing.T) {
	v := newEnv(t, 64)
	ctx := context.Background()
	stopper := v.run(t, instance.RunSpec{})[0]
	terminator := v.run(t, instance.RunSpec{ShutdownBehavior: "terminate", DeleteOnTermination: false})[0]
	rebooter := v.run(t, instance.RunSpec{})[0]
	crasher := v.run(t, instance.RunSpec{})[0]
	systemd := v.run(t, instance.RunSpec{})[0]
	for _, id := range []string{stopper, terminator, rebooter, crasher, systemd} {
		v.wait(t, id, instance.Running)
	}
	_ = v.rt.Exit(stopper, exitPoweroff)
	_ = v.rt.Exit(terminator, exitPoweroff)
	_ = v.rt.Exit(rebooter, exitReboot)
	_ = v.rt.Exit(crasher, 137)
	_ = v.rt.Exit(systemd, exitPoweroffSyscall)

	in := v.wait(t, stopper, instance.Stopped)
	if in.StateReason.Code != "Client.InstanceInitiatedShutdown" || in.Desired != instance.Stopped {
		t.Fatalf("poweroff: %+v", in)
	}
	in = v.wait(t, terminator, instance.Terminated)
	if v.roots.deleted[in.RootVolumeID] {
		t.Fatal("root volume deleted despite DeleteOnTermination=false")
	}
	var vol volume.Volume
	if _, err := v.st.Get(ctx, resource.Key(resource.Scope{Account: account, Region: "us-east-1"}, resource.Volume, in.RootVolumeID), &vol); err != nil || vol.State != "available" || vol.Attachment != nil {
		t.Fatalf("kept volume: %+v %v", vol, err)
	}
	if in := v.wait(t, systemd, instance.Stopped); in.StateReason.Code != "Client.InstanceInitiatedShutdown" {
		t.Fatalf("systemd poweroff (130): %+v", in.StateReason)
	}
	in = v.wait(t, crasher, instance.Stopped)
	if in.StateReason.Code != "Server.InternalError" {
		t.Fatalf("crash reason %+v", in.StateReason)
	}
	time.Sleep(300 * time.Millisecond)
	if in, _ := v.svc.Get(ctx, account, rebooter); in.State != instance.Running {
		t.Fatalf("rebooted instance is %s", in.State)
	}
	if st, _ := v.rt.State(ctx, rebooter); st.Status != runtime.Running {
		t.Fatalf("rebooted instance not running in the runtime: %s", st.Status)
	}
}

// TestAgentRestart: a new agent adopts running instances without restarting
// them, and reports one that died meanwhile as stopped.
func TestAgentRestart(t *testing.T) {
	v := newEnv(t, 64)
	ids := v.run(t, instance.RunSpec{MinCount: 2, MaxCount: 2})
	for _, id := range ids {
		v.wait(t, id, instance.Running)
	}
	v.stopAgent()
	starts := v.rt.Calls(fake.OpStart)
	_ = v.rt.Exit(ids[1], 137)
	v.startAgent(t)
	in := v.wait(t, ids[1], instance.Stopped)
	if in.StateReason == nil {
		t.Fatal("no reason for an instance that died while the agent was away")
	}
	time.Sleep(300 * time.Millisecond)
	if v.rt.Calls(fake.OpStart) != starts {
		t.Fatalf("the new agent restarted instances (%d starts, had %d)", v.rt.Calls(fake.OpStart), starts)
	}
	if in, _ := v.svc.Get(context.Background(), account, ids[0]); in.State != instance.Running {
		t.Fatalf("%s is %s", ids[0], in.State)
	}
}

func TestCapacity(t *testing.T) {
	v := newEnv(t, 6) // three t3.micro (2 vCPUs each)
	ctx := context.Background()
	spec := instance.RunSpec{ImageID: v.image, InstanceType: "t3.micro", MinCount: 4, MaxCount: 4, ShutdownBehavior: "stop"}
	if _, err := v.svc.Run(ctx, account, spec); code(err) != "InsufficientInstanceCapacity" {
		t.Fatalf("4 × t3.micro on 6 vCPUs: %v", err)
	}
	if all, _ := v.svc.List(ctx, account); len(all) != 0 {
		t.Fatalf("a refused launch left %d instances", len(all))
	}
	spec.MinCount, spec.MaxCount = 1, 5
	res, err := v.svc.Run(ctx, account, spec)
	if err != nil || len(res.Instances) != 3 {
		t.Fatalf("MinCount 1 MaxCount 5 on 6 vCPUs: %v, %d instances", err, len(res.Instances))
	}
	spec.MinCount, spec.MaxCount = 1, 1
	if _, err := v.svc.Run(ctx, account, spec); code(err) != "InsufficientInstanceCapacity" {
		t.Fatalf("full host: %v", err)
	}
	id := res.Instances[0].ID
	v.wait(t, id, instance.Running)
	if _, err := v.svc.Stop(ctx, account, []string{id}, false); err != nil {
		t.Fatal(err)
	}
	v.wait(t, id, instance.Stopped)
	other, err := v.svc.Run(ctx, account, spec) // the stopped one's share is free
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.svc.Start(ctx, account, []string{id}); code(err) != "InsufficientInstanceCapacity" {
		t.Fatalf("starting on a full host: %v", err)
	}
	if _, err := v.svc.Terminate(ctx, account, []string{other.Instances[0].ID}); err != nil {
		t.Fatal(err)
	}
	if _, err := v.svc.Start(ctx, account, []string{id}); err != nil {
		t.Fatalf("start after capacity freed: %v", err)
	}
}

// TestConcurrentLaunchesNeverOvercommit races launches for the last slots.
func TestConcurrentLaunchesNeverOvercommit(t *testing.T) {
	v := newEnv(t, 10) // five t3.micro
	var wg sync.WaitGroup
	var mu sync.Mutex
	launched := 0
	for i := 0; i < 12; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := v.svc.Run(context.Background(), account, instance.RunSpec{ImageID: v.image, InstanceType: "t3.micro", MinCount: 1, MaxCount: 1, ShutdownBehavior: "stop"})
			if err == nil {
				mu.Lock()
				launched += len(res.Instances)
				mu.Unlock()
			} else if c := code(err); c != "InsufficientInstanceCapacity" && c != "RequestLimitExceeded" {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if launched > 5 {
		t.Fatalf("%d t3.micro launched on 10 vCPUs", launched)
	}
}

func TestIdempotentRun(t *testing.T) {
	v := newEnv(t, 64)
	ctx := context.Background()
	spec := instance.RunSpec{ImageID: v.image, InstanceType: "t3.micro", MinCount: 2, MaxCount: 2, ShutdownBehavior: "stop", ClientToken: "abc"}
	a, err := v.svc.Run(ctx, account, spec)
	if err != nil {
		t.Fatal(err)
	}
	b, err := v.svc.Run(ctx, account, spec)
	if err != nil || b.ID != a.ID || len(b.Instances) != 2 || b.Instances[1].ID != a.Instances[1].ID {
		t.Fatalf("retry: %v %+v", err, b)
	}
	spec.MaxCount = 3
	if _, err := v.svc.Run(ctx, account, spec); code(err) != "IdempotentParameterMismatch" {
		t.Fatalf("changed parameters: %v", err)
	}
	if all, _ := v.svc.List(ctx, account); len(all) != 2 {
		t.Fatalf("%d instances after retries", len(all))
	}
}

func TestTerminationProtection(t *testing.T) {
	v := newEnv(t, 64)
	ctx := context.Background()
	id := v.run(t, instance.RunSpec{DisableAPITermination: true})[0]
	if _, err := v.svc.Terminate(ctx, account, []string{id}); code(err) != "OperationNotPermitted" {
		t.Fatalf("protected terminate: %v", err)
	}
	if err := v.svc.Modify(ctx, account, id, func(in *instance.Instance) error { in.DisableAPITermination = false; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := v.svc.Terminate(ctx, account, []string{id}); err != nil {
		t.Fatal(err)
	}
	v.wait(t, id, instance.Terminated)
}

// TestUnsupportedPlatform: an image nubo cannot run is refused at launch,
// before anything is recorded.
func TestUnsupportedPlatform(t *testing.T) {
	v := newEnv(t, 64)
	ctx := context.Background()
	win := ami.Image{Meta: resource.Meta{ID: "ami-0000000000000000a"}, Name: "windows-2022", Architecture: "x86_64",
		Platform: "windows", RootDevice: "/dev/sda1", SizeGiB: 30, State: "available"}
	if err := v.svc.Images.Register(ctx, account, win); err != nil {
		t.Fatal(err)
	}
	_, err := v.svc.Run(ctx, account, instance.RunSpec{ImageID: win.ID, InstanceType: "t3.micro", MinCount: 1, MaxCount: 1, ShutdownBehavior: "stop"})
	if code(err) != "UnsupportedOperation" {
		t.Fatalf("windows image: %v", err)
	}
	if all, _ := v.svc.List(ctx, account); len(all) != 0 {
		t.Fatalf("refused launch left %d instances", len(all))
	}
}

// TestAgentReleasesLeakedCapacity: a stop recorded without its capacity
// release (the API crashed between the two writes) is repaired by the agent.
func TestAgentReleasesLeakedCapacity(t *testing.T) {
	v := newEnv(t, 64)
	ctx := context.Background()
	id := v.run(t, instance.RunSpec{})[0]
	v.wait(t, id, instance.Running)
	key := instance.Key(account, "us-east-1", id)
	if _, err := store.Update(ctx, v.st, key, func(in *instance.Instance) error {
		in.Desired, in.State = instance.Stopped, instance.Stopping
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	host := v.wait(t, id, instance.Stopped).Host
	deadline := time.Now().Add(5 * time.Second)
	for {
		var a topology.Allocation
		if _, err := v.st.GetRev(ctx, topology.AllocationKey(host), &a); err != nil {
			t.Fatal(err)
		}
		if _, held := a.Instances[id]; !held {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("stopped instance %s still holds capacity: %+v", id, a)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestAddresses: private addresses from the subnet (AWS's reserved ones
// skipped), public ones from the pool, released at stop (public) and at
// termination (both); a taken private address is refused.
func TestAddresses(t *testing.T) {
	v := newEnv(t, 64)
	ctx := context.Background()
	ids := v.run(t, instance.RunSpec{MinCount: 2, MaxCount: 2, DeleteOnTermination: true})
	a, _ := v.svc.Get(ctx, account, ids[0])
	b, _ := v.svc.Get(ctx, account, ids[1])
	if a.PrivateIP != "172.31.0.4" || b.PrivateIP != "172.31.0.5" || a.Hostname != "ip-172-31-0-4" {
		t.Fatalf("private addresses %s %s (hostname %s)", a.PrivateIP, b.PrivateIP, a.Hostname)
	}
	if a.PublicIP == "" || a.PublicIP == b.PublicIP || !netip.MustParsePrefix("198.18.0.0/24").Contains(netip.MustParseAddr(a.PublicIP)) {
		t.Fatalf("public addresses %q %q", a.PublicIP, b.PublicIP)
	}
	_, err := v.svc.Run(ctx, account, instance.RunSpec{ImageID: v.image, InstanceType: "t3.micro", MinCount: 1, MaxCount: 1, ShutdownBehavior: "stop", PrivateIP: "172.31.0.5"})
	if code(err) != "InvalidIPAddress.InUse" {
		t.Fatalf("taken address: %v", err)
	}
	_, err = v.svc.Run(ctx, account, instance.RunSpec{ImageID: v.image, InstanceType: "t3.micro", MinCount: 1, MaxCount: 1, ShutdownBehavior: "stop", PrivateIP: "172.31.0.3"})
	if code(err) != "InvalidParameterValue" {
		t.Fatalf("reserved address: %v", err)
	}

	v.wait(t, a.ID, instance.Running)
	if _, err := v.svc.Stop(ctx, account, []string{a.ID}, false); err != nil {
		t.Fatal(err)
	}
	stopped := v.wait(t, a.ID, instance.Stopped)
	if stopped.PublicIP != "" || stopped.PrivateIP != a.PrivateIP {
		t.Fatalf("stopped: public %q private %q", stopped.PublicIP, stopped.PrivateIP)
	}
	if rev, _ := v.st.GetRev(ctx, vpc.PublicKey(netip.MustParseAddr(a.PublicIP)), new(vpc.Address)); rev != 0 {
		t.Fatal("public address still claimed after stop")
	}
	if _, err := v.svc.Start(ctx, account, []string{a.ID}); err != nil {
		t.Fatal(err)
	}
	started := v.wait(t, a.ID, instance.Running)
	if started.PublicIP == "" || started.PublicIP == a.PublicIP {
		t.Fatalf("public address after start %q (before the stop: %s): want a new one", started.PublicIP, a.PublicIP)
	}
	if _, err := v.svc.Terminate(ctx, account, []string{a.ID}); err != nil {
		t.Fatal(err)
	}
	v.wait(t, a.ID, instance.Terminated)
	// Its private address is free again.
	res, err := v.svc.Run(ctx, account, instance.RunSpec{ImageID: v.image, InstanceType: "t3.micro", MinCount: 1, MaxCount: 1, ShutdownBehavior: "stop", PrivateIP: "172.31.0.4"})
	if err != nil || res.Instances[0].PrivateIP != "172.31.0.4" {
		t.Fatalf("reusing a terminated instance's address: %v", err)
	}
}

func TestElasticIPs(t *testing.T) {
	v := newEnv(t, 64)
	ctx := context.Background()
	ids := v.run(t, instance.RunSpec{MinCount: 2, MaxCount: 2})
	a, b := ids[0], ids[1]
	v.wait(t, a, instance.Running)
	v.wait(t, b, instance.Running)
	before, _ := v.svc.Get(ctx, account, a)

	e, err := v.svc.AllocateAddress(ctx, account, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.svc.AssociateAddress(ctx, account, e.ID, "", a, "", "", false); err != nil {
		t.Fatal(err)
	}
	in, _ := v.svc.Get(ctx, account, a)
	if in.PublicIP != e.PublicIP || in.ElasticIP != e.ID {
		t.Fatalf("after associate: %+v", in)
	}
	if rev, _ := v.st.GetRev(ctx, vpc.PublicKey(netip.MustParseAddr(before.PublicIP)), new(vpc.Address)); rev != 0 {
		t.Fatal("the replaced auto-assigned address is still claimed")
	}
	if _, err := v.svc.AssociateAddress(ctx, account, e.ID, "", b, "", "", false); code(err) != "Resource.AlreadyAssociated" {
		t.Fatalf("move without AllowReassociation: %v", err)
	}
	if _, err := v.svc.AssociateAddress(ctx, account, e.ID, "", b, "", "", true); err != nil {
		t.Fatal(err)
	}
	if in, _ := v.svc.Get(ctx, account, a); in.PublicIP != "" || in.ElasticIP != "" {
		t.Fatalf("the instance it left: %+v", in)
	}
	if err := v.svc.ReleaseAddress(ctx, account, e.ID, ""); code(err) != "InvalidIPAddress.InUse" {
		t.Fatalf("release while associated: %v", err)
	}
	// An Elastic IP stays across stop and start.
	if _, err := v.svc.Stop(ctx, account, []string{b}, false); err != nil {
		t.Fatal(err)
	}
	if in := v.wait(t, b, instance.Stopped); in.PublicIP != e.PublicIP {
		t.Fatalf("stopped instance lost its Elastic IP: %+v", in)
	}
	if _, err := v.svc.Start(ctx, account, []string{b}); err != nil {
		t.Fatal(err)
	}
	if in := v.wait(t, b, instance.Running); in.PublicIP != e.PublicIP {
		t.Fatalf("started instance: %+v", in)
	}
	// Termination disassociates it; then it can be released.
	if _, err := v.svc.Terminate(ctx, account, []string{b}); err != nil {
		t.Fatal(err)
	}
	v.wait(t, b, instance.Terminated)
	got, err := v.svc.Address(ctx, account, e.ID, "")
	if err != nil || got.InstanceID != "" {
		t.Fatalf("after termination: %+v %v", got, err)
	}
	if err := v.svc.ReleaseAddress(ctx, account, e.ID, ""); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < instance.MaxElasticIPs; i++ {
		if _, err := v.svc.AllocateAddress(ctx, account, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := v.svc.AllocateAddress(ctx, account, nil); code(err) != "AddressLimitExceeded" {
		t.Fatalf("sixth address: %v", err)
	}
}

// TestLargeLaunch: a launch of many instances is one transaction; etcd must
// take it (nubo raises its per-transaction limits).
func TestLargeLaunch(t *testing.T) {
	v := newEnv(t, 1000)
	res, err := v.svc.Run(context.Background(), account, instance.RunSpec{ImageID: v.image, InstanceType: "t3.nano",
		MinCount: 200, MaxCount: 200, ShutdownBehavior: "stop"})
	if err != nil || len(res.Instances) != 200 {
		t.Fatalf("200 at once: %v", err)
	}
	_, err = v.svc.Run(context.Background(), account, instance.RunSpec{ImageID: v.image, InstanceType: "t3.nano",
		MinCount: instance.MaxLaunch + 1, MaxCount: instance.MaxLaunch + 1, ShutdownBehavior: "stop"})
	if code(err) != "InstanceLimitExceeded" {
		t.Fatalf("over the launch limit: %v", err)
	}
}

// TestNetworkWiring: the agent gives a running instance its interface, its
// public address and DNS names, moves an Elastic IP's mapping with it, and
// takes it all away at stop.
func TestNetworkWiring(t *testing.T) {
	v := newEnv(t, 64)
	ctx := context.Background()
	ids := v.run(t, instance.RunSpec{MinCount: 2, MaxCount: 2})
	a := v.wait(t, ids[0], instance.Running)
	b := v.wait(t, ids[1], instance.Running)
	observe := func() (map[string]string, map[string]string, *network.DNS) {
		st, err := v.net.Observe(ctx)
		if err != nil {
			t.Fatal(err)
		}
		attached, public := map[string]string{}, map[string]string{}
		var dns *network.DNS
		for _, in := range st.Instances {
			for _, ifc := range in.Interfaces {
				attached[in.InstanceID] = ifc.PrivateIP.String()
			}
		}
		for _, vs := range st.VPCs {
			for _, p := range vs.PublicIPs {
				public[p.PublicIP.String()] = p.PrivateIP.String()
			}
			if vs.VPC.ID == a.VPCID {
				dns = vs.DNS
			}
		}
		return attached, public, dns
	}
	attached, public, dns := observe()
	if attached[a.ID] != a.PrivateIP || public[a.PublicIP] != a.PrivateIP || public[b.PublicIP] != b.PrivateIP {
		t.Fatalf("attached %v public %v", attached, public)
	}
	if spec, _ := v.rt.Spec(a.ID); spec.NetNS == "" {
		t.Fatal("the runtime was not given the instance's network namespace")
	}
	if dns == nil || len(dns.Records) < 2 {
		t.Fatalf("dns %+v", dns)
	}

	e, err := v.svc.AllocateAddress(ctx, account, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.svc.AssociateAddress(ctx, account, e.ID, "", a.ID, "", "", false); err != nil {
		t.Fatal(err)
	}
	if _, err := v.svc.AssociateAddress(ctx, account, e.ID, "", b.ID, "", "", true); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, public, _ = observe()
		if public[e.PublicIP] == b.PrivateIP && public[a.PublicIP] == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Elastic IP %s mapping %v, want it on %s", e.PublicIP, public, b.PrivateIP)
		}
		time.Sleep(20 * time.Millisecond)
	}

	if _, err := v.svc.Stop(ctx, account, []string{b.ID}, false); err != nil {
		t.Fatal(err)
	}
	v.wait(t, b.ID, instance.Stopped)
	attached, public, _ = observe()
	if _, ok := attached[b.ID]; ok || public[e.PublicIP] != "" {
		t.Fatalf("stopped instance still on the network: %v %v", attached, public)
	}
}

// TestRouteChangesReachRunningInstances: a subnet made public (an internet
// gateway and a default route) after its instance started is public in the
// data plane soon after, without a reboot.
func TestRouteChangesReachRunningInstances(t *testing.T) {
	v := newEnv(t, 64)
	ctx := context.Background()
	vpcs := v.svc.VPCs
	net, err := vpcs.CreateVPC(ctx, account, "10.0.0.0/16", nil, false)
	if err != nil {
		t.Fatal(err)
	}
	sn, err := vpcs.CreateSubnet(ctx, account, net.ID, "10.0.1.0/24", "", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	id := v.run(t, instance.RunSpec{SubnetID: sn.ID})[0]
	v.wait(t, id, instance.Running)
	public := func() bool {
		st, err := v.net.Observe(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, vs := range st.VPCs {
			for _, s := range vs.Subnets {
				if s.ID == sn.ID {
					return s.Public
				}
			}
		}
		t.Fatalf("subnet %s not in the data plane", sn.ID)
		return false
	}
	if public() {
		t.Fatal("a subnet without a route to an internet gateway is public")
	}
	igw, err := vpcs.CreateInternetGateway(ctx, account, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := vpcs.AttachInternetGateway(ctx, account, igw.ID, net.ID); err != nil {
		t.Fatal(err)
	}
	if err := vpcs.CreateRoute(ctx, account, net.MainRouteTableID, "0.0.0.0/0", igw.ID, false); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !public() {
		if time.Now().After(deadline) {
			t.Fatal("the subnet did not become public in the data plane")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
