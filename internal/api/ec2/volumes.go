package ec2

import (
	"context"
	"strconv"
	"time"

	"nubo/internal/api/ec2query"
	"nubo/internal/apierr"
	"nubo/internal/kms"
	"nubo/internal/resource"
	"nubo/internal/volume"
)

// Responses.

type attachmentItem struct {
	VolumeID            string `xml:"volumeId"`
	InstanceID          string `xml:"instanceId"`
	Device              string `xml:"device"`
	Status              string `xml:"status"`
	AttachTime          string `xml:"attachTime"`
	DeleteOnTermination bool   `xml:"deleteOnTermination"`
}

func attachmentOf(volumeID string, a volume.Attachment) attachmentItem {
	return attachmentItem{volumeID, a.InstanceID, a.Device, a.Status(), ec2query.Time(a.AttachTime), a.DeleteOnTermination}
}

// volumeFields are a volume as CreateVolume answers it; DescribeVolumes
// adds the attachments.
type volumeFields struct {
	VolumeID           string                       `xml:"volumeId"`
	Size               int                          `xml:"size"`
	SnapshotID         string                       `xml:"snapshotId"` // empty element when none, as EC2
	AvailabilityZone   string                       `xml:"availabilityZone"`
	Status             string                       `xml:"status"`
	CreateTime         string                       `xml:"createTime"`
	TagSet             *ec2query.List[ec2query.Tag] `xml:"tagSet"`
	VolumeType         string                       `xml:"volumeType"`
	Iops               int                          `xml:"iops,omitempty"`
	Encrypted          bool                         `xml:"encrypted"`
	KmsKeyID           string                       `xml:"kmsKeyId,omitempty"`
	MultiAttachEnabled bool                         `xml:"multiAttachEnabled"`
	Throughput         int                          `xml:"throughput,omitempty"`
}

type volumeItem struct {
	volumeFields
	AttachmentSet ec2query.List[attachmentItem] `xml:"attachmentSet"`
	FastRestored  bool                          `xml:"fastRestored"`
}

func fieldsOf(v volume.Volume) volumeFields {
	f := volumeFields{VolumeID: v.ID, Size: v.SizeGiB, SnapshotID: v.SnapshotID, AvailabilityZone: v.Zone, Status: v.State,
		CreateTime: ec2query.Time(v.CreateTime), TagSet: ec2query.TagSet(v.Tags), VolumeType: v.Type,
		Encrypted: v.Encrypted, KmsKeyID: v.KmsKeyID}
	if volume.ShowsIops(v.Type) {
		f.Iops = v.Iops
	}
	if volume.ShowsThroughput(v.Type) {
		f.Throughput = v.Throughput
	}
	return f
}

func itemOf(v volume.Volume) volumeItem {
	it := volumeItem{volumeFields: fieldsOf(v)}
	if v.Attachment != nil {
		it.AttachmentSet.Items = []attachmentItem{attachmentOf(v.ID, *v.Attachment)}
	}
	return it
}

type modificationItem struct {
	VolumeID                   string `xml:"volumeId"`
	ModificationState          string `xml:"modificationState"`
	StatusMessage              string `xml:"statusMessage,omitempty"`
	TargetSize                 int    `xml:"targetSize"`
	TargetIops                 int    `xml:"targetIops,omitempty"`
	TargetVolumeType           string `xml:"targetVolumeType"`
	TargetThroughput           int    `xml:"targetThroughput,omitempty"`
	TargetMultiAttachEnabled   bool   `xml:"targetMultiAttachEnabled"`
	OriginalSize               int    `xml:"originalSize"`
	OriginalIops               int    `xml:"originalIops,omitempty"`
	OriginalVolumeType         string `xml:"originalVolumeType"`
	OriginalThroughput         int    `xml:"originalThroughput,omitempty"`
	OriginalMultiAttachEnabled bool   `xml:"originalMultiAttachEnabled"`
	Progress                   int    `xml:"progress"`
	StartTime                  string `xml:"startTime"`
	EndTime                    string `xml:"endTime,omitempty"`
}

