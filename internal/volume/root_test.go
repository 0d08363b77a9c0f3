package volume_test

import (
	"testing"
	"time"

	"nubo/internal/resource"
	"nubo/internal/store"
	"nubo/internal/volume"
)

// A root block volume: the mapping's rules, encryption by default, its own
// wrapped key; it is no data volume of its instance and cannot be
// detached.
func TestRootRecord(t *testing.T) {
	e := newEnv(t)
	if _, err := e.s.PlanRoot(e.ctx, sc, volume.RootSpec{SizeGiB: 500, Type: "st1"}); err == nil {
		t.Fatal("st1 root accepted")
	}
	wantCode(t, e.mustErr(e.s.PlanRoot(e.ctx, sc, volume.RootSpec{SizeGiB: 8, Type: "io2"})), "MissingParameter") // io2 needs its IOPS
	p, err := e.s.PlanRoot(e.ctx, sc, volume.RootSpec{SizeGiB: 8})
	if err != nil || p.Type != "gp3" || p.Iops != 3000 || p.Throughput != 125 || p.Encrypted {
		t.Fatalf("default plan %+v, %v", p, err)
	}
	if err := e.s.SetEncryptionByDefault(e.ctx, sc, true); err != nil {
		t.Fatal(err)
	}
	if p, err = e.s.PlanRoot(e.ctx, sc, volume.RootSpec{SizeGiB: 8, Encrypted: ptr(false)}); err != nil || !p.Encrypted || p.KmsKeyID == "" {
		t.Fatalf("plan under encryption by default %+v, %v", p, err)
	}
	in := resource.NewID(resource.Instance)
	v, err := e.s.RootRecord(e.ctx, sc, p, volume.NewRoot{ID: resource.NewID(resource.Volume), InstanceID: in, Device: "/dev/xvda",
		Zone: "us-east-1a", ImageID: "ami-0123456789abcdef0", BaseImageID: "ami-0123456789abcdef0", DeleteOnTermination: true, Time: time.Now()})
	if err != nil || !v.IsBlock() || !v.IsRoot() || len(v.WrappedKey) == 0 || v.State != volume.InUse {
		t.Fatalf("root record %+v, %v", v, err)
	}
	if err := e.st.Apply(e.ctx, store.Op{Key: resource.Key(sc, resource.Volume, v.ID), Value: v}); err != nil {
		t.Fatal(err)
	}
	if got := volume.ByInstance([]volume.Volume{v})[in]; len(got) != 0 {
		t.Errorf("the root volume is among its instance's data volumes: %+v", got)
	}
	_, err = e.s.Detach(e.ctx, sc, volume.DetachSpec{VolumeID: v.ID})
	wantCode(t, err, "UnsupportedOperation")
}

func (e *env) mustErr(_ volume.RootPlan, err error) error { return err }
