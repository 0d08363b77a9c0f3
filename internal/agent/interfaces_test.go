package agent

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"nubo/internal/eni"
	"nubo/internal/instance"
	"nubo/internal/network"
	"nubo/internal/resource"
	"nubo/internal/store"
	"nubo/internal/vpc"
)

// devices returns, per instance, its interfaces in the data plane by device.
func (v *env) devices(t *testing.T) map[string]map[int]network.Interface {
	t.Helper()
	st, err := v.net.Observe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[int]network.Interface{}
	for _, in := range st.Instances {
		out[in.InstanceID] = map[int]network.Interface{}
		for _, ifc := range in.Interfaces {
			out[in.InstanceID][ifc.Device] = ifc
		}
	}
	return out
}

func (v *env) until(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
	}
}

// TestInterfaceLifecycle: an interface attached to a running instance
// becomes its eth1 with its addresses (attaching → attached), a secondary
// address added later reaches the card, a detach takes it out (→
// available), one attached to a stopped instance is there at its next
// boot, and termination deletes the primary interface and frees the
// others.
func TestInterfaceLifecycle(t *testing.T) {
	v := newEnv(t, 64)
	ctx := context.Background()
	sc := resource.Scope{Account: account, Region: "us-east-1"}
	svc := &eni.Service{Store: v.st, VPCs: v.svc.VPCs}
	ids := v.run(t, instance.RunSpec{MinCount: 2, MaxCount: 2, InstanceType: "t3.large"}) // 3 interfaces, 12 addresses each
	a := v.wait(t, ids[0], instance.Running)
	b := v.wait(t, ids[1], instance.Running)
	if a.NetworkInterfaceID == "" {
		t.Fatal("no primary interface record")
	}

	n, err := svc.Create(ctx, sc, eni.CreateSpec{SubnetID: a.SubnetID, SecondaryCount: 1})
	if err != nil {
		t.Fatal(err)
	}
	att, err := svc.Attach(ctx, sc, n.ID, a.ID, 1)
	if err != nil {
		t.Fatal(err)
	}
	v.until(t, "eth1 in A, attached", func() bool {
		got, _ := svc.Get(ctx, sc, n.ID)
		ifc, ok := v.devices(t)[a.ID][1]
		return ok && ifc.PrivateIP.String() == n.PrimaryIP() && len(ifc.SecondaryIPs) == 1 && ifc.MAC.String() == n.MAC &&
			got.Attachment != nil && got.Attachment.Status == eni.Attached
	})
	v.until(t, "the resolver names eth1's addresses", func() bool {
		st, err := v.net.Observe(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, vs := range st.VPCs {
			if vs.DNS == nil {
				continue
			}
			for _, r := range vs.DNS.Records {
				if r.IP.String() == n.SecondaryIPs()[0] {
					return true
				}
			}
		}
		return false
	})
	added, err := svc.Assign(ctx, sc, n.ID, eni.AssignSpec{Count: 1})
	if err != nil {
		t.Fatal(err)
	}
	v.until(t, "the new secondary address on eth1", func() bool {
		ifc := v.devices(t)[a.ID][1]
		for _, ip := range ifc.SecondaryIPs {
			if ip.String() == added[0] {
				return true
			}
		}
		return false
	})

	if err := svc.Detach(ctx, sc, att); err != nil {
		t.Fatal(err)
	}
	v.until(t, "eth1 gone from A, available", func() bool {
		got, _ := svc.Get(ctx, sc, n.ID)
		_, ok := v.devices(t)[a.ID][1]
		return !ok && got.Status == eni.Available && got.Attachment == nil
	})
	if _, ok := v.devices(t)[a.ID][0]; !ok {
		t.Fatal("eth0 went with eth1")
	}

	// To a stopped instance: attached at once, on the card at the next boot.
	if _, err := v.svc.Stop(ctx, account, []string{b.ID}, false); err != nil {
		t.Fatal(err)
	}
	v.wait(t, b.ID, instance.Stopped)
	if _, err := svc.Attach(ctx, sc, n.ID, b.ID, 2); err != nil {
		t.Fatal(err)
	}
	v.until(t, "attached to the stopped instance", func() bool {
		got, _ := svc.Get(ctx, sc, n.ID)
		return got.Attachment != nil && got.Attachment.Status == eni.Attached
	})
	if _, err := v.svc.Start(ctx, account, []string{b.ID}); err != nil {
		t.Fatal(err)
	}
	v.wait(t, b.ID, instance.Running)
	if _, ok := v.devices(t)[b.ID][2]; !ok {
		t.Fatalf("eth2 not in B after its start: %v", v.devices(t)[b.ID])
	}

	// Termination: B's primary interface is deleted, the attached one
	// (DeleteOnTermination false) is available again, addresses freed.
	if _, err := v.svc.Terminate(ctx, account, []string{b.ID}); err != nil {
		t.Fatal(err)
	}
	v.wait(t, b.ID, instance.Terminated)
	if _, err := svc.Get(ctx, sc, b.NetworkInterfaceID); code(err) != "InvalidNetworkInterfaceID.NotFound" {
		t.Fatalf("B's primary interface: %v", err)
	}
	v.until(t, "the attached interface available", func() bool {
		got, _ := svc.Get(ctx, sc, n.ID)
		return got.Status == eni.Available
	})
	sn, err := v.svc.VPCs.GetSubnet(ctx, account, b.SubnetID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Create(ctx, sc, eni.CreateSpec{SubnetID: sn.ID, PrivateIP: b.PrivateIP}); err != nil {
		t.Fatalf("B's address was not freed: %v", err)
	}
}

// TestAdoptedInterfaceKeepsItsAddress: the primary interface adopted for
// an instance older than interface records, kept at termination
// (DeleteOnTermination false), keeps its address: the claim the instance
// held becomes the interface's.
func TestAdoptedInterfaceKeepsItsAddress(t *testing.T) {
	v := newEnv(t, 64)
	ctx := context.Background()
	sc := resource.Scope{Account: account, Region: "us-east-1"}
	svc := &eni.Service{Store: v.st, VPCs: v.svc.VPCs}
	in := v.wait(t, v.run(t, instance.RunSpec{})[0], instance.Running)
	// Made old: the instance holds its address and has no interface record.
	claim := vpc.PrivateKey(account, "us-east-1", in.VPCID, netip.MustParseAddr(in.PrivateIP))
	if _, err := store.Update(ctx, v.st, claim, func(c *vpc.Address) error { c.Holder = in.ID; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := v.st.Delete(ctx, eni.Key(sc, in.NetworkInterfaceID)); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Update(ctx, v.st, instance.Key(account, "us-east-1", in.ID), func(x *instance.Instance) error { x.NetworkInterfaceID = ""; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := v.svc.AdoptInterfaces(ctx); err != nil {
		t.Fatal(err)
	}
	in, err := v.svc.Get(ctx, account, in.ID)
	if err != nil || in.NetworkInterfaceID == "" {
		t.Fatalf("not adopted: %+v %v", in, err)
	}
	n, err := svc.Get(ctx, sc, in.NetworkInterfaceID)
	if err != nil {
		t.Fatal(err)
	}
	f := false
	if err := svc.Modify(ctx, sc, n.ID, eni.ModifySpec{AttachmentID: n.Attachment.ID, DeleteOnTermination: &f}); err != nil {
		t.Fatal(err)
	}
	if _, err := v.svc.Terminate(ctx, account, []string{in.ID}); err != nil {
		t.Fatal(err)
	}
	v.wait(t, in.ID, instance.Terminated)
	v.until(t, "the interface available, holding its address", func() bool {
		got, _ := svc.Get(ctx, sc, n.ID)
		var c vpc.Address
		_, err := v.st.Get(ctx, claim, &c)
		return got.Status == eni.Available && err == nil && c.Holder == n.ID
	})
}