func modificationOf(id string, m volume.Modification) modificationItem {
	it := modificationItem{VolumeID: id, ModificationState: m.State, StatusMessage: m.StatusMessage,
		TargetSize: m.TargetSizeGiB, TargetVolumeType: m.TargetType, OriginalSize: m.OriginalSizeGiB, OriginalVolumeType: m.OriginalType,
		Progress: m.Progress, StartTime: ec2query.Time(m.StartTime)}
	if volume.ShowsIops(m.TargetType) {
		it.TargetIops = m.TargetIops
	}
	if volume.ShowsThroughput(m.TargetType) {
		it.TargetThroughput = m.TargetThroughput
	}
	if volume.ShowsIops(m.OriginalType) {
		it.OriginalIops = m.OriginalIops
	}
	if volume.ShowsThroughput(m.OriginalType) {
		it.OriginalThroughput = m.OriginalThroughput
	}
	if !m.EndTime.IsZero() {
		it.EndTime = ec2query.Time(m.EndTime)
	}
	return it
}

// Requests.

// optInt reads an optional integer parameter that must be at least 1.
func optInt(p ec2query.Params, name string) (*int, error) {
	n, ok, err := p.Int(name)
	if err != nil || !ok {
		return nil, err
	}
	if n < 1 {
		return nil, apierr.InvalidValue(name, strconv.Itoa(n), "It must be a positive integer.")
	}
	return &n, nil
}

// zoneParam reads AvailabilityZone, or AvailabilityZoneId as the region's zone name.
func (a *API) zoneParam(p ec2query.Params) (string, error) {
	zone, id := p.String("AvailabilityZone"), p.String("AvailabilityZoneId")
	switch {
	case zone != "" && id != "":
		return "", apierr.New(apierr.InvalidParameterCombination, "Give AvailabilityZone or AvailabilityZoneId, not both.")
	case id == "":
		return zone, nil
	}
	for _, z := range a.Region.Zones {
		if z.ID == id {
			return z.Name, nil
		}
	}
	return "", apierr.New("InvalidZone.NotFound", "The zone ID '%s' does not exist (AvailabilityZoneId).", id)
}

func (a *API) createSpec(p ec2query.Params) (volume.CreateSpec, error) {
	var spec volume.CreateSpec
	var err error
	if spec.Zone, err = a.zoneParam(p); err != nil {
		return spec, err
	}
	if spec.Zone == "" {
		return spec, apierr.Missing("AvailabilityZone")
	}
	size, err := optInt(p, "Size")
	if err != nil {
		return spec, err
	}
	if size != nil {
		spec.SizeGiB = *size
	}
	if spec.Iops, err = optInt(p, "Iops"); err != nil {
		return spec, err
	}
	if spec.Throughput, err = optInt(p, "Throughput"); err != nil {
		return spec, err
	}
	if spec.Encrypted, err = p.OptBool("Encrypted"); err != nil {
		return spec, err
	}
	if spec.MultiAttach, err = p.Bool("MultiAttachEnabled"); err != nil {
		return spec, err
	}
	spec.SnapshotID, spec.Type, spec.KmsKeyID = p.String("SnapshotId"), p.String("VolumeType"), p.String("KmsKeyId")
	spec.ClientToken = p.String("ClientToken")
	if len(spec.ClientToken) > 64 {
		return spec, apierr.InvalidValue("ClientToken", spec.ClientToken, "It must be at most 64 ASCII characters.")
	}
	spec.Tags, err = parseTagSpecs(p, resource.Volume)
	return spec, err
}

// Actions.

func (a *API) createVolume(ctx context.Context, r *ec2query.Request) (any, error) {
	spec, err := a.createSpec(r.Params)
	if err != nil {
		return nil, err
	}
	if err := a.Volumes.Validate(ctx, a.scope(r), spec); err != nil {
		return nil, err
	}
	if err := r.CheckDryRun(); err != nil {
		return nil, err
	}
	v, err := a.Volumes.Create(ctx, a.scope(r), spec)
	if err != nil {
		return nil, err
	}
	return fieldsOf(v), nil
}

