package imds

import (
	"context"
	"errors"
	"net/netip"
	"testing"

	"nubo/internal/instance"
	"nubo/internal/resource"
	"nubo/internal/store"
	"nubo/internal/store/storetest"
	"nubo/internal/vpc"
)

// launch records an instance and its address claim, as RunInstances does.
func launch(t *testing.T, st *store.Store, acct, vpcID, id, ip string) {
	t.Helper()
	in := instance.Instance{Meta: resource.Meta{ID: id}, Account: acct, Region: region, VPCID: vpcID, PrivateIP: ip, State: instance.Running}
	a := netip.MustParseAddr(ip)
	err := st.Apply(context.Background(),
		store.Op{Key: instance.Key(acct, region, id), Value: in, ModRev: -1},
		store.Op{Key: vpc.PrivateKey(acct, region, vpcID, a), Value: vpc.Address{Account: acct, Holder: id}, ModRev: -1})
	if err != nil {
		t.Fatal(err)
	}
}

func TestIndexFindsCallersAcrossAccounts(t *testing.T) {
	st := storetest.New(t)
	ctx := context.Background()
	// Two accounts. VPCs with the same addresses.
	launch(t, st, "111111111111", "vpc-0000000000000000a", "i-0000000000000000a", "172.31.0.5")
	launch(t, st, "222222222222", "vpc-0000000000000000b", "i-0000000000000000b", "172.31.0.5")
	x := &Index{Store: st, Region: region}
	for vpcID, want := range map[string]string{"vpc-0000000000000000a": "i-0000000000000000a", "vpc-0000000000000000b": "i-0000000000000000b"} {
		in, err := x.Lookup(ctx, vpcID, netip.MustParseAddr("172.31.0.5"))
		if err != nil || in.ID != want {
			t.Fatalf("%s: %s, %v; want %s", vpcID, in.ID, err, want)
		}
	}
	for _, c := range []struct{ vpc, ip string }{
		{"vpc-0000000000000000a", "172.31.0.6"}, // no one has it
		{"vpc-0000000000000000c", "172.31.0.5"}, // no such VPC
	} {
		if _, err := x.Lookup(ctx, c.vpc, netip.MustParseAddr(c.ip)); !errors.Is(err, ErrNoInstance) {
			t.Fatalf("%v: %v", c, err)
		}
	}
	// A VPC first seen after the owners were learned is found by a new scan.
	launch(t, st, "333333333333", "vpc-0000000000000000c", "i-0000000000000000c", "10.0.0.9")
	if in, err := x.Lookup(ctx, "vpc-0000000000000000c", netip.MustParseAddr("10.0.0.9")); err != nil || in.ID != "i-0000000000000000c" {
		t.Fatalf("new VPC: %s, %v", in.ID, err)
	}

	// A terminated instance is no caller; its address, reused, is the new
	// instance's (the cache follows).
	key := instance.Key("111111111111", region, "i-0000000000000000a")
	if _, err := store.Update(ctx, st, key, func(in *instance.Instance) error { in.State = instance.Terminated; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := x.Lookup(ctx, "vpc-0000000000000000a", netip.MustParseAddr("172.31.0.5")); !errors.Is(err, ErrNoInstance) {
		t.Fatalf("terminated instance still found: %v", err)
	}
	launch(t, st, "111111111111", "vpc-0000000000000000a", "i-0000000000000000d", "172.31.0.5")
	if in, err := x.Lookup(ctx, "vpc-0000000000000000a", netip.MustParseAddr("172.31.0.5")); err != nil || in.ID != "i-0000000000000000d" {
		t.Fatalf("reused address: %s, %v", in.ID, err)
	}
}
