package snapshot

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"time"
	"unicode/utf8"

	clientv3 "go.etcd.io/etcd/client/v3"

	"nubo/internal/apierr"
	"nubo/internal/kms"
	"nubo/internal/resource"
	"nubo/internal/snapstore"
	"nubo/internal/store"
	"nubo/internal/volume"
)

// Service keeps snapshot records: the API's half of the protocol with the
// agents. It never touches data.
type Service struct {
	Store   *store.Store
	Volumes *volume.Service // volume records; encryption by default
	KMS     *kms.Service
	Now     func() time.Time
	// InUse returns the AMI that uses a snapshot, "" if none: DeleteSnapshot
	// refuses those (InvalidSnapshot.InUse); ami.Maker.SnapshotInUse.
	InUse func(ctx context.Context, sc resource.Scope, id string) (string, error)
	// MaxSnapshots is the quota per region; 0 means MaxPerRegion.
	MaxSnapshots int
}

const (
	// MaxPerRegion is EC2's default quota of snapshots per Region.
	MaxPerRegion   = 100000
	maxDescription = 255
)

// The codes of the snapshot API, as EC2 names them.
const (
	codeMalformed      = "InvalidSnapshotID.Malformed"
	codeInUse          = "InvalidSnapshot.InUse"
	codeIncorrectState = "IncorrectState"
	codeInstanceState  = "IncorrectInstanceState"
	codeLimit          = "SnapshotLimitExceeded"
	codeNotPermitted   = "OperationNotPermitted"
)

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

func notFound(id string) error {
	return apierr.New(resource.Snapshot.NotFoundCode, "The snapshot '%s' does not exist.", id)
}

// CheckID rejects a malformed snapshot ID as EC2 does.
func CheckID(id string) error {
	if id == "" {
		return apierr.Missing("SnapshotId")
	}
	if !resource.ValidID(resource.Snapshot, id) {
		return apierr.New(codeMalformed, "Invalid id: \"%s\" (expecting \"snap-...\")", id)
	}
	return nil
}

// Key is where snapshot id's record lives.
func Key(sc resource.Scope, id string) string { return resource.Key(sc, resource.Snapshot, id) }

func (s *Service) get(ctx context.Context, sc resource.Scope, id string) (Snapshot, int64, error) {
	if err := CheckID(id); err != nil {
		return Snapshot{}, 0, err
	}
	var x Snapshot
	rev, err := s.Store.Get(ctx, Key(sc, id), &x)
	if errors.Is(err, store.ErrNotFound) || err == nil && x.State == Deleting {
		return Snapshot{}, 0, notFound(id)
	}
	return x, rev, err
}

// Get reads one snapshot.
func (s *Service) Get(ctx context.Context, sc resource.Scope, id string) (Snapshot, error) {
	x, _, err := s.get(ctx, sc, id)
	return x, err
}

// List returns the snapshots of the scope (not those being deleted), by ID.
func (s *Service) List(ctx context.Context, sc resource.Scope) ([]Snapshot, error) {
	all, err := s.all(ctx, sc)
	return slices.DeleteFunc(all, func(x Snapshot) bool { return x.State == Deleting }), err
}