// checkVolumeIDs rejects malformed IDs before a lookup.
func checkVolumeIDs(ids []string) error {
	for _, id := range ids {
		if err := volume.CheckID(id); err != nil {
			return err
		}
	}
	return nil
}

// volumeAttachment is the one attachment of a volume, for filters.
func volumeAttachment(get func(volume.Attachment) string) ec2query.FilterFunc[volume.Volume] {
	return func(v volume.Volume) []string {
		if v.Attachment == nil {
			return nil
		}
		return one(get(*v.Attachment))
	}
}

// timeValues lets a time filter match EC2's rendering or RFC 3339.
func timeValues(t time.Time) []string {
	return []string{ec2query.Time(t), t.UTC().Format(time.RFC3339)}
}

var volumeFilters = map[string]ec2query.FilterFunc[volume.Volume]{
	"attachment.attach-time": func(v volume.Volume) []string {
		if v.Attachment == nil {
			return nil
		}
		return timeValues(v.Attachment.AttachTime)
	},
	"attachment.delete-on-termination": volumeAttachment(func(a volume.Attachment) string { return strconv.FormatBool(a.DeleteOnTermination) }),
	"attachment.device":                volumeAttachment(func(a volume.Attachment) string { return a.Device }),
	"attachment.instance-id":           volumeAttachment(func(a volume.Attachment) string { return a.InstanceID }),
	"attachment.status":                volumeAttachment(volume.Attachment.Status),
	"availability-zone":                func(v volume.Volume) []string { return one(v.Zone) },
	"create-time":                      func(v volume.Volume) []string { return timeValues(v.CreateTime) },
	"encrypted":                        func(v volume.Volume) []string { return one(strconv.FormatBool(v.Encrypted)) },
	"fast-restored":                    func(v volume.Volume) []string { return one("false") },
	"multi-attach-enabled":             func(v volume.Volume) []string { return one("false") },
	"size":                             func(v volume.Volume) []string { return one(strconv.Itoa(v.SizeGiB)) },
	"snapshot-id":                      func(v volume.Volume) []string { return one(v.SnapshotID) },
	"status":                           func(v volume.Volume) []string { return one(v.State) },
	"volume-id":                        func(v volume.Volume) []string { return one(v.ID) },
	"volume-type":                      func(v volume.Volume) []string { return one(v.Type) },
}

func volumeID(v volume.Volume) string          { return v.ID }
func volumeTags(v volume.Volume) ec2query.Tags { return v.Tags }

// selectVolumes reads VolumeId.N (each must exist) and lists the volumes of
// the scope, for the Describe calls to narrow.
func (a *API) selectVolumes(ctx context.Context, r *ec2query.Request) ([]volume.Volume, error) {
	ids := r.Params.Strings("VolumeId")
	if err := checkVolumeIDs(ids); err != nil {
		return nil, err
	}
	all, err := a.Volumes.List(ctx, a.scope(r))
	if err != nil {
		return nil, err
	}
	have := map[string]bool{}
	for _, v := range all {
		have[v.ID] = true
	}
	for _, id := range ids {
		if !have[id] {
			return nil, apierr.New(resource.Volume.NotFoundCode, "The volume '%s' does not exist.", id)
		}
	}
	return all, nil
}

func (a *API) describeVolumes(ctx context.Context, r *ec2query.Request) (any, error) {
	if r.Params.Has("MaxResults") && len(r.Params.Strings("VolumeId")) > 0 {
		return nil, apierr.New(apierr.InvalidParameterCombination, "The parameter volumeSet cannot be used with the parameter maxResults")
	}
	all, err := a.selectVolumes(ctx, r)
	if err != nil {
		return nil, err
	}
	vs, next, err := describe(r, resource.Volume, "VolumeId", all, volumeID, volumeFilters, volumeTags)
	if err != nil {
		return nil, err
	}
	items := make([]volumeItem, len(vs))
	for i, v := range vs {
		items[i] = itemOf(v)
	}
	return struct {
		VolumeSet ec2query.List[volumeItem] `xml:"volumeSet"`
		NextToken string                    `xml:"nextToken,omitempty"`
	}{ec2query.ListOf(items), next}, nil
}

