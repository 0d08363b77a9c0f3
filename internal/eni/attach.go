package eni

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"nubo/internal/apierr"
	"nubo/internal/resource"
	"nubo/internal/store"
)

// instanceRecord is what this package reads of an instance record (package
// instance imports this one, not the other way round).
type instanceRecord struct {
	ID                 string `json:"id"`
	State              string `json:"state"`
	Zone               string `json:"zone"`
	VPCID              string `json:"vpcId"`
	InstanceType       string `json:"instanceType"`
	NetworkInterfaceID string `json:"networkInterfaceId,omitempty"`
}

func (s *Service) instance(ctx context.Context, sc resource.Scope, id string) (instanceRecord, int64, error) {
	var in instanceRecord
	if !resource.ValidID(resource.Instance, id) {
		return in, 0, apierr.New("InvalidInstanceID.Malformed", "Invalid id: \"%s\" (expecting \"i-...\")", id)
	}
	rev, err := s.Store.Get(ctx, resource.Key(sc, resource.Instance, id), &in)
	if errors.Is(err, store.ErrNotFound) {
		return in, 0, apierr.New(resource.Instance.NotFoundCode, "The instance ID '%s' does not exist", id)
	}
	return in, rev, err
}

// Attach asks for interface id to be attached to instanceID at
// deviceIndex and returns the attachment's ID. One transaction checks that
// neither the interface, nor the instance, nor any interface of the scope
// (another attachment at that index) changed since they were read.
func (s *Service) Attach(ctx context.Context, sc resource.Scope, id, instanceID string, deviceIndex int) (string, error) {
	if deviceIndex < 1 || deviceIndex > MaxDeviceIndex {
		return "", apierr.InvalidValue("DeviceIndex", fmt.Sprint(deviceIndex),
			fmt.Sprintf("Device index 0 is the primary interface, made with the instance; attach at 1 to %d.", MaxDeviceIndex))
	}
	for attempt := 0; attempt < maxAttempts; attempt++ {
		n, rev, err := s.get(ctx, sc, id)
		if err != nil {
			return "", err
		}
		in, irev, err := s.instance(ctx, sc, instanceID)
		if err != nil {
			return "", err
		}
		all, newest, err := s.list(ctx, sc)
		if err != nil {
			return "", err
		}
		if err := attachable(n, in, OfInstance(all, in.ID), deviceIndex); err != nil {
			return "", err
		}
		att := Attachment{ID: resource.NewID(AttachmentKind), InstanceID: in.ID, DeviceIndex: deviceIndex,
			Status: Attaching, AttachTime: s.now()}
		n.Attachment, n.Status = &att, InUse
		err = s.Store.Apply(ctx,
			store.Op{Key: Key(sc, n.ID), Value: n, ModRev: rev},
			store.Op{Key: resource.Key(sc, resource.Instance, in.ID), ModRev: irev, Check: true},
			store.Op{Key: resource.Prefix(sc, Kind), ModRev: newest, Check: true, Prefix: true})
		if err == nil {
			return att.ID, nil
		}
		if !errors.Is(err, store.ErrConflict) {
			return "", fmt.Errorf("attaching %s to %s: %w", id, instanceID, err)
		}
	}
	return "", fmt.Errorf("attaching %s to %s: %w", id, instanceID, store.ErrConflict)
}

// attachable checks AttachNetworkInterface's rules; mine are the
// instance's interfaces now.
func attachable(n Interface, in instanceRecord, mine []Interface, deviceIndex int) error {
	maxIfcs, maxIPs := limits(in.InstanceType)
	used := len(mine)
	if in.NetworkInterfaceID == "" {
		used++ // launched before interfaces were records: eth0 is still there
	}
	switch {
	case n.Attachment != nil:
		return apierr.New("InvalidNetworkInterface.InUse", "Interface: [%s] in use.", n.ID)
	case in.State != "running" && in.State != "stopped":
		return apierr.New("IncorrectInstanceState", "Instance '%s' is %s; interfaces attach to running or stopped instances only.", in.ID, in.State)
	case n.Zone != in.Zone:
		return apierr.New(apierr.InvalidParameterCombination,
			"You may not attach a network interface to an instance if they are not in the same availability zone (%s is in %s, %s in %s).", n.ID, n.Zone, in.ID, in.Zone)
	case n.VPCID != in.VPCID:
		return apierr.New(apierr.InvalidParameterCombination,
			"Interface %s is in %s and instance %s in %s: nubo attaches interfaces of the instance's own VPC only.", n.ID, n.VPCID, in.ID, in.VPCID)
	case used >= maxIfcs:
		return apierr.New("AttachmentLimitExceeded", "Interface count %d exceeds the limit for %s (%d).", used+1, in.InstanceType, maxIfcs)
	case len(n.PrivateIPs) > maxIPs:
		return ipLimit(len(n.PrivateIPs), maxIPs, "an interface of "+in.InstanceType)
	}
	for _, m := range mine {
		if m.Attachment.DeviceIndex == deviceIndex {
			return apierr.New(apierr.InvalidParameterValue, "Instance '%s' already has an interface attached at device index '%d'.", in.ID, deviceIndex)
		}
	}
	return nil
}

