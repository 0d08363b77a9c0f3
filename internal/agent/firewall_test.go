package agent

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"

	"nubo/internal/instance"
	"nubo/internal/network"
	"nubo/internal/resource"
	"nubo/internal/secgroup"
)

// firewallOf waits until the fake data plane's firewall of vpcID satisfies
// ok.
func (v *env) firewallOf(t *testing.T, vpcID string, ok func(network.Firewall) bool) network.Firewall {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		fw, set := v.net.Firewall(vpcID)
		if set && ok(fw) {
			return fw
		}
		if time.Now().After(deadline) {
			t.Fatalf("firewall of %s: %+v", vpcID, fw)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func portOf(fw network.Firewall, id string) (network.Port, bool) {
	i := slices.IndexFunc(fw.Ports, func(p network.Port) bool { return p.InstanceID == id })
	if i < 0 {
		return network.Port{}, false
	}
	return fw.Ports[i], true
}

func groupOf(fw network.Firewall, id string) network.SecurityGroup {
	i := slices.IndexFunc(fw.Groups, func(g network.SecurityGroup) bool { return g.ID == id })
	if i < 0 {
		return network.SecurityGroup{}
	}
	return fw.Groups[i]
}

// The agent gives the data plane each instance's groups, expands rules
// naming a group into its members' addresses, follows a rule change and a
// member leaving, and drops a stopped instance's port.
func TestFirewallFollowsTheRecords(t *testing.T) {
	v := newEnv(t, 64)
	ctx := context.Background()
	sc := resource.Scope{Account: account, Region: "us-east-1"}
	defVPC, err := v.svc.VPCs.DefaultVPC(ctx, account)
	if err != nil {
		t.Fatal(err)
	}
	sgs := &secgroup.Service{Store: v.st, DefaultVPC: func(context.Context, string) (string, error) { return defVPC.ID, nil }}
	web, err := sgs.Create(ctx, sc, "web", "web", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	def, _, err := v.svc.VPCs.DefaultSecurityGroup(ctx, account, defVPC.ID)
	if err != nil {
		t.Fatal(err)
	}
	p80 := 80
	if _, err := sgs.Authorize(ctx, sc, secgroup.GroupRef{ID: web.ID}, false, []secgroup.Permission{
		{Protocol: "tcp", FromPort: &p80, ToPort: &p80, Groups: []secgroup.GroupPeer{{GroupID: def.ID}}},
	}, nil); err != nil {
		t.Fatal(err)
	}
	a := v.run(t, instance.RunSpec{SecurityGroupIDs: []string{web.ID}})[0]
	b := v.run(t, instance.RunSpec{})[0] // the default group
	v.wait(t, a, instance.Running)
	ib := v.wait(t, b, instance.Running)
	bIP := netip.MustParseAddr(ib.PrivateIP)

	fw := v.firewallOf(t, defVPC.ID, func(fw network.Firewall) bool {
		pa, okA := portOf(fw, a)
		pb, okB := portOf(fw, b)
		return okA && okB && slices.Equal(pa.Groups, []string{web.ID}) && slices.Equal(pb.Groups, []string{def.ID}) &&
			len(groupOf(fw, web.ID).Ingress) == 1
	})
	if got := groupOf(fw, web.ID).Ingress[0]; got.Protocol != 6 || got.FromPort != 80 || got.Peer != netip.PrefixFrom(bIP, 32) {
		t.Errorf("web's rule from the default group: %+v, want tcp 80 from %s/32", got, bIP)
	}
	if eg := groupOf(fw, web.ID).Egress; len(eg) != 1 || eg[0].Protocol != -1 || eg[0].Peer.Bits() != 0 {
		t.Errorf("web's egress: %+v, want everything", eg)
	}

	// b leaves the default group (joins web): the rule has no members.
	if err := v.svc.SetSecurityGroups(ctx, account, b, []string{web.ID}); err != nil {
		t.Fatal(err)
	}
	v.firewallOf(t, defVPC.ID, func(fw network.Firewall) bool {
		pb, _ := portOf(fw, b)
		return slices.Equal(pb.Groups, []string{web.ID}) && len(groupOf(fw, web.ID).Ingress) == 0
	})

	// A stopped instance has no port.
	if _, err := v.svc.Stop(ctx, account, []string{a}, false); err != nil {
		t.Fatal(err)
	}
	v.wait(t, a, instance.Stopped)
	v.firewallOf(t, defVPC.ID, func(fw network.Firewall) bool { _, ok := portOf(fw, a); return !ok })
}

// An instance terminated before it ever booted here (so its VPC has no
// router on this host) still ends terminated: there is no DNS or firewall
// to update, which is not an error.
func TestTerminatedBeforeBoot(t *testing.T) {
	v := newEnv(t, 64)
	v.stopAgent()
	id := v.run(t, instance.RunSpec{})[0]
	if _, err := v.svc.Terminate(context.Background(), account, []string{id}); err != nil {
		t.Fatal(err)
	}
	v.startAgent(t)
	v.wait(t, id, instance.Terminated)
	if _, ok := v.net.Firewall(resourceVPC(t, v, id)); ok {
		t.Error("a firewall was set for a VPC no instance booted in")
	}
}

func resourceVPC(t *testing.T, v *env, id string) string {
	in, err := v.svc.Get(context.Background(), account, id)
	if err != nil {
		t.Fatal(err)
	}
	return in.VPCID
}