func (a *API) deleteVolume(ctx context.Context, r *ec2query.Request) (any, error) {
	return onID(r, "VolumeId", func(id string) error {
		_, err := a.Volumes.Get(ctx, a.scope(r), id)
		return err
	}, func(id string) error { return a.Volumes.Delete(ctx, a.scope(r), id) })
}

func (a *API) attachVolume(ctx context.Context, r *ec2query.Request) (any, error) {
	p := r.Params
	volID, err := p.Required("VolumeId")
	if err != nil {
		return nil, err
	}
	instID, err := p.Required("InstanceId")
	if err != nil {
		return nil, err
	}
	dev, err := p.Required("Device")
	if err != nil {
		return nil, err
	}
	if _, ok := volume.NormalizeDevice(dev); !ok {
		return nil, apierr.InvalidValue("Device", dev, dev+" is not a valid EBS device name (e.g. /dev/sdf to /dev/sdp).")
	}
	if _, err := a.Volumes.Get(ctx, a.scope(r), volID); err != nil {
		return nil, err
	}
	if _, err := a.Instances.Get(ctx, r.Account, instID); err != nil {
		return nil, err
	}
	if err := r.CheckDryRun(); err != nil {
		return nil, err
	}
	att, err := a.Volumes.Attach(ctx, a.scope(r), volID, instID, dev)
	if err != nil {
		return nil, err
	}
	return attachmentOf(volID, att), nil
}

func (a *API) detachVolume(ctx context.Context, r *ec2query.Request) (any, error) {
	p := r.Params
	spec := volume.DetachSpec{InstanceID: p.String("InstanceId"), Device: p.String("Device")}
	var err error
	if spec.VolumeID, err = p.Required("VolumeId"); err != nil {
		return nil, err
	}
	if spec.Force, err = p.Bool("Force"); err != nil {
		return nil, err
	}
	if _, err := a.Volumes.Get(ctx, a.scope(r), spec.VolumeID); err != nil {
		return nil, err
	}
	if err := r.CheckDryRun(); err != nil {
		return nil, err
	}
	att, err := a.Volumes.Detach(ctx, a.scope(r), spec)
	if err != nil {
		return nil, err
	}
	return attachmentOf(spec.VolumeID, att), nil
}

func (a *API) modifyVolume(ctx context.Context, r *ec2query.Request) (any, error) {
	p := r.Params
	id, err := p.Required("VolumeId")
	if err != nil {
		return nil, err
	}
	spec := volume.ModifySpec{Type: p.String("VolumeType")}
	if spec.SizeGiB, err = optInt(p, "Size"); err != nil {
		return nil, err
	}
	if spec.Iops, err = optInt(p, "Iops"); err != nil {
		return nil, err
	}
	if spec.Throughput, err = optInt(p, "Throughput"); err != nil {
		return nil, err
	}
	if spec.MultiAttach, err = p.OptBool("MultiAttachEnabled"); err != nil {
		return nil, err
	}
	if spec.Type != "" {
		if _, err := volume.Rule("VolumeType", spec.Type); err != nil {
			return nil, err
		}
	}
	if _, err := a.Volumes.Get(ctx, a.scope(r), id); err != nil {
		return nil, err
	}
	if err := r.CheckDryRun(); err != nil {
		return nil, err
	}
	v, err := a.Volumes.Modify(ctx, a.scope(r), id, spec)
	if err != nil {
		return nil, err
	}
	return struct {
		VolumeModification modificationItem `xml:"volumeModification"`
	}{modificationOf(v.ID, *v.Modification)}, nil
}

// volumeMod is a volume's latest modification, for filters and pages.
type volumeMod struct {
	id string
	m  volume.Modification
}

