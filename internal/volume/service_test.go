package volume_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"nubo/internal/apierr"
	"nubo/internal/instance"
	"nubo/internal/kms"
	"nubo/internal/resource"
	"nubo/internal/store"
	"nubo/internal/store/storetest"
	"nubo/internal/volume"
)

var sc = resource.Scope{Account: "123456789012", Region: "us-east-1"}

type env struct {
	s   *volume.Service
	st  *store.Store
	ctx context.Context
}

func newEnv(t *testing.T) *env {
	t.Helper()
	st := storetest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return &env{ctx: ctx, st: st,
		s: &volume.Service{Store: st, Host: "h1", Zones: []string{"us-east-1a", "us-east-1b"}, KMS: &kms.Service{Store: st}}}
}

func wantCode(t *testing.T, err error, code string) string {
	t.Helper()
	e, ok := apierr.As(err)
	if !ok || e.Code != code {
		t.Fatalf("want %s, got %v", code, err)
	}
	return e.Message
}

func ptr[T any](v T) *T { return &v }

// instance records a running instance with its root volume, as RunInstances does.
func (e *env) instance(t *testing.T, zone, state string) instance.Instance {
	t.Helper()
	now := time.Now().UTC()
	in := instance.Instance{Meta: resource.Meta{ID: resource.NewID(resource.Instance), CreateTime: now},
		Account: sc.Account, Region: sc.Region, Zone: zone, Host: "h1", State: state, Desired: state,
		RootVolumeID: resource.NewID(resource.Volume), RootDevice: "/dev/xvda", RootSizeGiB: 8, DeleteOnTermination: true}
	root := volume.Volume{Meta: resource.Meta{ID: in.RootVolumeID, CreateTime: now}, SizeGiB: 8, Zone: zone, Type: "gp3",
		Iops: 3000, Throughput: 125, State: volume.InUse, Host: "h1",
		Attachment: &volume.Attachment{InstanceID: in.ID, Device: in.RootDevice, AttachTime: now, DeleteOnTermination: true}}
	if err := e.st.Apply(e.ctx, store.Op{Key: instance.Key(sc.Account, sc.Region, in.ID), Value: in},
		store.Op{Key: resource.Key(sc, resource.Volume, root.ID), Value: root}); err != nil {
		t.Fatal(err)
	}
	return in
}

// available makes a volume available, as its agent would.
func (e *env) available(t *testing.T, zone string, size int) volume.Volume {
	t.Helper()
	v, err := e.s.Create(e.ctx, sc, volume.CreateSpec{Zone: zone, SizeGiB: size})
	if err != nil {
		t.Fatal(err)
	}
	return e.agent(t, v.ID, func(v *volume.Volume) { v.State = volume.Available })
}

