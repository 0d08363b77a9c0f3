package instance

import (
	"context"
	"path"

	"nubo/internal/ami"
	"nubo/internal/apierr"
	"nubo/internal/catalog"
	"nubo/internal/volume"
)

// Hibernation, the records' side (the agent checkpoints and restores):
//
//	RunInstances HibernationOptions.Configured=true ─► checkHibernation
//	    (type, host, encrypted EBS root, root ≥ RAM + image) ─► Hibernation
//	StopInstances Hibernate=true ─► StopHibernate: running → stopping with
//	    Hibernate set and Client.UserInitiatedHibernate; the agent reads
//	    Hibernate to save the memory rather than shut down, and again at
//	    the next start to restore it. A normal stop clears it.
//
// As on EC2, hibernation is chosen at launch only: nothing turns it on or
// off later.

// UnsupportedHibernationConfiguration is EC2's code for a launch whose
// parameters do not meet the hibernation prerequisites (EC2 API error
// codes table), and for StopInstances Hibernate=true on an instance not
// configured for it ("The instance can't be hibernated because it was not
// configured at launch for hibernation: i-…", as reported from EC2 in
// aws-solutions/instance-scheduler-on-aws#510).
const UnsupportedHibernationConfiguration = "UnsupportedHibernationConfiguration"

// checkHibernation refuses a launch with HibernationOptions.Configured that
// does not meet the prerequisites: an instance type that supports it, hosts
// that can (s.Hibernation), an encrypted EBS root volume (root is the
// settled plan: encrypted by the mapping, the image's snapshot or by
// default) large enough for the instance's memory and the image.
func (s *Service) checkHibernation(spec RunSpec, it catalog.InstanceType, im ami.Image, root *volume.RootPlan) error {
	if !spec.Hibernation {
		return nil
	}
	if !it.HibernationSupported {
		return apierr.New(UnsupportedHibernationConfiguration,
			"The instance type %s does not support hibernation (it must be a virtualized type with less than 150 GiB of memory).", spec.InstanceType)
	}
	if s.Hibernation != nil {
		if err := s.Hibernation(); err != nil {
			// Said at launch rather than found at stop time.
			return apierr.New(UnsupportedHibernationConfiguration, "Hibernation is not supported by the hosts of region %s: %v", s.Region, err)
		}
	}
	if im.Announces && (len(im.Init) == 0 || path.Base(im.Init[0]) != "nubo-init") {
		// nubo's own images other than those booting nubo-init boot
		// systemd (debian-12), which writes to /dev/console, a pty whose
		// master is on the host: CRIU cannot save an instance holding it,
		// so such an image would fail every hibernation. Refused now.
		return apierr.New(UnsupportedHibernationConfiguration,
			"Image %s (its init writes to a console terminal) cannot hibernate on nubo yet; images booting nubo-init, such as debian-12-minimal, can.", im.ID)
	}
	if root == nil || !root.Encrypted {
		return apierr.New(UnsupportedHibernationConfiguration,
			"Hibernation requires an encrypted EBS root volume: set BlockDeviceMapping.Ebs.Encrypted, use an image with an encrypted root snapshot, or turn on EBS encryption by default.")
	}
	mem := it.MemoryInfo.SizeInMiB
	need := mem + int64(im.SizeGiB)*1024
	if have := int64(spec.RootSizeGiB) * 1024; have < need {
		return apierr.New(UnsupportedHibernationConfiguration,
			"The root volume (%d GiB) must hold the instance's memory (%d MiB) and the image (%d GiB) to hibernate: give a VolumeSize of at least %d GiB.",
			spec.RootSizeGiB, mem, im.SizeGiB, (need+1023)/1024)
	}
	return nil
}

// StopHibernate asks instances configured for hibernation at launch to
// hibernate: running → stopping, Hibernate set, reason
// Client.UserInitiatedHibernate. All are checked before any changes.
// force cannot go with it (a forced stop saves no memory).
func (s *Service) StopHibernate(ctx context.Context, account string, ids []string, force bool) ([]Change, error) {
	if force {
		// Not in EC2's documentation; a forced stop skips the very shutdown
		// a hibernation replaces, so the pair is refused as contradictory.
		return nil, apierr.New(apierr.InvalidParameterCombination, "The parameters Force and Hibernate cannot be used together.")
	}
	for _, id := range ids {
		in, err := s.Get(ctx, account, id)
		if err != nil {
			return nil, err
		}
		if err := canHibernate(in); err != nil {
			return nil, err
		}
	}
	changes, err := s.transition(ctx, account, ids, func(in *Instance) error {
		if err := canHibernate(*in); err != nil {
			return err
		}
		if in.State != Running {
			return nil // already hibernating or hibernated: as Stop, nothing to do
		}
		in.Desired, in.State, in.ForceStop, in.Hibernate = Stopped, Stopping, false, true
		in.StateReason = ReasonUserHibernate
		in.StateTransitionReason = s.transitionReason("User initiated")
		return nil
	})
	if err != nil {
		return nil, err
	}
	return changes, s.release(ctx, account, changes)
}

// canHibernate says why in cannot be hibernated now, or nil. Stopping or
// stopped by a hibernation is fine (the request is repeated).
func canHibernate(in Instance) error {
	if !in.Hibernation {
		return apierr.New(UnsupportedHibernationConfiguration,
			"The instance can't be hibernated because it was not configured at launch for hibernation: %s", in.ID)
	}
	switch {
	case in.State == Running:
		return nil
	case in.State == Pending:
		// EC2 refuses hibernating an instance not yet ready for it with
		// UnsupportedOperation "Instance i-… is not ready to hibernate yet"
		// (the message's second word is the ID, as parsed by
		// instance-scheduler-on-aws's ec2_service.py).
		return apierr.New(apierr.UnsupportedOperation, "Instance %s is not ready to hibernate yet, please try again in a few minutes.", in.ID)
	case (in.State == Stopping || in.State == Stopped) && in.Hibernate:
		return nil
	}
	return apierr.New("IncorrectInstanceState", "This instance '%s' is not in a state from which it can be hibernated.", in.ID)
}