var modificationFilters = map[string]ec2query.FilterFunc[volumeMod]{
	"modification-state":            func(x volumeMod) []string { return one(x.m.State) },
	"original-iops":                 func(x volumeMod) []string { return one(strconv.Itoa(x.m.OriginalIops)) },
	"original-size":                 func(x volumeMod) []string { return one(strconv.Itoa(x.m.OriginalSizeGiB)) },
	"original-volume-type":          func(x volumeMod) []string { return one(x.m.OriginalType) },
	"original-throughput":           func(x volumeMod) []string { return one(strconv.Itoa(x.m.OriginalThroughput)) },
	"start-time":                    func(x volumeMod) []string { return timeValues(x.m.StartTime) },
	"target-iops":                   func(x volumeMod) []string { return one(strconv.Itoa(x.m.TargetIops)) },
	"target-size":                   func(x volumeMod) []string { return one(strconv.Itoa(x.m.TargetSizeGiB)) },
	"target-volume-type":            func(x volumeMod) []string { return one(x.m.TargetType) },
	"target-throughput":             func(x volumeMod) []string { return one(strconv.Itoa(x.m.TargetThroughput)) },
	"volume-id":                     func(x volumeMod) []string { return one(x.id) },
	"original-multi-attach-enabled": func(volumeMod) []string { return one("false") },
	"target-multi-attach-enabled":   func(volumeMod) []string { return one("false") },
}

func (a *API) describeVolumesModifications(ctx context.Context, r *ec2query.Request) (any, error) {
	all, err := a.selectVolumes(ctx, r)
	if err != nil {
		return nil, err
	}
	var mods []volumeMod
	byID := map[string]bool{}
	for _, v := range all {
		if v.Modification != nil {
			mods = append(mods, volumeMod{v.ID, *v.Modification})
			byID[v.ID] = true
		}
	}
	for _, id := range r.Params.Strings("VolumeId") {
		if !byID[id] {
			return nil, apierr.New("InvalidVolumeModification.NotFound", "Modification for volume '%s' does not exist.", id)
		}
	}
	ms, next, err := describe(r, resource.Volume, "VolumeId", mods, func(x volumeMod) string { return x.id }, modificationFilters, nil)
	if err != nil {
		return nil, err
	}
	items := make([]modificationItem, len(ms))
	for i, x := range ms {
		items[i] = modificationOf(x.id, x.m)
	}
	return struct {
		VolumeModificationSet ec2query.List[modificationItem] `xml:"volumeModificationSet"`
		NextToken             string                          `xml:"nextToken,omitempty"`
	}{ec2query.ListOf(items), next}, nil
}

type volumeStatusItem struct {
	VolumeID         string                  `xml:"volumeId"`
	AvailabilityZone string                  `xml:"availabilityZone"`
	VolumeStatus     volumeStatusInfo        `xml:"volumeStatus"`
	EventsSet        ec2query.List[struct{}] `xml:"eventsSet"`
	ActionsSet       ec2query.List[struct{}] `xml:"actionsSet"`
}

type volumeStatusInfo struct {
	Status  string                      `xml:"status"`
	Details ec2query.List[statusDetail] `xml:"details"`
}

// statusOf is a volume's health as EC2 reports it: I/O enabled once made,
// impaired if its making failed; performance only for provisioned IOPS.
func statusOf(v volume.Volume) volumeStatusInfo {
	status, io, perf := "ok", "passed", "not-applicable"
	switch v.State {
	case volume.Creating, volume.Deleting:
		status, io = "insufficient-data", "insufficient-data"
	case volume.Error:
		status, io = "impaired", "failed"
	}
	if v.Type == "io1" || v.Type == "io2" {
		perf = "normal"
		if status != "ok" {
			perf = "insufficient-data"
		}
	}
	return volumeStatusInfo{status, ec2query.ListOf([]statusDetail{{"io-enabled", io}, {"io-performance", perf}})}
}

