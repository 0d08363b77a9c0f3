package volume

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"nubo/internal/apierr"
	"nubo/internal/kms"
	"nubo/internal/resource"
	"nubo/internal/store"
)

// Service keeps volume records: the API's half of the protocol with the
// agents. It writes intent (creating, attaching, detaching, deleting, a
// modification) and never touches data; the agent of the volume's Host
// makes it real and writes the outcome.
type Service struct {
	Store *store.Store
	Host  string   // where new volumes go (one host until the scheduler)
	Zones []string // the region's zones
	KMS   *kms.Service
	// Snapshots finds the snapshots CreateVolume restores (package snapshot).
	Snapshots Snapshots
	Now       func() time.Time
	// MaxVolumes is the quota of volumes per region; 0 means MaxPerRegion
	// (tests lower it).
	MaxVolumes int
}

const (
	// MaxPerRegion is the volumes an account may have in a region (EC2's
	// quota is storage per type; a count is what nubo can promise).
	MaxPerRegion = 5000
	// MaxAttachments is the block volumes one instance takes besides its
	// root: Nitro's 28 attachments less the root and the primary interface.
	MaxAttachments = 26
	// DataKeyBytes is an encrypted volume's key: fscrypt's AES-256-XTS
	// takes 512 bits.
	DataKeyBytes = 64
	maxAttempts  = 50
)

// The codes of the EBS API, as EC2 names them.
const (
	codeMalformed       = "InvalidVolumeID.Malformed"
	codeInUse           = "VolumeInUse"
	codeIncorrectState  = "IncorrectState"
	codeInstanceState   = "IncorrectInstanceState"
	codeZoneMismatch    = "InvalidVolume.ZoneMismatch"
	codeNoAttachment    = "InvalidAttachment.NotFound"
	codeModState        = "IncorrectModificationState"
	codeLimit           = "VolumeLimitExceeded"
	codeAttachmentLimit = "AttachmentLimitExceeded"
	codeAttributeValue  = "InvalidInstanceAttributeValue"
)

// errNoChange aborts an update that would write what is stored.
var errNoChange = errors.New("no change")

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

func notFound(id string) error {
	return apierr.New(resource.Volume.NotFoundCode, "The volume '%s' does not exist.", id)
}

// CheckID rejects a malformed volume ID as EC2 does.
func CheckID(id string) error {
	if id == "" {
		return apierr.Missing("VolumeId")
	}
	if !resource.ValidID(resource.Volume, id) {
		return apierr.New(codeMalformed, "Invalid id: \"%s\" (expecting \"vol-...\")", id)
	}
	return nil
}

func (s *Service) get(ctx context.Context, sc resource.Scope, id string) (Volume, int64, error) {
	if err := CheckID(id); err != nil {
		return Volume{}, 0, err
	}
	var v Volume
	rev, err := s.Store.Get(ctx, resource.Key(sc, resource.Volume, id), &v)
	if errors.Is(err, store.ErrNotFound) {
		return Volume{}, 0, notFound(id)
	}
	return v, rev, err
}

// Get reads one volume.
func (s *Service) Get(ctx context.Context, sc resource.Scope, id string) (Volume, error) {
	v, _, err := s.get(ctx, sc, id)
	return v, err
}

// List returns every volume in scope (root volumes included), ordered by ID.
func (s *Service) List(ctx context.Context, sc resource.Scope) ([]Volume, error) {
	vols, _, err := s.list(ctx, sc)
	return vols, err
}

