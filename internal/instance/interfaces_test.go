package instance

import (
	"context"
	"testing"

	"nubo/internal/eni"
	"nubo/internal/resource"
	"nubo/internal/store"
)

// TestAdoptInterfaces: an instance launched before interfaces were records
// gets its primary interface at start, once, holding its address.
func TestAdoptInterfaces(t *testing.T) {
	s, image := newService(t)
	ctx := context.Background()
	res, err := s.Run(ctx, account, spec(image, nil))
	if err != nil {
		t.Fatal(err)
	}
	in := res.Instances[0]
	sc := resource.Scope{Account: account, Region: s.Region}
	// Made old: no interface record, no NetworkInterfaceID.
	if err := s.Store.Delete(ctx, eni.Key(sc, in.NetworkInterfaceID)); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Update(ctx, s.Store, Key(account, s.Region, in.ID), func(x *Instance) error { x.NetworkInterfaceID = ""; return nil }); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := s.AdoptInterfaces(ctx); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Get(ctx, account, in.ID)
	if err != nil {
		t.Fatal(err)
	}
	all, err := s.enis().List(ctx, sc)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 1 || all[0].ID != got.NetworkInterfaceID {
		t.Fatalf("interfaces %+v, instance's %q", all, got.NetworkInterfaceID)
	}
	n := all[0]
	if n.PrimaryIP() != in.PrivateIP || n.MAC != in.MAC || n.Attachment == nil || n.Attachment.DeviceIndex != 0 ||
		n.Attachment.InstanceID != in.ID || n.Attachment.Status != eni.Attached || len(n.Groups) != 1 || n.Groups[0] != in.SecurityGroups[0] {
		t.Fatalf("adopted interface %+v of %+v", n, got)
	}
}