func (s *Service) all(ctx context.Context, sc resource.Scope) ([]Snapshot, error) {
	kvs, err := s.Store.List(ctx, resource.Prefix(sc, resource.Snapshot))
	if err != nil {
		return nil, err
	}
	out := make([]Snapshot, len(kvs))
	for i, kv := range kvs {
		if err := json.Unmarshal(kv.Value, &out[i]); err != nil {
			return nil, fmt.Errorf("decoding %s: %w", kv.Key, err)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func checkDescription(d string) error {
	if utf8.RuneCountInString(d) > maxDescription {
		return apierr.InvalidValue("Description", d, fmt.Sprintf("Descriptions are at most %d characters long.", maxDescription))
	}
	return nil
}

// room fails when n more snapshots would pass the quota.
func (s *Service) room(ctx context.Context, sc resource.Scope, n int) error {
	count, err := s.Store.Client().Get(ctx, resource.Prefix(sc, resource.Snapshot), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return fmt.Errorf("counting snapshots: %w", err)
	}
	limit := s.MaxSnapshots
	if limit == 0 {
		limit = MaxPerRegion
	}
	if count.Count+int64(n) > int64(limit) {
		return apierr.New(codeLimit, "The maximum number of snapshots (%d) in this Region has been reached; delete snapshots you no longer need.", limit)
	}
	return nil
}

// snapshottable checks a volume against CreateSnapshot's rules.
func snapshottable(v volume.Volume) error {
	switch {
	case !v.IsBlock():
		return apierr.New(apierr.UnsupportedOperation,
			"Volume %s is a root volume kept as an overlay over its image; nubo cannot snapshot volumes of this kind yet (only block volumes, made by CreateVolume).", v.ID)
	case v.State != volume.Available && v.State != volume.InUse:
		return apierr.New(codeIncorrectState, "The volume '%s' is '%s'; only available or in-use volumes can be snapshotted.", v.ID, v.State)
	}
	return nil
}

// lineageOf picks the lineage of a new snapshot of v: the newest one of a
// snapshot of v, or of the snapshot v was restored from, under the same
// key (so the chunks they hold are not stored again); else a new lineage
// with a new data key, wrapped by v's key.
func (s *Service) lineageOf(ctx context.Context, sc resource.Scope, v volume.Volume, all []Snapshot) (string, []byte, error) {
	var best *Snapshot
	for i, x := range all {
		related := x.VolumeID == v.ID || v.SnapshotID != "" && x.ID == v.SnapshotID
		if related && x.Lineage != "" && x.Encrypted == v.Encrypted && x.KmsKeyID == v.KmsKeyID &&
			(best == nil || x.CreateTime.After(best.CreateTime)) {
			best = &all[i]
		}
	}
	if best != nil {
		return best.Lineage, best.WrappedKey, nil
	}
	return s.newLineage(ctx, sc, v.Encrypted, v.KmsKeyID)
}

func (s *Service) newLineage(ctx context.Context, sc resource.Scope, encrypted bool, keyARN string) (string, []byte, error) {
	if !encrypted {
		return resource.NewUUID(), nil, nil
	}
	if s.KMS == nil {
		return "", nil, errors.New("encrypted snapshot asked and no key service is configured")
	}
	plain, wrapped, err := s.KMS.GenerateDataKey(ctx, sc, keyARN, snapstore.KeySize)
	if err != nil {
		return "", nil, fmt.Errorf("making a snapshot data key: %w", err)
	}
	clear(plain) // the agent unwraps its own copy
	return resource.NewUUID(), wrapped, nil
}

// CreateSpec is a CreateSnapshot request.
type CreateSpec struct {
	VolumeID    string
	Description string
	Tags        []resource.Tag
}

// Validate checks a CreateSnapshot request without writing anything.
func (s *Service) Validate(ctx context.Context, sc resource.Scope, spec CreateSpec) error {
	_, err := s.volumeOf(ctx, sc, spec)
	return err
}

func (s *Service) volumeOf(ctx context.Context, sc resource.Scope, spec CreateSpec) (volume.Volume, error) {
	if err := checkDescription(spec.Description); err != nil {
		return volume.Volume{}, err
	}
	v, err := s.Volumes.Get(ctx, sc, spec.VolumeID)
	if err != nil {
		return volume.Volume{}, err
	}
	return v, snapshottable(v)
}

// Create records a pending snapshot of a block volume on the volume's
// host; the agent there takes it.
func (s *Service) Create(ctx context.Context, sc resource.Scope, spec CreateSpec) (Snapshot, error) {
	v, err := s.volumeOf(ctx, sc, spec)
	if err != nil {
		return Snapshot{}, err
	}
	tags, err := resource.Merge("", nil, spec.Tags)
	if err != nil {
		return Snapshot{}, err
	}
	if err := s.room(ctx, sc, 1); err != nil {
		return Snapshot{}, err
	}
	all, err := s.all(ctx, sc)
	if err != nil {
		return Snapshot{}, err
	}
	x, err := s.newSnapshot(ctx, sc, v, all, spec.Description, tags)
	if err != nil {
		return Snapshot{}, err
	}
	if err := s.Store.Create(ctx, map[string]any{Key(sc, x.ID): x}); err != nil {
		return Snapshot{}, fmt.Errorf("recording snapshot %s: %w", x.ID, err)
	}
	return x, nil
}

func (s *Service) newSnapshot(ctx context.Context, sc resource.Scope, v volume.Volume, all []Snapshot, desc string, tags map[string]string) (Snapshot, error) {
	lineage, wrapped, err := s.lineageOf(ctx, sc, v, all)
	if err != nil {
		return Snapshot{}, err
	}
	return Snapshot{
		Meta:     resource.Meta{ID: resource.NewID(resource.Snapshot), Tags: tags, CreateTime: s.now()},
		VolumeID: v.ID, VolumeSizeGiB: v.SizeGiB, State: Pending, Description: desc, BaseImageID: v.BaseImageID,
		Encrypted: v.Encrypted, KmsKeyID: v.KmsKeyID, Host: v.Host, Lineage: lineage, WrappedKey: wrapped,
	}, nil
}

// InstanceSpec is a CreateSnapshots request.
type InstanceSpec struct {
	InstanceID string
	// ExcludeBootVolume leaves the root volume out (root volumes that are
	// overlays, older instances', are always left out).
	ExcludeBootVolume  bool
	ExcludeDataVolumes []string
	Description        string
	Tags               []resource.Tag
	CopyTags           bool // CopyTagsFromSource=volume
}

// instanceRecord is what this package reads of an instance record.
type instanceRecord struct {
	ID           string `json:"id"`
	State        string `json:"state"`
	RootVolumeID string `json:"rootVolumeId"`
}

// ValidateForInstance checks a CreateSnapshots request without writing.
func (s *Service) ValidateForInstance(ctx context.Context, sc resource.Scope, spec InstanceSpec) error {
	_, err := s.instanceVolumes(ctx, sc, spec)
	return err
}

// CreateForInstance records a pending snapshot of every block volume
// attached to an instance, in one transaction, as one group: the agent
// takes them under one freeze of the instance, so they are consistent
// with each other (crash-consistent across volumes, as EC2's).
func (s *Service) CreateForInstance(ctx context.Context, sc resource.Scope, spec InstanceSpec) ([]Snapshot, error) {
	vols, err := s.instanceVolumes(ctx, sc, spec)
	if err != nil {
		return nil, err
	}
	if err := s.room(ctx, sc, len(vols)); err != nil {
		return nil, err
	}
	all, err := s.all(ctx, sc)
	if err != nil {
		return nil, err
	}
	group := make([]byte, 8)
	rand.Read(group)
	recs := map[string]any{}
	var out []Snapshot
	for _, v := range vols {
		var from map[string]string
		if spec.CopyTags {
			from = v.Tags
		}
		tags, err := resource.Merge("", maps.Clone(from), spec.Tags)
		if err != nil {
			return nil, err
		}
		x, err := s.newSnapshot(ctx, sc, v, all, spec.Description, tags)
		if err != nil {
			return nil, err
		}
		x.Group, x.InstanceID = hex.EncodeToString(group), spec.InstanceID
		recs[Key(sc, x.ID)] = x
		out = append(out, x)
	}
	if err := s.Store.Create(ctx, recs); err != nil {
		return nil, fmt.Errorf("recording the snapshots of %s: %w", spec.InstanceID, err)
	}
	return out, nil
}

// instanceVolumes returns the volumes CreateSnapshots snapshots: the block
// volumes attached to the instance, less those excluded.
func (s *Service) instanceVolumes(ctx context.Context, sc resource.Scope, spec InstanceSpec) ([]volume.Volume, error) {
	if err := checkDescription(spec.Description); err != nil {
		return nil, err
	}
	if spec.InstanceID == "" {
		return nil, apierr.Missing("InstanceSpecification.InstanceId")
	}
	if !resource.ValidID(resource.Instance, spec.InstanceID) {
		return nil, apierr.New("InvalidInstanceID.Malformed", "Invalid id: \"%s\"", spec.InstanceID)
	}
	var in instanceRecord
	if _, err := s.Store.Get(ctx, resource.Key(sc, resource.Instance, spec.InstanceID), &in); errors.Is(err, store.ErrNotFound) {
		return nil, apierr.New(resource.Instance.NotFoundCode, "The instance ID '%s' does not exist", spec.InstanceID)
	} else if err != nil {
		return nil, err
	}
	if in.State == "shutting-down" || in.State == "terminated" {
		return nil, apierr.New(codeInstanceState, "Instance '%s' is %s.", in.ID, in.State)
	}
	attached, err := s.Volumes.Attached(ctx, sc, in.ID)
	if err != nil {
		return nil, err
	}
	for _, id := range spec.ExcludeDataVolumes {
		if err := volume.CheckID(id); err != nil {
			return nil, err
		}
		if !slices.ContainsFunc(attached, func(v volume.Volume) bool { return v.ID == id }) {
			return nil, apierr.InvalidValue("ExcludeDataVolumeId", id, fmt.Sprintf("The volume is not attached to instance %s.", in.ID))
		}
	}
	var vols []volume.Volume
	if !spec.ExcludeBootVolume && in.RootVolumeID != "" {
		root, err := s.Volumes.Get(ctx, sc, in.RootVolumeID)
		if err == nil && root.IsRoot() && root.Attachment.InstanceID == in.ID {
			attached = append([]volume.Volume{root}, attached...)
		} else if _, ok := apierr.As(err); err != nil && !ok {
			return nil, err
		}
	}
	for _, v := range attached {
		if v.Attachment.Status() == volume.Attached && !slices.Contains(spec.ExcludeDataVolumes, v.ID) {
			vols = append(vols, v)
		}
	}
	switch {
	case len(attached) == 0:
		return nil, apierr.New(apierr.UnsupportedOperation,
			"Instance %s has no block volumes to snapshot (its root volume is excluded, or an overlay over its image as older instances have, which nubo cannot snapshot).", in.ID)
	case len(vols) == 0:
		return nil, apierr.New(apierr.InvalidParameterValue, "No volume of instance %s is left to snapshot (excluded, or still attaching or detaching).", in.ID)
	}
	for _, v := range vols {
		if err := snapshottable(v); err != nil {
			return nil, err
		}
	}
	return vols, nil
}

// Delete asks for a snapshot's deletion: it disappears from the API at
// once; the agent of its host removes its data (keeping the chunks other
// snapshots share), then its record.
func (s *Service) Delete(ctx context.Context, sc resource.Scope, id string) error {
	if err := CheckID(id); err != nil {
		return err
	}
	if s.InUse != nil {
		ami, err := s.InUse(ctx, sc, id)
		if err != nil {
			return err
		}
		if ami != "" {
			return apierr.New(codeInUse, "The snapshot %s is currently in use by %s", id, ami)
		}
	}
	_, err := store.Update(ctx, s.Store, Key(sc, id), func(x *Snapshot) error {
		if x.State == Deleting {
			return notFound(id)
		}
		x.State = Deleting
		return nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return notFound(id)
	}
	return err
}

// CopySpec is a CopySnapshot request.
type CopySpec struct {
	SourceID     string
	SourceRegion string
	Description  string
	Encrypted    bool
	KmsKeyID     string
	Tags         []resource.Tag
}

// ValidateCopy checks a CopySnapshot request without writing (but the
// account's default KMS key, made on first use).
func (s *Service) ValidateCopy(ctx context.Context, sc resource.Scope, spec CopySpec) error {
	_, _, _, err := s.planCopy(ctx, sc, spec)
	return err
}

// Copy records a pending copy of a completed snapshot in this Region. The
// copy stays in the source's lineage (sharing every chunk) when its
// encryption and key are the source's; otherwise the agent re-encrypts
// the chunks under a new data key.
func (s *Service) Copy(ctx context.Context, sc resource.Scope, spec CopySpec) (Snapshot, error) {
	src, enc, key, err := s.planCopy(ctx, sc, spec)
	if err != nil {
		return Snapshot{}, err
	}
	tags, err := resource.Merge("", nil, spec.Tags)
	if err != nil {
		return Snapshot{}, err
	}
	if err := s.room(ctx, sc, 1); err != nil {
		return Snapshot{}, err
	}
	lineage, wrapped := src.Lineage, src.WrappedKey
	if enc != src.Encrypted || key != src.KmsKeyID {
		if lineage, wrapped, err = s.newLineage(ctx, sc, enc, key); err != nil {
			return Snapshot{}, err
		}
	}
	desc := spec.Description
	if desc == "" {
		desc = fmt.Sprintf("[Copied %s from %s]", src.ID, sc.Region)
	}
	x := Snapshot{
		Meta:     resource.Meta{ID: resource.NewID(resource.Snapshot), Tags: tags, CreateTime: s.now()},
		VolumeID: CopyVolumeID, VolumeSizeGiB: src.VolumeSizeGiB, State: Pending, Description: desc,
		Encrypted: enc, KmsKeyID: key, Host: src.Host, Lineage: lineage, WrappedKey: wrapped, SourceSnapshotID: src.ID,
		BaseImageID: src.BaseImageID,
	}
	if err := s.Store.Create(ctx, map[string]any{Key(sc, x.ID): x}); err != nil {
		return Snapshot{}, fmt.Errorf("recording snapshot %s: %w", x.ID, err)
	}
	return x, nil
}

// planCopy returns the source of a copy, and whether and under which key
// the copy is encrypted: always when the source is (under its key unless
// KmsKeyId names another), else when asked or by the account's default.
func (s *Service) planCopy(ctx context.Context, sc resource.Scope, spec CopySpec) (src Snapshot, enc bool, key string, err error) {
	if spec.SourceRegion == "" {
		return src, false, "", apierr.Missing("SourceRegion")
	}
	if spec.SourceRegion != sc.Region {
		return src, false, "", apierr.New(apierr.UnsupportedOperation, "nubo copies snapshots within its Region (%s) only; SourceRegion %s is another.", sc.Region, spec.SourceRegion)
	}
	if err := checkDescription(spec.Description); err != nil {
		return src, false, "", err
	}
	if spec.SourceID == "" {
		return src, false, "", apierr.Missing("SourceSnapshotId")
	}
	if src, _, err = s.get(ctx, sc, spec.SourceID); err != nil {
		return src, false, "", err
	}
	if src.State != Completed {
		return src, false, "", apierr.New(codeIncorrectState, "Snapshot '%s' is '%s'; only completed snapshots can be copied.", src.ID, src.State)
	}
	if spec.KmsKeyID != "" && !spec.Encrypted {
		return src, false, "", apierr.New("InvalidParameterDependency", "The parameter KmsKeyId requires the parameter Encrypted to be set.")
	}
	byDefault, err := s.Volumes.EncryptionByDefault(ctx, sc)
	if err != nil {
		return src, false, "", err
	}
	enc = src.Encrypted || spec.Encrypted || byDefault
	switch {
	case !enc:
	case spec.KmsKeyID != "":
		if key, err = s.KMS.Resolve(ctx, sc, spec.KmsKeyID); errors.Is(err, kms.ErrNotFound) {
			return src, false, "", apierr.InvalidValue("KmsKeyId", spec.KmsKeyID,
				"No KMS key with this key ID, key ARN, alias or alias ARN exists in this account and Region.")
		}
	case src.Encrypted:
		key = src.KmsKeyID
	default:
		key, err = s.KMS.DefaultKey(ctx, sc)
	}
	return src, enc, key, err
}

// FromSnapshot tells CreateVolume about a snapshot it restores: completed
// ones only.
func (s *Service) FromSnapshot(ctx context.Context, sc resource.Scope, id string) (volume.FromSnapshot, error) {
	x, rev, err := s.get(ctx, sc, id)
	if err != nil {
		return volume.FromSnapshot{}, err
	}
	if x.State != Completed {
		return volume.FromSnapshot{}, apierr.New(codeIncorrectState, "Snapshot '%s' is '%s'; volumes are made of completed snapshots only.", id, x.State)
	}
	return volume.FromSnapshot{SizeGiB: x.VolumeSizeGiB, Encrypted: x.Encrypted, KmsKeyID: x.KmsKeyID, Host: x.Host, BaseImageID: x.BaseImageID,
		Check: store.Op{Key: Key(sc, id), ModRev: rev, Check: true}}, nil
}

var _ volume.Snapshots = (*Service)(nil)