func (e *env) agent(t *testing.T, id string, f func(*volume.Volume)) volume.Volume {
	t.Helper()
	v, err := store.Update(e.ctx, e.st, resource.Key(sc, resource.Volume, id), func(v *volume.Volume) error { f(v); return nil })
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func (e *env) get(t *testing.T, id string) volume.Volume {
	t.Helper()
	v, err := e.s.Get(e.ctx, sc, id)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestCreateRecordsIntent(t *testing.T) {
	e := newEnv(t)
	v, err := e.s.Create(e.ctx, sc, volume.CreateSpec{Zone: "us-east-1b", SizeGiB: 10, Type: "gp3", Iops: ptr(4000), Throughput: ptr(250),
		Tags: []resource.Tag{{Key: "Name", Value: "data"}}})
	if err != nil {
		t.Fatal(err)
	}
	got := e.get(t, v.ID)
	if got.State != volume.Creating || got.Backing != volume.BackingBlock || got.Host != "h1" || got.Zone != "us-east-1b" ||
		got.SizeGiB != 10 || got.Type != "gp3" || got.Iops != 4000 || got.Throughput != 250 || got.Encrypted || got.WrappedKey != nil ||
		got.Tags["Name"] != "data" || got.CreateTime.IsZero() {
		t.Fatalf("record %+v", got)
	}
	// gp2 by default, its IOPS from its size.
	v, err = e.s.Create(e.ctx, sc, volume.CreateSpec{Zone: "us-east-1a", SizeGiB: 100})
	if err != nil || v.Type != "gp2" || v.Iops != 300 || v.Throughput != 0 {
		t.Fatalf("default type: %+v %v", v, err)
	}
	for _, c := range []struct {
		spec volume.CreateSpec
		code string
	}{
		{volume.CreateSpec{SizeGiB: 1}, apierr.MissingParameter},
		{volume.CreateSpec{Zone: "us-east-1z", SizeGiB: 1}, "InvalidZone.NotFound"},
		{volume.CreateSpec{Zone: "us-east-1a"}, apierr.MissingParameter},
		{volume.CreateSpec{Zone: "us-east-1a", SnapshotID: "snap-0123456789abcdef0"}, "InvalidSnapshot.NotFound"},
		{volume.CreateSpec{Zone: "us-east-1a", SnapshotID: "snap-zz"}, "InvalidSnapshotID.Malformed"},
		{volume.CreateSpec{Zone: "us-east-1a", SizeGiB: 1, Type: "gp4"}, apierr.InvalidParameterValue},
		{volume.CreateSpec{Zone: "us-east-1a", SizeGiB: 1, MultiAttach: true}, apierr.UnsupportedOperation},
		{volume.CreateSpec{Zone: "us-east-1a", SizeGiB: 1, KmsKeyID: "alias/aws/ebs"}, "InvalidParameterDependency"},
		{volume.CreateSpec{Zone: "us-east-1a", SizeGiB: 1, Encrypted: ptr(true), KmsKeyID: "alias/nope"}, apierr.InvalidParameterValue},
	} {
		if _, err := e.s.Create(e.ctx, sc, c.spec); err == nil {
			t.Errorf("%+v: created", c.spec)
		} else if ae, ok := apierr.As(err); !ok || ae.Code != c.code {
			t.Errorf("%+v: want %s, got %v", c.spec, c.code, err)
		}
	}
}

func TestVolumeTypeRules(t *testing.T) {
	cases := []struct {
		typ              string
		size             int
		iops, throughput *int
		code, param      string // "" code: valid
		wantIops, wantTP int
	}{
		{"gp2", 1, nil, nil, "", "", 100, 0},
		{"gp2", 2000, nil, nil, "", "", 6000, 0},
		{"gp2", 16384, nil, nil, "", "", 16000, 0},
		{"gp2", 16385, nil, nil, apierr.InvalidParameterValue, "Size", 0, 0},
		{"gp2", 10, ptr(300), nil, apierr.InvalidParameterCombination, "Iops", 0, 0},
		{"gp3", 1, nil, nil, "", "", 3000, 125},
		{"gp3", 8, ptr(4000), nil, "", "", 4000, 125},
		{"gp3", 7, ptr(4000), nil, apierr.InvalidParameterValue, "Iops", 0, 0}, // 500/GiB
		{"gp3", 100, ptr(2999), nil, apierr.InvalidParameterValue, "Iops", 0, 0},
		{"gp3", 100, ptr(16001), nil, apierr.InvalidParameterValue, "Iops", 0, 0},
		{"gp3", 100, nil, ptr(750), "", "", 3000, 750},
		{"gp3", 100, nil, ptr(751), apierr.InvalidParameterValue, "Throughput", 0, 0}, // 0.25 × IOPS
		{"gp3", 100, ptr(16000), ptr(1001), apierr.InvalidParameterValue, "Throughput", 0, 0},
		{"gp3", 100, nil, ptr(124), apierr.InvalidParameterValue, "Throughput", 0, 0},
		{"io1", 10, nil, nil, apierr.MissingParameter, "Iops", 0, 0},
		{"io1", 10, ptr(500), nil, "", "", 500, 0},
		{"io1", 10, ptr(501), nil, apierr.InvalidParameterValue, "Iops", 0, 0}, // 50/GiB
		{"io1", 3, ptr(100), nil, apierr.InvalidParameterValue, "Size", 0, 0},
		{"io1", 100, ptr(99), nil, apierr.InvalidParameterValue, "Iops", 0, 0},
		{"io1", 4, ptr(100), ptr(200), apierr.InvalidParameterCombination, "Throughput", 0, 0},
		{"io2", 100, ptr(100000), nil, "", "", 100000, 0},
		{"io2", 100, ptr(100001), nil, apierr.InvalidParameterValue, "Iops", 0, 0}, // 1000/GiB
		{"io2", 1000, ptr(256001), nil, apierr.InvalidParameterValue, "Iops", 0, 0},
		{"st1", 124, nil, nil, apierr.InvalidParameterValue, "Size", 0, 0},
		{"st1", 125, nil, nil, "", "", 0, 0},
		{"sc1", 16384, nil, ptr(200), apierr.InvalidParameterCombination, "Throughput", 0, 0},
		{"standard", 1024, nil, nil, "", "", 0, 0},
		{"standard", 1025, nil, nil, apierr.InvalidParameterValue, "Size", 0, 0},
		{"standard", 10, ptr(100), nil, apierr.InvalidParameterCombination, "Iops", 0, 0},
	}
	for _, c := range cases {
		name := fmt.Sprintf("%s/%d/%v/%v", c.typ, c.size, c.iops != nil, c.throughput != nil)
		p, err := volume.Types[c.typ].Settle("Size", c.size, c.iops, c.throughput)
		if c.code == "" {
			if err != nil || p.Iops != c.wantIops || p.Throughput != c.wantTP || p.Type != c.typ || p.SizeGiB != c.size {
				t.Errorf("%s: %+v %v", name, p, err)
			}
			continue
		}
		e, ok := apierr.As(err)
		if !ok || e.Code != c.code || !strings.Contains(e.Message, c.param) {
			t.Errorf("%s: want %s naming %s, got %v", name, c.code, c.param, err)
		}
	}
}

func TestEncryption(t *testing.T) {
	e := newEnv(t)
	v, err := e.s.Create(e.ctx, sc, volume.CreateSpec{Zone: "us-east-1a", SizeGiB: 1, Encrypted: ptr(true)})
	if err != nil {
		t.Fatal(err)
	}
	def, err := e.s.KMS.DefaultKey(e.ctx, sc)
	if err != nil {
		t.Fatal(err)
	}
	if !v.Encrypted || v.KmsKeyID != def || len(v.WrappedKey) == 0 {
		t.Fatalf("encrypted volume %+v", v)
	}
	// The agent's view: a fresh key service unwraps a 64-byte key.
	key, err := (&kms.Service{Store: e.st}).Decrypt(e.ctx, sc, v.KmsKeyID, e.get(t, v.ID).WrappedKey)
	if err != nil || len(key) != volume.DataKeyBytes || bytes.Equal(key, make([]byte, 64)) {
		t.Fatalf("data key %d bytes, %v", len(key), err)
	}
	// By key ARN, by alias ARN: the same key.
	for _, ref := range []string{def, kms.AliasARN(sc, kms.DefaultAlias)} {
		v, err := e.s.Create(e.ctx, sc, volume.CreateSpec{Zone: "us-east-1a", SizeGiB: 1, Encrypted: ptr(true), KmsKeyID: ref})
		if err != nil || v.KmsKeyID != def {
			t.Fatalf("KmsKeyId %s: %+v %v", ref, v, err)
		}
	}

	// Encryption by default wins over Encrypted=false.
	if on, err := e.s.EncryptionByDefault(e.ctx, sc); err != nil || on {
		t.Fatalf("by default at first: %v %v", on, err)
	}
	if err := e.s.SetEncryptionByDefault(e.ctx, sc, true); err != nil {
		t.Fatal(err)
	}
	v, err = e.s.Create(e.ctx, sc, volume.CreateSpec{Zone: "us-east-1a", SizeGiB: 1, Encrypted: ptr(false)})
	if err != nil || !v.Encrypted || v.KmsKeyID != def {
		t.Fatalf("by default: %+v %v", v, err)
	}
	// ... and accepts KmsKeyId without Encrypted.
	if _, err := e.s.Create(e.ctx, sc, volume.CreateSpec{Zone: "us-east-1a", SizeGiB: 1, KmsKeyID: "alias/aws/ebs"}); err != nil {
		t.Fatal(err)
	}
	// Another account's setting is its own.
	other := resource.Scope{Account: "210987654321", Region: sc.Region}
	if v, err := e.s.Create(e.ctx, other, volume.CreateSpec{Zone: "us-east-1a", SizeGiB: 1}); err != nil || v.Encrypted {
		t.Fatalf("other account: %+v %v", v, err)
	}
}

func TestClientTokenAndQuota(t *testing.T) {
	e := newEnv(t)
	e.s.MaxVolumes = 3
	spec := volume.CreateSpec{Zone: "us-east-1a", SizeGiB: 5, ClientToken: "tok-1"}
	a, err := e.s.Create(e.ctx, sc, spec)
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.s.Create(e.ctx, sc, spec)
	if err != nil || b.ID != a.ID {
		t.Fatalf("retry made %s (%v), first %s", b.ID, err, a.ID)
	}
	spec.SizeGiB = 6
	_, err = e.s.Create(e.ctx, sc, spec)
	wantCode(t, err, "IdempotentParameterMismatch")
	for i := 0; i < 2; i++ {
		if _, err := e.s.Create(e.ctx, sc, volume.CreateSpec{Zone: "us-east-1a", SizeGiB: 1}); err != nil {
			t.Fatal(err)
		}
	}
	_, err = e.s.Create(e.ctx, sc, volume.CreateSpec{Zone: "us-east-1a", SizeGiB: 1})
	wantCode(t, err, "VolumeLimitExceeded")
}

func TestAttachRules(t *testing.T) {
	e := newEnv(t)
	in := e.instance(t, "us-east-1a", instance.Running)
	v, err := e.s.Create(e.ctx, sc, volume.CreateSpec{Zone: "us-east-1a", SizeGiB: 1})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.s.Attach(e.ctx, sc, v.ID, in.ID, "/dev/sdf")
	wantCode(t, err, "IncorrectState") // still creating
	v = e.agent(t, v.ID, func(v *volume.Volume) { v.State = volume.Available })

	far := e.instance(t, "us-east-1b", instance.Running)
	_, err = e.s.Attach(e.ctx, sc, v.ID, far.ID, "/dev/sdf")
	wantCode(t, err, "InvalidVolume.ZoneMismatch")
	for _, state := range []string{instance.Terminated, instance.ShuttingDown, instance.Pending} {
		x := e.instance(t, "us-east-1a", state)
		_, err = e.s.Attach(e.ctx, sc, v.ID, x.ID, "/dev/sdf")
		wantCode(t, err, "IncorrectInstanceState")
	}
	_, err = e.s.Attach(e.ctx, sc, v.ID, "i-0123456789abcdef0", "/dev/sdf")
	wantCode(t, err, "InvalidInstanceID.NotFound")
	_, err = e.s.Attach(e.ctx, sc, "vol-0123456789abcdef0", in.ID, "/dev/sdf")
	wantCode(t, err, "InvalidVolume.NotFound")
	_, err = e.s.Attach(e.ctx, sc, "vol-xyz", in.ID, "/dev/sdf")
	wantCode(t, err, "InvalidVolumeID.Malformed")
	for _, dev := range []string{"/dev/foo", "/dev/sd", "/dev/sdf0", "/dev/sdf16", "/dev/xvdda", "/dev/hda", ""} {
		_, err = e.s.Attach(e.ctx, sc, v.ID, in.ID, dev)
		wantCode(t, err, apierr.InvalidParameterValue)
	}
	for _, dev := range []string{"/dev/xvda", "xvda"} {
		_, err = e.s.Attach(e.ctx, sc, v.ID, in.ID, dev)
		if msg := wantCode(t, err, apierr.InvalidParameterValue); !strings.Contains(msg, "Attachment point "+dev+" is already in use") {
			t.Fatalf("root device %s: %s", dev, msg)
		}
	}

	att, err := e.s.Attach(e.ctx, sc, v.ID, in.ID, "sdf") // EC2 also takes the bare name
	if err != nil {
		t.Fatal(err)
	}
	got := e.get(t, v.ID)
	if att.Device != "/dev/sdf" || att.State != volume.Attaching || att.InstanceID != in.ID || att.DeleteOnTermination || att.AttachTime.IsZero() ||
		got.State != volume.InUse || *got.Attachment != att {
		t.Fatalf("attachment %+v, record %+v", att, got)
	}
	_, err = e.s.Attach(e.ctx, sc, v.ID, in.ID, "/dev/sdg")
	wantCode(t, err, "VolumeInUse")

	w := e.available(t, "us-east-1a", 1)
	_, err = e.s.Attach(e.ctx, sc, w.ID, in.ID, "/dev/sdf")
	if msg := wantCode(t, err, apierr.InvalidParameterValue); msg != "Attachment point /dev/sdf is already in use" {
		t.Fatalf("message %q", msg)
	}
	// A stopped instance takes volumes (it gets them at its next boot).
	stopped := e.instance(t, "us-east-1a", instance.Stopped)
	if _, err := e.s.Attach(e.ctx, sc, w.ID, stopped.ID, "/dev/sdf"); err != nil {
		t.Fatal(err)
	}

	// Root volumes (overlays) are shown attached but are not ours to move.
	_, err = e.s.Attach(e.ctx, sc, in.RootVolumeID, stopped.ID, "/dev/sdh")
	wantCode(t, err, "VolumeInUse")
	_, err = e.s.Detach(e.ctx, sc, volume.DetachSpec{VolumeID: in.RootVolumeID})
	if msg := wantCode(t, err, apierr.UnsupportedOperation); !strings.Contains(msg, "root volume") {
		t.Fatal(msg)
	}
	_, err = e.s.Modify(e.ctx, sc, in.RootVolumeID, volume.ModifySpec{SizeGiB: ptr(20)})
	wantCode(t, err, apierr.UnsupportedOperation)
	wantCode(t, e.s.Delete(e.ctx, sc, in.RootVolumeID), "VolumeInUse")
	// A root volume left after its instance: still not an attachable volume.
	e.agent(t, in.RootVolumeID, func(v *volume.Volume) { v.State, v.Attachment = volume.Available, nil })
	_, err = e.s.Attach(e.ctx, sc, in.RootVolumeID, stopped.ID, "/dev/sdh")
	wantCode(t, err, apierr.UnsupportedOperation)
	wantCode(t, e.s.Delete(e.ctx, sc, in.RootVolumeID), apierr.UnsupportedOperation)
}

func TestAttachLimit(t *testing.T) {
	e := newEnv(t)
	in := e.instance(t, "us-east-1a", instance.Running)
	var devs []string
	for c := 'b'; c <= 'z'; c++ {
		devs = append(devs, "/dev/sd"+string(c))
	}
	devs = append(devs, "/dev/xvdb", "/dev/xvdc")
	for i, dev := range devs {
		v := e.available(t, "us-east-1a", 1)
		_, err := e.s.Attach(e.ctx, sc, v.ID, in.ID, dev)
		if i < volume.MaxAttachments && err != nil {
			t.Fatalf("attachment %d: %v", i+1, err)
		}
		if i == volume.MaxAttachments {
			wantCode(t, err, "AttachmentLimitExceeded")
			return
		}
	}
	t.Fatal("no limit")
}

// Racing attachments: one volume to two instances, two volumes to one device.
func TestAttachRaces(t *testing.T) {
	e := newEnv(t)
	in1, in2 := e.instance(t, "us-east-1a", instance.Running), e.instance(t, "us-east-1a", instance.Running)
	v := e.available(t, "us-east-1a", 1)
	vols := []volume.Volume{e.available(t, "us-east-1a", 1), e.available(t, "us-east-1a", 1), e.available(t, "us-east-1a", 1)}
	var mu sync.Mutex
	wins := map[string]int{}
	var wg sync.WaitGroup
	try := func(name, vol, inst, dev string) {
		defer wg.Done()
		_, err := e.s.Attach(e.ctx, sc, vol, inst, dev)
		mu.Lock()
		defer mu.Unlock()
		if err == nil {
			wins[name]++
		} else if ae, ok := apierr.As(err); !ok || (ae.Code != "VolumeInUse" && ae.Code != apierr.InvalidParameterValue) {
			t.Errorf("%s: %v", name, err)
		}
	}
	for _, in := range []string{in1.ID, in2.ID} {
		wg.Add(1)
		go try("same volume", v.ID, in, "/dev/sdf")
	}
	for _, x := range vols {
		wg.Add(1)
		go try("same device", x.ID, in2.ID, "/dev/sdg")
	}
	wg.Wait()
	if wins["same volume"] != 1 || wins["same device"] != 1 {
		t.Fatalf("wins %v", wins)
	}
}

// An attach that read the instance before its termination does not land
// after it: whatever the interleaving, a successful attach was written
// before the instance went shutting-down, so the agent's termination sees it.
func TestAttachLosesToTermination(t *testing.T) {
	e := newEnv(t)
	is := &instance.Service{Store: e.st, Region: sc.Region}
	for trial := 0; trial < 20; trial++ {
		in := e.instance(t, "us-east-1a", instance.Running)
		v := e.available(t, "us-east-1a", 1)
		var wg sync.WaitGroup
		wg.Add(2)
		var attachErr error
		go func() { defer wg.Done(); _, attachErr = e.s.Attach(e.ctx, sc, v.ID, in.ID, "/dev/sdf") }()
		go func() {
			defer wg.Done()
			if _, err := is.Terminate(e.ctx, sc.Account, []string{in.ID}); err != nil {
				t.Error(err)
			}
		}()
		wg.Wait()
		var got volume.Volume
		vrev, err := e.st.Get(e.ctx, resource.Key(sc, resource.Volume, v.ID), &got)
		if err != nil {
			t.Fatal(err)
		}
		var after instance.Instance
		irev, err := e.st.Get(e.ctx, instance.Key(sc.Account, sc.Region, in.ID), &after)
		if err != nil || after.State != instance.ShuttingDown {
			t.Fatalf("instance %s %v", after.State, err)
		}
		if attachErr != nil {
			wantCode(t, attachErr, "IncorrectInstanceState")
			if got.Attachment != nil {
				t.Fatalf("failed attach left %+v", got.Attachment)
			}
		} else if vrev > irev {
			t.Fatalf("trial %d: attached (rev %d) after the instance was terminated (rev %d)", trial, vrev, irev)
		}
	}
}

func TestDetach(t *testing.T) {
	e := newEnv(t)
	in := e.instance(t, "us-east-1a", instance.Running)
	v := e.available(t, "us-east-1a", 1)
	_, err := e.s.Detach(e.ctx, sc, volume.DetachSpec{VolumeID: v.ID})
	wantCode(t, err, "IncorrectState")
	if _, err := e.s.Attach(e.ctx, sc, v.ID, in.ID, "/dev/sdf"); err != nil {
		t.Fatal(err)
	}
	e.agent(t, v.ID, func(v *volume.Volume) { v.Attachment.State = volume.Attached })

	other := e.instance(t, "us-east-1a", instance.Running)
	_, err = e.s.Detach(e.ctx, sc, volume.DetachSpec{VolumeID: v.ID, InstanceID: other.ID})
	wantCode(t, err, "InvalidAttachment.NotFound")
	_, err = e.s.Detach(e.ctx, sc, volume.DetachSpec{VolumeID: v.ID, Device: "/dev/sdg"})
	wantCode(t, err, "InvalidAttachment.NotFound")
	wantCode(t, e.s.Delete(e.ctx, sc, v.ID), "VolumeInUse")

	att, err := e.s.Detach(e.ctx, sc, volume.DetachSpec{VolumeID: v.ID, InstanceID: in.ID, Device: "sdf"})
	if err != nil || att.State != volume.Detaching || att.Force || att.InstanceID != in.ID || att.Device != "/dev/sdf" {
		t.Fatalf("detach: %+v %v", att, err)
	}
	// Again, forced: still detaching, now forced.
	att, err = e.s.Detach(e.ctx, sc, volume.DetachSpec{VolumeID: v.ID, Force: true})
	if got := e.get(t, v.ID); err != nil || att.State != volume.Detaching || !att.Force || !got.Attachment.Force || got.State != volume.InUse {
		t.Fatalf("forced: %+v %+v %v", att, got, err)
	}
	wantCode(t, e.s.Delete(e.ctx, sc, v.ID), "VolumeInUse")
	// The agent finishes; the volume may go.
	e.agent(t, v.ID, func(v *volume.Volume) { v.Attachment, v.State = nil, volume.Available })
	if err := e.s.Delete(e.ctx, sc, v.ID); err != nil {
		t.Fatal(err)
	}
	if got := e.get(t, v.ID); got.State != volume.Deleting {
		t.Fatalf("state %s", got.State)
	}
	if err := e.s.Delete(e.ctx, sc, v.ID); err != nil { // deleting already
		t.Fatal(err)
	}
	_, err = e.s.Attach(e.ctx, sc, v.ID, in.ID, "/dev/sdf")
	wantCode(t, err, "IncorrectState")
	wantCode(t, e.s.Delete(e.ctx, sc, "vol-0123456789abcdef0"), "InvalidVolume.NotFound")

	creating, err := e.s.Create(e.ctx, sc, volume.CreateSpec{Zone: "us-east-1a", SizeGiB: 1})
	if err != nil {
		t.Fatal(err)
	}
	wantCode(t, e.s.Delete(e.ctx, sc, creating.ID), "IncorrectState")
}

func TestModify(t *testing.T) {
	e := newEnv(t)
	v := e.available(t, "us-east-1a", 100) // gp2, 300 IOPS
	_, err := e.s.Modify(e.ctx, sc, v.ID, volume.ModifySpec{SizeGiB: ptr(99)})
	if msg := wantCode(t, err, apierr.InvalidParameterValue); !strings.Contains(msg, "New size cannot be smaller than existing size") {
		t.Fatal(msg)
	}
	_, err = e.s.Modify(e.ctx, sc, v.ID, volume.ModifySpec{})
	wantCode(t, err, apierr.MissingParameter)
	_, err = e.s.Modify(e.ctx, sc, v.ID, volume.ModifySpec{SizeGiB: ptr(100)})
	wantCode(t, err, apierr.InvalidParameterValue)
	_, err = e.s.Modify(e.ctx, sc, v.ID, volume.ModifySpec{Type: "io1"}) // 3,000 IOPS on 100 GiB: 30/GiB, fine
	if err != nil {
		t.Fatal(err)
	}
	got := e.get(t, v.ID)
	m := got.Modification
	if got.Type != "io1" || got.Iops != 3000 || m == nil || m.State != "modifying" || m.OriginalType != "gp2" || m.OriginalIops != 300 ||
		m.TargetType != "io1" || m.TargetIops != 3000 || m.TargetSizeGiB != 100 || m.StartTime.IsZero() {
		t.Fatalf("modified %+v %+v", got, m)
	}
	_, err = e.s.Modify(e.ctx, sc, v.ID, volume.ModifySpec{SizeGiB: ptr(200)})
	wantCode(t, err, "IncorrectModificationState")
	e.agent(t, v.ID, func(v *volume.Volume) { v.Modification.State, v.Modification.Progress = "completed", 100 })

	// gp3 takes its defaults; a later change keeps them.
	if got, err = e.s.Modify(e.ctx, sc, v.ID, volume.ModifySpec{Type: "gp3"}); err != nil || got.Iops != 3000 || got.Throughput != 125 {
		t.Fatalf("to gp3: %+v %v", got, err)
	}
	e.agent(t, v.ID, func(v *volume.Volume) { v.Modification.State = "completed" })
	if got, err = e.s.Modify(e.ctx, sc, v.ID, volume.ModifySpec{SizeGiB: ptr(300), Throughput: ptr(500)}); err != nil ||
		got.SizeGiB != 300 || got.Iops != 3000 || got.Throughput != 500 || got.Modification.OriginalSizeGiB != 100 {
		t.Fatalf("grow: %+v %v", got, err)
	}
	e.agent(t, v.ID, func(v *volume.Volume) { v.Modification.State = "completed" })
	// Target rules apply: gp3's throughput ratio names the parameter.
	_, err = e.s.Modify(e.ctx, sc, v.ID, volume.ModifySpec{Throughput: ptr(800)})
	if msg := wantCode(t, err, apierr.InvalidParameterValue); !strings.Contains(msg, "Throughput") {
		t.Fatal(msg)
	}
	_, err = e.s.Modify(e.ctx, sc, v.ID, volume.ModifySpec{Type: "standard"})
	wantCode(t, err, apierr.UnsupportedOperation)
	_, err = e.s.Modify(e.ctx, sc, v.ID, volume.ModifySpec{MultiAttach: ptr(true)})
	wantCode(t, err, apierr.UnsupportedOperation)
}

func TestDeleteOnTermination(t *testing.T) {
	e := newEnv(t)
	in := e.instance(t, "us-east-1a", instance.Running)
	v := e.available(t, "us-east-1a", 1)
	if _, err := e.s.Attach(e.ctx, sc, v.ID, in.ID, "/dev/sdf"); err != nil {
		t.Fatal(err)
	}
	// Root: the instance's flag and its volume's, together.
	if err := e.s.SetDeleteOnTermination(e.ctx, sc, in.ID, "/dev/xvda", false); err != nil {
		t.Fatal(err)
	}
	var got instance.Instance
	if _, err := e.st.Get(e.ctx, instance.Key(sc.Account, sc.Region, in.ID), &got); err != nil {
		t.Fatal(err)
	}
	root := e.get(t, in.RootVolumeID)
	if got.DeleteOnTermination || root.Attachment.DeleteOnTermination || got.RootVolumeID != in.RootVolumeID || got.Zone != in.Zone {
		t.Fatalf("root flag: instance %v, volume %v; record %+v", got.DeleteOnTermination, root.Attachment.DeleteOnTermination, got)
	}
	if err := e.s.SetDeleteOnTermination(e.ctx, sc, in.ID, "sdf", true); err != nil {
		t.Fatal(err)
	}
	if a := e.get(t, v.ID).Attachment; !a.DeleteOnTermination {
		t.Fatalf("block flag %+v", a)
	}
	wantCode(t, e.s.SetDeleteOnTermination(e.ctx, sc, in.ID, "/dev/sdz", true), "InvalidInstanceAttributeValue")
}

func TestDevices(t *testing.T) {
	for in, want := range map[string]string{"/dev/sdf": "/dev/sdf", "sdp": "/dev/sdp", "/dev/sda1": "/dev/sda1", "xvdf": "/dev/xvdf",
		"/dev/xvdba": "/dev/xvdba", "/dev/sdb15": "/dev/sdb15"} {
		if got, ok := volume.NormalizeDevice(in); !ok || got != want {
			t.Errorf("%s: %s %v", in, got, ok)
		}
	}
	for _, bad := range []string{"", "/dev/", "/dev/sd", "/dev/sdF", "/dev/sdf16", "/dev/sdf01", "/dev/xvd", "/dev/xvdaa", "/dev/nvme0n1", "/dev/sdf/x", "/dev/../sdf"} {
		if got, ok := volume.NormalizeDevice(bad); ok {
			t.Errorf("%q accepted as %s", bad, got)
		}
	}
	if !volume.SameDisk("/dev/sda", "/dev/sda1") || !volume.SameDisk("/dev/sda1", "/dev/sda") || volume.SameDisk("/dev/sda1", "/dev/sda2") ||
		volume.SameDisk("/dev/sdf", "/dev/xvdf") {
		t.Error("SameDisk")
	}
}
