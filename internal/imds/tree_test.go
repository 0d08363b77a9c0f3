package imds

import (
	"context"
	"testing"
	"time"

	"nubo/internal/resource"
	"nubo/internal/store"
	"nubo/internal/volume"
)

func TestBlockDeviceMappingListsAttachedVolumes(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	sc := resource.Scope{Account: account, Region: region}
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	put := func(id, instanceID, device, state string, at time.Time) {
		v := volume.Volume{Meta: resource.Meta{ID: id}, Backing: volume.BackingBlock, State: volume.InUse,
			Attachment: &volume.Attachment{InstanceID: instanceID, Device: device, State: state, AttachTime: at}}
		if err := e.st.Apply(ctx, store.Op{Key: resource.Key(sc, resource.Volume, id), Value: v, ModRev: -1}); err != nil {
			t.Fatal(err)
		}
	}
	// Attach order, not ID order, numbers them; only attached ones show.
	put("vol-0000000000000000b", e.in.ID, "/dev/sdg", volume.Attached, t0.Add(time.Minute))
	put("vol-0000000000000000a", e.in.ID, "/dev/sdf", volume.Attached, t0)
	put("vol-0000000000000000c", e.in.ID, "/dev/sdh", volume.Attaching, t0.Add(2*time.Minute))
	put("vol-0000000000000000d", "i-0000000000000000d", "/dev/sdi", volume.Attached, t0) // another instance's
	for path, want := range map[string]string{
		"/latest/meta-data/block-device-mapping/":     "ami\nebs1\nebs2\nroot",
		"/latest/meta-data/block-device-mapping/ami":  "/dev/xvda",
		"/latest/meta-data/block-device-mapping/root": "/dev/xvda",
		"/latest/meta-data/block-device-mapping/ebs1": "sdf",
		"/latest/meta-data/block-device-mapping/ebs2": "sdg",
	} {
		if got := e.value(t, path); got != want {
			t.Errorf("%s = %q, want %q", path, got, want)
		}
	}
	wantCode(t, e.get(t, "/latest/meta-data/block-device-mapping/ebs3"), 404)
	// The attaching one is attached now: it shows, and the list is live.
	put("vol-0000000000000000c", e.in.ID, "/dev/sdh", volume.Attached, t0.Add(2*time.Minute))
	if got := e.value(t, "/latest/meta-data/block-device-mapping/ebs3"); got != "sdh" {
		t.Fatalf("ebs3 = %q", got)
	}
}