var volumeStatusFilters = map[string]ec2query.FilterFunc[volume.Volume]{
	"availability-zone":          func(v volume.Volume) []string { return one(v.Zone) },
	"volume-status.status":       func(v volume.Volume) []string { return one(statusOf(v).Status) },
	"volume-status.details-name": func(v volume.Volume) []string { return []string{"io-enabled", "io-performance"} },
	"volume-status.details-status": func(v volume.Volume) []string {
		var out []string
		for _, d := range statusOf(v).Details.Items {
			out = append(out, d.Status)
		}
		return out
	},
	// No volume has events or actions.
	"action.code":        func(volume.Volume) []string { return nil },
	"action.description": func(volume.Volume) []string { return nil },
	"action.event-id":    func(volume.Volume) []string { return nil },
	"event.description":  func(volume.Volume) []string { return nil },
	"event.event-id":     func(volume.Volume) []string { return nil },
	"event.event-type":   func(volume.Volume) []string { return nil },
	"event.not-after":    func(volume.Volume) []string { return nil },
	"event.not-before":   func(volume.Volume) []string { return nil },
}

func (a *API) describeVolumeStatus(ctx context.Context, r *ec2query.Request) (any, error) {
	all, err := a.selectVolumes(ctx, r)
	if err != nil {
		return nil, err
	}
	vs, next, err := describe(r, resource.Volume, "VolumeId", all, volumeID, volumeStatusFilters, nil)
	if err != nil {
		return nil, err
	}
	items := make([]volumeStatusItem, len(vs))
	for i, v := range vs {
		items[i] = volumeStatusItem{VolumeID: v.ID, AvailabilityZone: v.Zone, VolumeStatus: statusOf(v)}
	}
	return struct {
		VolumeStatusSet ec2query.List[volumeStatusItem] `xml:"volumeStatusSet"`
		NextToken       string                          `xml:"nextToken,omitempty"`
	}{ec2query.ListOf(items), next}, nil
}

func (a *API) describeVolumeAttribute(ctx context.Context, r *ec2query.Request) (any, error) {
	id, err := r.Params.Required("VolumeId")
	if err != nil {
		return nil, err
	}
	attr, err := r.Params.Required("Attribute")
	if err != nil {
		return nil, err
	}
	if _, err := a.Volumes.Get(ctx, a.scope(r), id); err != nil {
		return nil, err
	}
	out := struct {
		VolumeID     string                   `xml:"volumeId"`
		AutoEnableIO *boolValue               `xml:"autoEnableIO,omitempty"`
		ProductCodes *ec2query.List[struct{}] `xml:"productCodes,omitempty"`
	}{VolumeID: id}
	switch attr {
	case "autoEnableIO":
		out.AutoEnableIO = &boolValue{false} // I/O is never suspended here
	case "productCodes":
		out.ProductCodes = &ec2query.List[struct{}]{}
	default:
		return nil, apierr.InvalidValue("Attribute", attr, "Valid values: autoEnableIO, productCodes.")
	}
	return out, nil
}

type ebsEncryption struct {
	EbsEncryptionByDefault bool `xml:"ebsEncryptionByDefault"`
}

func (a *API) setEbsEncryption(ctx context.Context, r *ec2query.Request, on bool) (any, error) {
	if err := r.CheckDryRun(); err != nil {
		return nil, err
	}
	if err := a.Volumes.SetEncryptionByDefault(ctx, a.scope(r), on); err != nil {
		return nil, err
	}
	return ebsEncryption{on}, nil
}

func (a *API) enableEbsEncryptionByDefault(ctx context.Context, r *ec2query.Request) (any, error) {
	return a.setEbsEncryption(ctx, r, true)
}

func (a *API) disableEbsEncryptionByDefault(ctx context.Context, r *ec2query.Request) (any, error) {
	return a.setEbsEncryption(ctx, r, false)
}

func (a *API) getEbsEncryptionByDefault(ctx context.Context, r *ec2query.Request) (any, error) {
	on, err := a.Volumes.EncryptionByDefault(ctx, a.scope(r))
	if err != nil {
		return nil, err
	}
	return ebsEncryption{on}, nil
}

func (a *API) getEbsDefaultKmsKeyID(ctx context.Context, r *ec2query.Request) (any, error) {
	// Always the AWS managed key: ModifyEbsDefaultKmsKeyId is not offered.
	return struct {
		KmsKeyID string `xml:"kmsKeyId"`
	}{kms.AliasARN(a.scope(r), kms.DefaultAlias)}, nil
}
