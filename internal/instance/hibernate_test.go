package instance

import (
	"context"
	"errors"
	"testing"

	"nubo/internal/ami"
	"nubo/internal/apierr"
	"nubo/internal/kms"
	"nubo/internal/resource"
	"nubo/internal/store"
	"nubo/internal/volume"
)

// newBlockService is newService with block root volumes (encryptable).
func newBlockService(t *testing.T) (*Service, string) {
	t.Helper()
	s, image := newService(t)
	s.Volumes = &volume.Service{Store: s.Store, Host: "h1", Zones: []string{"us-east-1a"}, KMS: &kms.Service{Store: s.Store}}
	return s, image
}

// hibernatable is a launch that meets the prerequisites with the test
// image (8 GiB) on a t3.micro (1 GiB): an encrypted root of 9 GiB.
func hibernatable(image string, f func(*RunSpec)) RunSpec {
	return spec(image, func(r *RunSpec) {
		on := true
		r.Hibernation, r.RootSizeGiB, r.Root = true, 9, &volume.RootSpec{Encrypted: &on}
		if f != nil {
			f(r)
		}
	})
}

// setState stands in for the agent.
func setState(t *testing.T, s *Service, id, state string) {
	t.Helper()
	if _, err := store.Update(context.Background(), s.Store, Key(account, s.Region, id), func(in *Instance) error {
		in.State = state
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func get(t *testing.T, s *Service, id string) Instance {
	t.Helper()
	in, err := s.Get(context.Background(), account, id)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

func TestHibernationPreconditions(t *testing.T) {
	ctx := context.Background()
	overlay, image := newService(t)
	_, err := overlay.Run(ctx, account, hibernatable(image, nil))
	wantError(t, err, UnsupportedHibernationConfiguration, "encrypted EBS root volume")

	s, image := newBlockService(t)
	for _, tc := range []struct {
		name, code, msg string
		spec            RunSpec
		host            error
	}{
		{"unencrypted root", UnsupportedHibernationConfiguration, "encrypted EBS root volume",
			hibernatable(image, func(r *RunSpec) { r.Root = nil }), nil},
		{"root explicitly unencrypted", UnsupportedHibernationConfiguration, "encrypted EBS root volume",
			hibernatable(image, func(r *RunSpec) { off := false; r.Root.Encrypted = &off }), nil},
		{"root of the image's size", UnsupportedHibernationConfiguration, "at least 9 GiB",
			hibernatable(image, func(r *RunSpec) { r.RootSizeGiB = 0 }), nil},
		{"root too small for a larger type", UnsupportedHibernationConfiguration, "at least 16 GiB",
			hibernatable(image, func(r *RunSpec) { r.InstanceType = "t3.large" }), nil},
		{"metal type", UnsupportedHibernationConfiguration, "m5.metal does not support hibernation",
			hibernatable(image, func(r *RunSpec) { r.InstanceType, r.RootSizeGiB = "m5.metal", 400 }), nil},
		{"host cannot", UnsupportedHibernationConfiguration, "CRIU 4 is not installed on this host",
			hibernatable(image, nil), errors.New("CRIU 4 is not installed on this host")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s.Hibernation = func() error { return tc.host }
			_, err := s.Run(ctx, account, tc.spec)
			wantError(t, err, tc.code, tc.msg)
		})
	}
	s.Hibernation = func() error { return nil }
	if all, err := s.List(ctx, account); err != nil || len(all) != 0 {
		t.Fatalf("refused launches recorded %d instances (%v)", len(all), err)
	}

	// The unsupported host does not matter to launches not asking for it.
	s.Hibernation = func() error { return errors.New("no CRIU") }
	res, err := s.Run(ctx, account, spec(image, nil))
	if err != nil {
		t.Fatal(err)
	}
	if get(t, s, res.Instances[0].ID).Hibernation {
		t.Fatal("a plain launch is configured for hibernation")
	}
}

func TestHibernationLaunches(t *testing.T) {
	ctx := context.Background()
	s, image := newBlockService(t)
	res, err := s.Run(ctx, account, hibernatable(image, nil))
	if err != nil {
		t.Fatal(err)
	}
	in := get(t, s, res.Instances[0].ID)
	if !in.Hibernation || in.Hibernate || !res.Instances[0].Hibernation {
		t.Fatalf("record hibernation %v hibernate %v (answered %v), want configured, not hibernating", in.Hibernation, in.Hibernate, res.Instances[0].Hibernation)
	}

	// Encrypted by default counts as the mapping's Encrypted does.
	if err := s.Volumes.SetEncryptionByDefault(ctx, s.scope(account), true); err != nil {
		t.Fatal(err)
	}
	res, err = s.Run(ctx, account, hibernatable(image, func(r *RunSpec) { r.Root = nil }))
	if err != nil {
		t.Fatal(err)
	}
	var vol volume.Volume
	if _, err := s.Store.Get(ctx, resource.Key(s.scope(account), resource.Volume, res.Instances[0].RootVolumeID), &vol); err != nil {
		t.Fatal(err)
	}
	if !vol.Encrypted || !get(t, s, res.Instances[0].ID).Hibernation {
		t.Fatalf("root encrypted %v, hibernation %v", vol.Encrypted, get(t, s, res.Instances[0].ID).Hibernation)
	}
}

func TestStopHibernate(t *testing.T) {
	ctx := context.Background()
	s, image := newBlockService(t)
	res, err := s.Run(ctx, account, hibernatable(image, nil))
	if err != nil {
		t.Fatal(err)
	}
	id := res.Instances[0].ID
	plain, err := s.Run(ctx, account, spec(image, nil))
	if err != nil {
		t.Fatal(err)
	}
	other := plain.Instances[0].ID
	setState(t, s, other, Running)

	_, err = s.StopHibernate(ctx, account, []string{id}, false)
	wantError(t, err, apierr.UnsupportedOperation, "is not ready to hibernate yet")
	setState(t, s, id, Running)

	_, err = s.StopHibernate(ctx, account, []string{other}, false)
	wantError(t, err, UnsupportedHibernationConfiguration, "not configured at launch for hibernation: "+other)
	// All or nothing: the configured instance is not hibernated either.
	_, err = s.StopHibernate(ctx, account, []string{id, other}, false)
	wantError(t, err, UnsupportedHibernationConfiguration, other)
	if in := get(t, s, id); in.State != Running || in.Hibernate {
		t.Fatalf("after a refused request: %s, hibernate %v", in.State, in.Hibernate)
	}
	_, err = s.StopHibernate(ctx, account, []string{id}, true)
	wantError(t, err, apierr.InvalidParameterCombination, "Force and Hibernate")

	ch, err := s.StopHibernate(ctx, account, []string{id}, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(ch) != 1 || ch[0] != (Change{ID: id, Previous: Running, State: Stopping}) {
		t.Fatalf("changes %+v", ch)
	}
	in := get(t, s, id)
	if in.Desired != Stopped || !in.Hibernate || in.ForceStop || in.StateReason == nil || *in.StateReason != *ReasonUserHibernate {
		t.Fatalf("record %+v", in)
	}
	if in.StateReason == nil || in.StateReason.Message != "Client.UserInitiatedHibernate: User initiated hibernate" {
		t.Fatalf("reason %+v", in.StateReason)
	}
	// Repeated while hibernating, and once hibernated: nothing to do.
	if ch, err := s.StopHibernate(ctx, account, []string{id}, false); err != nil || ch[0].State != Stopping {
		t.Fatalf("repeated: %+v, %v", ch, err)
	}
	setState(t, s, id, Stopped)
	if ch, err := s.StopHibernate(ctx, account, []string{id}, false); err != nil || ch[0].State != Stopped {
		t.Fatalf("repeated once stopped: %+v, %v", ch, err)
	}

	// The start resumes: Hibernate stays for the agent to restore from.
	if _, err := s.Start(ctx, account, []string{id}); err != nil {
		t.Fatal(err)
	}
	if in := get(t, s, id); in.State != Pending || !in.Hibernate {
		t.Fatalf("started: %s, hibernate %v", in.State, in.Hibernate)
	}
	setState(t, s, id, Running)

	// A normal stop of a configured instance is not a hibernation.
	if _, err := s.Stop(ctx, account, []string{id}, false); err != nil {
		t.Fatal(err)
	}
	if in := get(t, s, id); in.Hibernate || in.StateReason == nil || *in.StateReason != *ReasonUserStop {
		t.Fatalf("normal stop: hibernate %v, reason %+v", in.Hibernate, in.StateReason)
	}
	setState(t, s, id, Stopped)
	_, err = s.StopHibernate(ctx, account, []string{id}, false)
	wantError(t, err, "IncorrectInstanceState", "can be hibernated")

	// A forced stop ends a hibernation stuck in stopping.
	if _, err := s.Start(ctx, account, []string{id}); err != nil {
		t.Fatal(err)
	}
	setState(t, s, id, Running)
	if _, err := s.StopHibernate(ctx, account, []string{id}, false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stop(ctx, account, []string{id}, true); err != nil {
		t.Fatal(err)
	}
	if in := get(t, s, id); in.Hibernate || !in.ForceStop || in.State != Stopping || *in.StateReason != *ReasonUserStop {
		t.Fatalf("forced stop of a hibernation: %s, hibernate %v, force %v, reason %+v", in.State, in.Hibernate, in.ForceStop, in.StateReason)
	}

	if _, err := s.Terminate(ctx, account, []string{id}); err != nil {
		t.Fatal(err)
	}
	_, err = s.StopHibernate(ctx, account, []string{id}, false)
	wantError(t, err, "IncorrectInstanceState", "can be hibernated")
}

// TestHibernationRefusesConsoleImages: an image whose init writes to a
// console terminal (systemd's) could never be saved: refused at launch.
func TestHibernationRefusesConsoleImages(t *testing.T) {
	s, _ := newBlockService(t)
	ctx := context.Background()
	im := ami.Image{Meta: resource.Meta{ID: "ami-0123456789abcdef1"}, Name: "systemd", Architecture: "x86_64", RootDevice: "/dev/xvda",
		SizeGiB: 8, State: "available", Location: "systemd", Init: []string{"/sbin/init"}, UIDBase: 100000, Announces: true}
	if err := s.Images.EnsurePublic(ctx, im); err != nil {
		t.Fatal(err)
	}
	_, err := s.Run(ctx, account, hibernatable(im.ID, nil))
	wantError(t, err, UnsupportedHibernationConfiguration, "console terminal")
	im.ID, im.Name, im.Init = "ami-0123456789abcdef2", "minimal", []string{"/sbin/nubo-init"}
	if err := s.Images.EnsurePublic(ctx, im); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Run(ctx, account, hibernatable(im.ID, nil)); err != nil {
		t.Fatalf("an image booting nubo-init: %v", err)
	}
}