// Detach asks for an attachment's end (detaching; the agent takes the card
// out of the instance and makes the interface available). The primary
// interface cannot be detached. A detaching interface answers again. (EC2's
// Force is for an instance OS that does not let go; nubo's always does.)
func (s *Service) Detach(ctx context.Context, sc resource.Scope, attachmentID string) error {
	if !resource.ValidID(AttachmentKind, attachmentID) {
		return apierr.New("InvalidAttachmentID.Malformed", "Invalid id: \"%s\" (expecting \"eni-attach-...\")", attachmentID)
	}
	all, err := s.List(ctx, sc)
	if err != nil {
		return err
	}
	id := ""
	for _, n := range all {
		if n.Attachment != nil && n.Attachment.ID == attachmentID {
			id = n.ID
		}
	}
	if id == "" {
		return apierr.New("InvalidAttachmentID.NotFound", "The attachment ID '%s' does not exist", attachmentID)
	}
	_, err = store.Update(ctx, s.Store, Key(sc, id), func(n *Interface) error {
		a := n.Attachment
		switch {
		case a == nil || a.ID != attachmentID:
			return apierr.New("InvalidAttachmentID.NotFound", "The attachment ID '%s' does not exist", attachmentID)
		case a.DeviceIndex == 0:
			return apierr.New("OperationNotPermitted", "The network interface at device index 0 cannot be detached.")
		}
		a.Status = Detaching
		return nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return apierr.New("InvalidAttachmentID.NotFound", "The attachment ID '%s' does not exist", attachmentID)
	}
	return err
}

// instanceGroupsOp rewrites the securityGroups of the instance record at
// key (read at rev) in raw form, so that every other field stays as it is.
func instanceGroupsOp(key string, raw map[string]json.RawMessage, rev int64, groups []string) (store.Op, error) {
	b, err := json.Marshal(groups)
	if err != nil {
		return store.Op{}, err
	}
	raw["securityGroups"] = b
	return store.Op{Key: key, Value: raw, ModRev: rev}, nil
}

// Launch is how a new instance takes interfaces.
type Launch struct {
	InstanceID, Zone, VPCID string
	Time                    time.Time
	// Tags go on the interfaces the launch makes (TagSpecification
	// network-interface).
	Tags map[string]string
}

// Attached marks n attached to the launching instance at deviceIndex.
func (l Launch) Attached(n *Interface, deviceIndex int, deleteOnTermination bool) {
	n.Status = InUse
	n.Attachment = &Attachment{ID: resource.NewID(AttachmentKind), InstanceID: l.InstanceID, DeviceIndex: deviceIndex,
		Status: Attached, AttachTime: l.Time, DeleteOnTermination: deleteOnTermination}
}

// Take returns an existing interface attached to a launching instance and
// the write that does it, checked against the interface's revision.
func (s *Service) Take(ctx context.Context, sc resource.Scope, id string, l Launch, deviceIndex int, deleteOnTermination bool) (Interface, store.Op, error) {
	n, rev, err := s.get(ctx, sc, id)
	if err != nil {
		return Interface{}, store.Op{}, err
	}
	switch {
	case n.Attachment != nil:
		return Interface{}, store.Op{}, apierr.New("InvalidNetworkInterface.InUse", "Interface: [%s] in use.", n.ID)
	case n.Zone != l.Zone:
		return Interface{}, store.Op{}, apierr.New(apierr.InvalidParameterCombination,
			"Network interface %s is in %s and the instance in %s: they must be in the same availability zone.", n.ID, n.Zone, l.Zone)
	case l.VPCID != "" && n.VPCID != l.VPCID:
		return Interface{}, store.Op{}, apierr.New(apierr.InvalidParameterCombination,
			"Network interface %s is in %s, the instance's other interfaces in %s: nubo attaches interfaces of one VPC.", n.ID, n.VPCID, l.VPCID)
	}
	l.Attached(&n, deviceIndex, deleteOnTermination)
	return n, store.Op{Key: Key(sc, n.ID), Value: n, ModRev: rev}, nil
}