// list also returns the newest mod revision it saw, for a transaction that
// must know no volume changed since.
func (s *Service) list(ctx context.Context, sc resource.Scope) ([]Volume, int64, error) {
	kvs, err := s.Store.List(ctx, resource.Prefix(sc, resource.Volume))
	if err != nil {
		return nil, 0, err
	}
	out := make([]Volume, len(kvs))
	var newest int64
	for i, kv := range kvs {
		if err := json.Unmarshal(kv.Value, &out[i]); err != nil {
			return nil, 0, fmt.Errorf("decoding %s: %w", kv.Key, err)
		}
		newest = max(newest, kv.ModRev)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, newest, nil
}

// Attached returns the block volumes attached (in any attachment state) to
// an instance, in attach order.
func (s *Service) Attached(ctx context.Context, sc resource.Scope, instanceID string) ([]Volume, error) {
	vols, err := s.List(ctx, sc)
	if err != nil {
		return nil, err
	}
	return ByInstance(vols)[instanceID], nil
}

// ByInstance groups the block volumes that have an attachment by instance,
// each instance's in attach order (then by ID). Root volumes are not among
// them: the instance record names its root.
func ByInstance(vols []Volume) map[string][]Volume {
	out := map[string][]Volume{}
	for _, v := range vols {
		if v.IsBlock() && v.Attachment != nil && !v.Attachment.Root {
			out[v.Attachment.InstanceID] = append(out[v.Attachment.InstanceID], v)
		}
	}
	for _, vs := range out {
		sort.SliceStable(vs, func(i, j int) bool {
			a, b := vs[i].Attachment.AttachTime, vs[j].Attachment.AttachTime
			if !a.Equal(b) {
				return a.Before(b)
			}
			return vs[i].ID < vs[j].ID
		})
	}
	return out
}

// CreateSpec is a CreateVolume request.
type CreateSpec struct {
	Zone        string
	SizeGiB     int // 0: not given
	SnapshotID  string
	Type        string // "": DefaultType
	Iops        *int
	Throughput  *int
	Encrypted   *bool // nil: not given (encryption by default decides)
	KmsKeyID    string
	MultiAttach bool
	Tags        []resource.Tag
	ClientToken string `json:"-"`
	baseImageID string // the snapshot's, set by fromSnapshot
}

// plan is a validated CreateSpec.
type plan struct {
	Perf
	encrypted   bool
	keyARN      string
	baseImageID string
	checks      []store.Op // records that must not change before the volume's is written
}

// Validate checks a CreateVolume request without writing anything (but
// the account's default KMS key, made on first use).
func (s *Service) Validate(ctx context.Context, sc resource.Scope, spec CreateSpec) error {
	_, err := s.validate(ctx, sc, spec)
	return err
}

func (s *Service) validate(ctx context.Context, sc resource.Scope, spec CreateSpec) (plan, error) {
	if spec.MultiAttach {
		return plan{}, apierr.New(apierr.UnsupportedOperation, "Multi-Attach (MultiAttachEnabled) is not supported: a nubo volume attaches to one instance at a time.")
	}
	if spec.Zone == "" {
		return plan{}, apierr.Missing("AvailabilityZone")
	}
	if !slices.Contains(s.Zones, spec.Zone) {
		return plan{}, apierr.New("InvalidZone.NotFound", "The zone '%s' does not exist (AvailabilityZone). Zones of this region: %v.", spec.Zone, s.Zones)
	}
	var checks []store.Op
	if spec.SnapshotID != "" {
		check, err := s.fromSnapshot(ctx, sc, &spec)
		if err != nil {
			return plan{}, err
		}
		checks = append(checks, check)
	}
	if spec.SizeGiB == 0 {
		return plan{}, apierr.New(apierr.MissingParameter, "The request must contain the parameter Size or SnapshotId.")
	}
	typ := spec.Type
	if typ == "" {
		typ = DefaultType
	}
	r, err := Rule("VolumeType", typ)
	if err != nil {
		return plan{}, err
	}
	perf, err := r.Settle("Size", spec.SizeGiB, spec.Iops, spec.Throughput)
	if err != nil {
		return plan{}, err
	}
	p := plan{Perf: perf, checks: checks, baseImageID: spec.baseImageID}
	p.encrypted, p.keyARN, err = s.encryption(ctx, sc, spec)
	return p, err
}

// encryption decides whether a new volume is encrypted and with which key:
// Encrypted=true or the account's encryption by default (which wins over
// Encrypted=false, as in EC2); KmsKeyId, else the AWS managed alias/aws/ebs.
func (s *Service) encryption(ctx context.Context, sc resource.Scope, spec CreateSpec) (bool, string, error) {
	byDefault, err := s.EncryptionByDefault(ctx, sc)
	if err != nil {
		return false, "", err
	}
	enc := byDefault || spec.Encrypted != nil && *spec.Encrypted
	if spec.KmsKeyID != "" && !enc {
		return false, "", apierr.New("InvalidParameterDependency", "The parameter KmsKeyId requires the parameter Encrypted to be set.")
	}
	if !enc {
		return false, "", nil
	}
	if s.KMS == nil {
		return false, "", errors.New("encrypted volume asked and no key service is configured")
	}
	if spec.KmsKeyID == "" {
		arn, err := s.KMS.DefaultKey(ctx, sc)
		return true, arn, err
	}
	arn, err := s.KMS.Resolve(ctx, sc, spec.KmsKeyID)
	if errors.Is(err, kms.ErrNotFound) {
		return false, "", apierr.InvalidValue("KmsKeyId", spec.KmsKeyID,
			"No KMS key with this key ID, key ARN, alias or alias ARN exists in this account and Region.")
	}
	return true, arn, err
}

type idempotency struct {
	Hash     string `json:"hash"`
	VolumeID string `json:"volumeId"`
}

func (spec CreateSpec) hash() string {
	b, _ := json.Marshal(spec) // ClientToken is not part of it
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func idemKey(sc resource.Scope, token string) string {
	return store.Root + "idem/" + sc.Account + "/" + sc.Region + "/CreateVolume/" + token
}

// prior returns the volume an earlier CreateVolume with the same ClientToken
// made, if any.
func (s *Service) prior(ctx context.Context, sc resource.Scope, spec CreateSpec) (Volume, bool, error) {
	var p idempotency
	if _, err := s.Store.Get(ctx, idemKey(sc, spec.ClientToken), &p); errors.Is(err, store.ErrNotFound) {
		return Volume{}, false, nil
	} else if err != nil {
		return Volume{}, false, err
	}
	if p.Hash != spec.hash() {
		return Volume{}, false, apierr.New("IdempotentParameterMismatch",
			"The client token %s was used with different parameters.", spec.ClientToken)
	}
	v, err := s.Get(ctx, sc, p.VolumeID)
	return v, true, err
}

// Create records a new block volume, state creating, on s.Host; the agent
// there makes it and moves it to available (or error). Encrypted volumes
// get a data key of DataKeyBytes, stored only wrapped.
func (s *Service) Create(ctx context.Context, sc resource.Scope, spec CreateSpec) (Volume, error) {
	if spec.ClientToken != "" {
		if v, ok, err := s.prior(ctx, sc, spec); ok || err != nil {
			return v, err
		}
	}
	p, err := s.validate(ctx, sc, spec)
	if err != nil {
		return Volume{}, err
	}
	tags, err := resource.Merge("", nil, spec.Tags)
	if err != nil {
		return Volume{}, err
	}
	count, err := s.Store.Client().Get(ctx, resource.Prefix(sc, resource.Volume), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return Volume{}, fmt.Errorf("counting volumes: %w", err)
	}
	limit := s.MaxVolumes
	if limit == 0 {
		limit = MaxPerRegion
	}
	if count.Count >= int64(limit) {
		return Volume{}, apierr.New(codeLimit, "You have reached the limit of %d volumes in this Region; delete volumes you no longer need.", limit)
	}
	v := Volume{
		Meta:    resource.Meta{ID: resource.NewID(resource.Volume), Tags: tags, CreateTime: s.now()},
		Backing: BackingBlock, SizeGiB: p.SizeGiB, Zone: spec.Zone,
		Type: p.Type, Iops: p.Iops, Throughput: p.Throughput,
		State: Creating, Host: s.Host, Encrypted: p.encrypted, KmsKeyID: p.keyARN, SnapshotID: spec.SnapshotID,
		BaseImageID: p.baseImageID,
	}
	if p.encrypted {
		plain, wrapped, err := s.KMS.GenerateDataKey(ctx, sc, p.keyARN, DataKeyBytes)
		if err != nil {
			return Volume{}, fmt.Errorf("making the data key of %s: %w", v.ID, err)
		}
		clear(plain) // the agent unwraps its own copy
		v.WrappedKey = wrapped
	}
	ops := append([]store.Op{{Key: resource.Key(sc, resource.Volume, v.ID), Value: v}}, p.checks...)
	if spec.ClientToken != "" {
		ops = append(ops, store.Op{Key: idemKey(sc, spec.ClientToken), Value: idempotency{spec.hash(), v.ID}})
	}
	err = s.Store.Apply(ctx, ops...)
	if errors.Is(err, store.ErrConflict) && spec.ClientToken != "" {
		// The same token won meanwhile: answer what it made.
		if prev, ok, err := s.prior(ctx, sc, spec); ok || err != nil {
			return prev, err
		}
	}
	if err != nil {
		return Volume{}, fmt.Errorf("recording volume %s: %w", v.ID, snapshotChanged(spec, err))
	}
	return v, nil
}

// Delete asks for a volume's deletion (state deleting; the agent deletes
// the data, then the record). Deleting a volume being deleted succeeds.
func (s *Service) Delete(ctx context.Context, sc resource.Scope, id string) error {
	if err := CheckID(id); err != nil {
		return err
	}
	_, err := store.Update(ctx, s.Store, resource.Key(sc, resource.Volume, id), func(v *Volume) error {
		switch {
		case v.Attachment != nil:
			return apierr.New(codeInUse, "Volume %s is currently attached to %s.", v.ID, v.Attachment.InstanceID)
		case !v.IsBlock():
			return apierr.New(apierr.UnsupportedOperation,
				"Volume %s is a root volume kept as an overlay over its image; nubo cannot delete volumes of this kind through DeleteVolume yet.", v.ID)
		case v.State == Deleting:
			return errNoChange
		case v.State != Available && v.State != Error:
			return apierr.New(codeIncorrectState, "The volume '%s' is '%s'; only available volumes can be deleted.", v.ID, v.State)
		}
		v.State = Deleting
		return nil
	})
	switch {
	case errors.Is(err, errNoChange):
		return nil
	case errors.Is(err, store.ErrNotFound):
		return notFound(id)
	}
	return err
}

// instanceRecord is what this package reads of an instance record (package
// instance imports this one).
type instanceRecord struct {
	ID                  string `json:"id"`
	State               string `json:"state"`
	Zone                string `json:"zone"`
	Host                string `json:"host"`
	Machine             string `json:"machine"` // "": Host is the machine
	RootDevice          string `json:"rootDevice"`
	RootVolumeID        string `json:"rootVolumeId"`
	DeleteOnTermination bool   `json:"deleteOnTermination"`
}

// machine is where the instance runs (as instance.Instance.MachineName).
func (in instanceRecord) machine() string {
	if in.Machine != "" {
		return in.Machine
	}
	return in.Host
}

func (s *Service) instance(ctx context.Context, sc resource.Scope, id string) (instanceRecord, map[string]json.RawMessage, int64, error) {
	var in instanceRecord
	if !resource.ValidID(resource.Instance, id) {
		return in, nil, 0, apierr.New("InvalidInstanceID.Malformed", "Invalid id: \"%s\"", id)
	}
	var b json.RawMessage
	rev, err := s.Store.Get(ctx, resource.Key(sc, resource.Instance, id), &b)
	if errors.Is(err, store.ErrNotFound) {
		return in, nil, 0, apierr.New(resource.Instance.NotFoundCode, "The instance ID '%s' does not exist", id)
	} else if err != nil {
		return in, nil, 0, err
	}
	// raw keeps every field, for a write that changes one.
	var raw map[string]json.RawMessage
	if err := errors.Join(json.Unmarshal(b, &in), json.Unmarshal(b, &raw)); err != nil {
		return in, nil, 0, fmt.Errorf("decoding instance %s: %w", id, err)
	}
	return in, raw, rev, nil
}

// attachable checks a volume and an instance against AttachVolume's rules.
func attachable(v Volume, in instanceRecord) error {
	switch {
	case v.Attachment != nil:
		return apierr.New(codeInUse, "%s is already attached to an instance (%s).", v.ID, v.Attachment.InstanceID)
	case !v.IsBlock():
		return apierr.New(apierr.UnsupportedOperation,
			"Volume %s is a root volume kept as an overlay over its image; nubo cannot attach volumes of this kind yet.", v.ID)
	case v.State != Available:
		return apierr.New(codeIncorrectState, "%s is not 'available'.", v.ID)
	case in.State != "running" && in.State != "stopped": // instance.Running, instance.Stopped
		return apierr.New(codeInstanceState, "Instance '%s' is %s; volumes attach to running or stopped instances only.", in.ID, in.State)
	case v.Zone != in.Zone:
		return apierr.New(codeZoneMismatch, "The volume '%s' is not in the same availability zone as instance '%s' (%s, %s).", v.ID, in.ID, v.Zone, in.Zone)
	case v.Host != in.machine():
		return apierr.New(apierr.UnsupportedOperation, "Volume %s is kept on machine %s and instance %s runs on machine %s; volumes attach only to instances of their machine.",
			v.ID, v.Host, in.ID, in.machine())
	}
	return nil
}

// Attach asks for volumeID to be attached to instanceID at device. One
// transaction checks that neither the volume, nor the instance (a
// termination), nor any volume of the scope (another attachment at the
// same device) changed since they were read.
func (s *Service) Attach(ctx context.Context, sc resource.Scope, volumeID, instanceID, device string) (Attachment, error) {
	if err := CheckID(volumeID); err != nil {
		return Attachment{}, err
	}
	dev, ok := NormalizeDevice(device)
	if !ok {
		return Attachment{}, apierr.InvalidValue("Device", device, device+" is not a valid EBS device name (e.g. /dev/sdf to /dev/sdp).")
	}
	for attempt := 0; attempt < maxAttempts; attempt++ {
		v, vrev, err := s.get(ctx, sc, volumeID)
		if err != nil {
			return Attachment{}, err
		}
		in, _, irev, err := s.instance(ctx, sc, instanceID)
		if err != nil {
			return Attachment{}, err
		}
		if err := attachable(v, in); err != nil {
			return Attachment{}, err
		}
		vols, newest, err := s.list(ctx, sc)
		if err != nil {
			return Attachment{}, err
		}
		if root, _ := NormalizeDevice(in.RootDevice); SameDisk(root, dev) {
			return Attachment{}, apierr.New(apierr.InvalidParameterValue, "Attachment point %s is already in use", device)
		}
		others := ByInstance(vols)[in.ID]
		for _, o := range others {
			if SameDisk(o.Attachment.Device, dev) {
				return Attachment{}, apierr.New(apierr.InvalidParameterValue, "Attachment point %s is already in use", device)
			}
		}
		if len(others) >= MaxAttachments {
			return Attachment{}, apierr.New(codeAttachmentLimit, "Instance %s has %d volumes attached besides its root volume, the most it can take.", in.ID, len(others))
		}
		att := Attachment{InstanceID: in.ID, Device: dev, State: Attaching, AttachTime: s.now()}
		v.Attachment, v.State = &att, InUse
		err = s.Store.Apply(ctx,
			store.Op{Key: resource.Key(sc, resource.Volume, v.ID), Value: v, ModRev: vrev},
			store.Op{Key: resource.Key(sc, resource.Instance, in.ID), ModRev: irev, Check: true},
			store.Op{Key: resource.Prefix(sc, resource.Volume), ModRev: newest, Check: true, Prefix: true})
		if err == nil {
			return att, nil
		}
		if !errors.Is(err, store.ErrConflict) {
			return Attachment{}, fmt.Errorf("attaching %s to %s: %w", volumeID, instanceID, err)
		}
	}
	return Attachment{}, fmt.Errorf("attaching %s to %s: %w", volumeID, instanceID, store.ErrConflict)
}

// DetachSpec is a DetachVolume request; InstanceID and Device, when given,
// must name the volume's attachment.
type DetachSpec struct {
	VolumeID, InstanceID, Device string
	Force                        bool
}

// Detach asks for a volume's detachment (attachment state detaching; the
// agent takes the device away, removes the attachment and makes the
// volume available) and returns the attachment. A volume being detached
// answers with its attachment again; Force can be added then.
func (s *Service) Detach(ctx context.Context, sc resource.Scope, spec DetachSpec) (Attachment, error) {
	if err := CheckID(spec.VolumeID); err != nil {
		return Attachment{}, err
	}
	if spec.InstanceID != "" && !resource.ValidID(resource.Instance, spec.InstanceID) {
		return Attachment{}, apierr.New("InvalidInstanceID.Malformed", "Invalid id: \"%s\"", spec.InstanceID)
	}
	dev := spec.Device
	if dev != "" {
		var ok bool
		if dev, ok = NormalizeDevice(dev); !ok {
			return Attachment{}, apierr.InvalidValue("Device", spec.Device, spec.Device+" is not a valid EBS device name.")
		}
	}
	var out Attachment
	_, err := store.Update(ctx, s.Store, resource.Key(sc, resource.Volume, spec.VolumeID), func(v *Volume) error {
		a := v.Attachment
		switch {
		case a == nil:
			return apierr.New(codeIncorrectState, "Volume '%s' is in the '%s' state: it is not attached.", v.ID, v.State)
		case spec.InstanceID != "" && a.InstanceID != spec.InstanceID:
			return apierr.New(codeNoAttachment, "The volume '%s' is not attached to instance '%s'.", v.ID, spec.InstanceID)
		case dev != "" && a.Device != dev:
			return apierr.New(codeNoAttachment, "The volume '%s' is not attached at %s (it is at %s of %s).", v.ID, spec.Device, a.Device, a.InstanceID)
		case !v.IsBlock():
			return apierr.New(apierr.UnsupportedOperation,
				"Volume %s is the root volume of %s, an overlay over its image; nubo cannot detach root volumes of this kind yet.", v.ID, a.InstanceID)
		case a.Root:
			return apierr.New(apierr.UnsupportedOperation,
				"Volume %s is the root volume of %s; nubo does not detach root volumes (terminate the instance with DeleteOnTermination false to keep it).", v.ID, a.InstanceID)
		}
		a.State, a.Force = Detaching, a.Force || spec.Force
		out = *a
		return nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return Attachment{}, notFound(spec.VolumeID)
	}
	return out, err
}

// ModifySpec is a ModifyVolume request; nil or "": keep.
type ModifySpec struct {
	SizeGiB     *int
	Type        string
	Iops        *int
	Throughput  *int
	MultiAttach *bool
}

// Modify changes a volume's size, type and performance in its record at
// once and records the modification (modifying); the agent grows the
// volume and completes it.
func (s *Service) Modify(ctx context.Context, sc resource.Scope, id string, spec ModifySpec) (Volume, error) {
	if err := CheckID(id); err != nil {
		return Volume{}, err
	}
	if spec.MultiAttach != nil && *spec.MultiAttach {
		return Volume{}, apierr.New(apierr.UnsupportedOperation, "Multi-Attach (MultiAttachEnabled) is not supported: a nubo volume attaches to one instance at a time.")
	}
	if spec.SizeGiB == nil && spec.Type == "" && spec.Iops == nil && spec.Throughput == nil && spec.MultiAttach == nil {
		return Volume{}, apierr.New(apierr.MissingParameter, "The request must contain at least one of the parameters Size, VolumeType, Iops and Throughput.")
	}
	v, err := store.Update(ctx, s.Store, resource.Key(sc, resource.Volume, id), func(v *Volume) error {
		return s.modify(v, spec)
	})
	if errors.Is(err, store.ErrNotFound) {
		return Volume{}, notFound(id)
	}
	return v, err
}

func (s *Service) modify(v *Volume, spec ModifySpec) error {
	switch {
	case !v.IsBlock():
		return apierr.New(apierr.UnsupportedOperation,
			"Volume %s is a root volume kept as an overlay over its image; nubo cannot modify volumes of this kind yet.", v.ID)
	case v.State != Available && v.State != InUse:
		return apierr.New(codeIncorrectState, "The volume '%s' is '%s'; only available or in-use volumes can be modified.", v.ID, v.State)
	case v.Modification != nil && v.Modification.State == "modifying":
		return apierr.New(codeModState, "Volume %s is already being modified (since %s); wait until that modification ends.",
			v.ID, v.Modification.StartTime.Format(time.RFC3339))
	case v.Type == "standard" || spec.Type == "standard":
		return apierr.New(apierr.UnsupportedOperation, "Magnetic (standard) volumes cannot be modified; volume %s is %s.", v.ID, v.Type)
	}
	typ := v.Type
	if spec.Type != "" {
		typ = spec.Type
	}
	r, err := Rule("VolumeType", typ)
	if err != nil {
		return err
	}
	size := v.SizeGiB
	if spec.SizeGiB != nil {
		if *spec.SizeGiB < v.SizeGiB {
			return apierr.InvalidValue("Size", fmt.Sprint(*spec.SizeGiB), fmt.Sprintf("New size cannot be smaller than existing size (%d GiB).", v.SizeGiB))
		}
		size = *spec.SizeGiB
	}
	// Unset values stay as they are within a type; a new type takes its
	// defaults (3,000 IOPS for gp3, io1 and io2, as EC2 documents).
	iops, throughput := spec.Iops, spec.Throughput
	if iops == nil && r.IopsSettable {
		keep := 3000
		if typ == v.Type {
			keep = v.Iops
		}
		iops = &keep
	}
	if throughput == nil && r.ThroughputSettable && typ == v.Type {
		keep := v.Throughput
		throughput = &keep
	}
	p, err := r.Settle("Size", size, iops, throughput)
	if err != nil {
		return err
	}
	if p == (Perf{Type: v.Type, SizeGiB: v.SizeGiB, Iops: v.Iops, Throughput: v.Throughput}) {
		return apierr.New(apierr.InvalidParameterValue, "The modification leaves volume %s as it is (%s, %d GiB, %d IOPS, %d MiB/s).",
			v.ID, v.Type, v.SizeGiB, v.Iops, v.Throughput)
	}
	v.Modification = &Modification{
		State: "modifying", StartTime: s.now(),
		OriginalSizeGiB: v.SizeGiB, OriginalType: v.Type, OriginalIops: v.Iops, OriginalThroughput: v.Throughput,
		TargetSizeGiB: p.SizeGiB, TargetType: p.Type, TargetIops: p.Iops, TargetThroughput: p.Throughput,
	}
	v.SizeGiB, v.Type, v.Iops, v.Throughput = p.SizeGiB, p.Type, p.Iops, p.Throughput
	return nil
}

// SetDeleteOnTermination sets the DeleteOnTermination flag of the volume
// attached to an instance at device. For the root device the flag lives
// on the instance record (which the agent reads) and the root volume's
// attachment: both change in one transaction.
func (s *Service) SetDeleteOnTermination(ctx context.Context, sc resource.Scope, instanceID, device string, flag bool) error {
	dev, ok := NormalizeDevice(device)
	if !ok {
		return apierr.New(codeAttributeValue, "No device is currently mapped at %s.", device)
	}
	for attempt := 0; attempt < maxAttempts; attempt++ {
		in, raw, irev, err := s.instance(ctx, sc, instanceID)
		if err != nil {
			return err
		}
		if root, _ := NormalizeDevice(in.RootDevice); root == dev {
			err = s.setRootFlag(ctx, sc, in, raw, irev, flag)
		} else {
			err = s.setBlockFlag(ctx, sc, in, dev, flag)
		}
		if !errors.Is(err, store.ErrConflict) {
			return err
		}
	}
	return fmt.Errorf("setting DeleteOnTermination of %s on %s: %w", device, instanceID, store.ErrConflict)
}

func (s *Service) setRootFlag(ctx context.Context, sc resource.Scope, in instanceRecord, raw map[string]json.RawMessage, irev int64, flag bool) error {
	raw["deleteOnTermination"], _ = json.Marshal(flag)
	ops := []store.Op{{Key: resource.Key(sc, resource.Instance, in.ID), Value: raw, ModRev: irev}}
	v, vrev, err := s.get(ctx, sc, in.RootVolumeID)
	if e, ok := apierr.As(err); ok && e.Code == resource.Volume.NotFoundCode {
		err = nil // no root volume record (terminated): the instance's flag only
	} else if err == nil && v.Attachment != nil && v.Attachment.InstanceID == in.ID {
		v.Attachment.DeleteOnTermination = flag
		ops = append(ops, store.Op{Key: resource.Key(sc, resource.Volume, v.ID), Value: v, ModRev: vrev})
	}
	if err != nil {
		return err
	}
	return s.Store.Apply(ctx, ops...)
}

func (s *Service) setBlockFlag(ctx context.Context, sc resource.Scope, in instanceRecord, dev string, flag bool) error {
	vols, err := s.Attached(ctx, sc, in.ID)
	if err != nil {
		return err
	}
	for _, v := range vols {
		if v.Attachment.Device != dev {
			continue
		}
		_, err := store.Update(ctx, s.Store, resource.Key(sc, resource.Volume, v.ID), func(x *Volume) error {
			if x.Attachment == nil || x.Attachment.InstanceID != in.ID || x.Attachment.Device != dev {
				return store.ErrConflict // detached meanwhile: look again
			}
			x.Attachment.DeleteOnTermination = flag
			return nil
		})
		if errors.Is(err, store.ErrNotFound) {
			return store.ErrConflict
		}
		return err
	}
	return apierr.New(codeAttributeValue, "No device is currently mapped at %s on instance %s.", dev, in.ID)
}

// EncryptionKey is where a scope's EBS encryption-by-default setting lives.
func EncryptionKey(sc resource.Scope) string {
	return store.Root + "ebs/" + sc.Account + "/" + sc.Region + "/encryption-by-default"
}

type encryptionDefault struct {
	Enabled bool `json:"enabled"`
}

// EncryptionByDefault reports whether new volumes of the scope are
// encrypted whatever CreateVolume asks (off until enabled, as in EC2).
func (s *Service) EncryptionByDefault(ctx context.Context, sc resource.Scope) (bool, error) {
	var e encryptionDefault
	_, err := s.Store.GetRev(ctx, EncryptionKey(sc), &e)
	return e.Enabled, err
}

// SetEncryptionByDefault turns encryption by default on or off.
func (s *Service) SetEncryptionByDefault(ctx context.Context, sc resource.Scope, on bool) error {
	return s.Store.Apply(ctx, store.Op{Key: EncryptionKey(sc), Value: encryptionDefault{on}, ModRev: -1})
}
