package ec2

import (
	"context"
	"maps"
	"strconv"

	"nubo/internal/api/ec2query"
	"nubo/internal/apierr"
	"nubo/internal/resource"
	"nubo/internal/snapshot"
)

// Responses.

// snapshotItem is a snapshot as CreateSnapshot and DescribeSnapshots show it.
type snapshotItem struct {
	SnapshotID              string                       `xml:"snapshotId"`
	VolumeID                string                       `xml:"volumeId"`
	Status                  string                       `xml:"status"`
	StatusMessage           string                       `xml:"statusMessage,omitempty"`
	StartTime               string                       `xml:"startTime"`
	Progress                string                       `xml:"progress"`
	OwnerID                 string                       `xml:"ownerId"`
	VolumeSize              int                          `xml:"volumeSize"`
	Description             string                       `xml:"description"`
	Encrypted               bool                         `xml:"encrypted"`
	KmsKeyID                string                       `xml:"kmsKeyId,omitempty"`
	DataEncryptionKeyID     string                       `xml:"dataEncryptionKeyId,omitempty"`
	StorageTier             string                       `xml:"storageTier"`
	TagSet                  *ec2query.List[ec2query.Tag] `xml:"tagSet"`
	CompletionTime          string                       `xml:"completionTime,omitempty"`
	FullSnapshotSizeInBytes int64                        `xml:"fullSnapshotSizeInBytes,omitempty"`
}

func progress(x snapshot.Snapshot) string { return strconv.Itoa(x.Progress) + "%" }

func snapshotOf(account string, x snapshot.Snapshot) snapshotItem {
	it := snapshotItem{SnapshotID: x.ID, VolumeID: x.VolumeID, Status: x.State, StatusMessage: x.StatusMessage,
		StartTime: ec2query.Time(x.CreateTime), Progress: progress(x), OwnerID: account, VolumeSize: x.VolumeSizeGiB,
		Description: x.Description, Encrypted: x.Encrypted, KmsKeyID: x.KmsKeyID, DataEncryptionKeyID: x.DataKeyID(),
		StorageTier: "standard", TagSet: ec2query.TagSet(x.Tags)}
	if x.State == snapshot.Completed {
		it.CompletionTime = ec2query.Time(x.CompletionTime)
		it.FullSnapshotSizeInBytes = x.FullSizeBytes
	}
	return it
}

// snapshotInfo is one snapshot of CreateSnapshots' answer.
type snapshotInfo struct {
	SnapshotID  string                       `xml:"snapshotId"`
	VolumeID    string                       `xml:"volumeId"`
	State       string                       `xml:"state"`
	StartTime   string                       `xml:"startTime"`
	Progress    string                       `xml:"progress"`
	OwnerID     string                       `xml:"ownerId"`
	VolumeSize  int                          `xml:"volumeSize"`
	Description string                       `xml:"description"`
	Encrypted   bool                         `xml:"encrypted"`
	TagSet      *ec2query.List[ec2query.Tag] `xml:"tagSet"`
}

// Requests.

func (a *API) createSnapshot(ctx context.Context, r *ec2query.Request) (any, error) {
	p := r.Params
	if err := noOutposts(p); err != nil {
		return nil, err
	}
	id, err := p.Required("VolumeId")
	if err != nil {
		return nil, err
	}
	spec := snapshot.CreateSpec{VolumeID: id, Description: p.String("Description")}
	if spec.Tags, err = parseTagSpecs(p, resource.Snapshot); err != nil {
		return nil, err
	}
	if err := a.Snapshots.Validate(ctx, a.scope(r), spec); err != nil {
		return nil, err
	}
	if err := r.CheckDryRun(); err != nil {
		return nil, err
	}
	x, err := a.Snapshots.Create(ctx, a.scope(r), spec)
	if err != nil {
		return nil, err
	}
	return snapshotOf(r.Account, x), nil
}

// noOutposts refuses the Outposts parameters: nubo has no Outposts.
func noOutposts(p ec2query.Params) error {
	for _, name := range []string{"OutpostArn", "DestinationOutpostArn"} {
		if p.String(name) != "" {
			return apierr.New(apierr.UnsupportedOperation, "nubo has no Outposts (%s).", name)
		}
	}
	if l := p.String("Location"); l != "" && l != "regional" {
		return apierr.InvalidValue("Location", l, "nubo keeps snapshots regional.")
	}
	return nil
}

func (a *API) createSnapshots(ctx context.Context, r *ec2query.Request) (any, error) {
	p := r.Params
	if err := noOutposts(p); err != nil {
		return nil, err
	}
	is := p.Member("InstanceSpecification")
	spec := snapshot.InstanceSpec{InstanceID: is.String("InstanceId"), ExcludeDataVolumes: is.Strings("ExcludeDataVolumeId"),
		Description: p.String("Description")}
	var err error
	if spec.ExcludeBootVolume, err = is.Bool("ExcludeBootVolume"); err != nil {
		return nil, err
	}
	switch c := p.String("CopyTagsFromSource"); c {
	case "":
	case "volume":
		spec.CopyTags = true
	default:
		return nil, apierr.InvalidValue("CopyTagsFromSource", c, "The only value is 'volume'.")
	}
	if spec.Tags, err = parseTagSpecs(p, resource.Snapshot); err != nil {
		return nil, err
	}
	if err := a.Snapshots.ValidateForInstance(ctx, a.scope(r), spec); err != nil {
		return nil, err
	}
	if err := r.CheckDryRun(); err != nil {
		return nil, err
	}
	xs, err := a.Snapshots.CreateForInstance(ctx, a.scope(r), spec)
	if err != nil {
		return nil, err
	}
	items := make([]snapshotInfo, len(xs))
	for i, x := range xs {
		items[i] = snapshotInfo{SnapshotID: x.ID, VolumeID: x.VolumeID, State: x.State, StartTime: ec2query.Time(x.CreateTime),
			Progress: progress(x), OwnerID: r.Account, VolumeSize: x.VolumeSizeGiB, Description: x.Description,
			Encrypted: x.Encrypted, TagSet: ec2query.TagSet(x.Tags)}
	}
	return struct {
		SnapshotSet ec2query.List[snapshotInfo] `xml:"snapshotSet"`
	}{ec2query.ListOf(items)}, nil
}

var snapshotFilters = map[string]ec2query.FilterFunc[snapshot.Snapshot]{
	"description":  func(x snapshot.Snapshot) []string { return one(x.Description) },
	"encrypted":    func(x snapshot.Snapshot) []string { return one(strconv.FormatBool(x.Encrypted)) },
	"kms-key-id":   func(x snapshot.Snapshot) []string { return one(x.KmsKeyID) },
	"owner-alias":  func(x snapshot.Snapshot) []string { return nil },
	"progress":     func(x snapshot.Snapshot) []string { return one(progress(x)) },
	"snapshot-id":  func(x snapshot.Snapshot) []string { return one(x.ID) },
	"start-time":   func(x snapshot.Snapshot) []string { return timeValues(x.CreateTime) },
	"status":       func(x snapshot.Snapshot) []string { return one(x.State) },
	"storage-tier": func(x snapshot.Snapshot) []string { return one("standard") },
	"volume-id":    func(x snapshot.Snapshot) []string { return one(x.VolumeID) },
	"volume-size":  func(x snapshot.Snapshot) []string { return one(strconv.Itoa(x.VolumeSizeGiB)) },
}

func snapshotID(x snapshot.Snapshot) string          { return x.ID }
func snapshotTags(x snapshot.Snapshot) ec2query.Tags { return x.Tags }

func (a *API) describeSnapshots(ctx context.Context, r *ec2query.Request) (any, error) {
	p := r.Params
	ids := p.Strings("SnapshotId")
	if p.Has("MaxResults") && len(ids) > 0 {
		return nil, apierr.New(apierr.InvalidParameterCombination, "The parameter snapshotSet cannot be used with the parameter maxResults")
	}
	for _, id := range ids {
		if err := snapshot.CheckID(id); err != nil {
			return nil, err
		}
	}
	all, err := a.Snapshots.List(ctx, a.scope(r))
	if err != nil {
		return nil, err
	}
	// Every snapshot here is the caller's: "self" or the account's own ID
	// keeps them; other owners ("amazon", other accounts) have none to show.
	if owners := p.Strings("Owner"); len(owners) > 0 {
		mine := false
		for _, o := range owners {
			mine = mine || o == "self" || o == r.Account
		}
		if !mine {
			all = nil
		}
	}
	filters := maps.Clone(snapshotFilters)
	filters["owner-id"] = func(snapshot.Snapshot) []string { return one(r.Account) }
	xs, next, err := describe(r, resource.Snapshot, "SnapshotId", all, snapshotID, filters, snapshotTags)
	if err != nil {
		return nil, err
	}
	items := make([]snapshotItem, len(xs))
	for i, x := range xs {
		items[i] = snapshotOf(r.Account, x)
	}
	return struct {
		SnapshotSet ec2query.List[snapshotItem] `xml:"snapshotSet"`
		NextToken   string                      `xml:"nextToken,omitempty"`
	}{ec2query.ListOf(items), next}, nil
}

func (a *API) deleteSnapshot(ctx context.Context, r *ec2query.Request) (any, error) {
	return onID(r, "SnapshotId", func(id string) error {
		_, err := a.Snapshots.Get(ctx, a.scope(r), id)
		return err
	}, func(id string) error { return a.Snapshots.Delete(ctx, a.scope(r), id) })
}

func (a *API) copySnapshot(ctx context.Context, r *ec2query.Request) (any, error) {
	p := r.Params
	if err := noOutposts(p); err != nil {
		return nil, err
	}
	if d := p.String("DestinationRegion"); d != "" && d != a.Region.Name {
		return nil, apierr.New(apierr.UnsupportedOperation, "nubo copies snapshots within its Region (%s) only; DestinationRegion %s is another.", a.Region.Name, d)
	}
	spec := snapshot.CopySpec{SourceID: p.String("SourceSnapshotId"), SourceRegion: p.String("SourceRegion"),
		Description: p.String("Description"), KmsKeyID: p.String("KmsKeyId")}
	var err error
	if spec.Encrypted, err = p.Bool("Encrypted"); err != nil {
		return nil, err
	}
	if spec.Tags, err = parseTagSpecs(p, resource.Snapshot); err != nil {
		return nil, err
	}
	if err := a.Snapshots.ValidateCopy(ctx, a.scope(r), spec); err != nil {
		return nil, err
	}
	if err := r.CheckDryRun(); err != nil {
		return nil, err
	}
	x, err := a.Snapshots.Copy(ctx, a.scope(r), spec)
	if err != nil {
		return nil, err
	}
	return struct {
		SnapshotID string                       `xml:"snapshotId"`
		TagSet     *ec2query.List[ec2query.Tag] `xml:"tagSet"`
	}{x.ID, ec2query.TagSet(x.Tags)}, nil
}

// snapshotAttribute reads Attribute: createVolumePermission is the one
// nubo keeps; productCodes (AWS Marketplace) is always empty.
func snapshotAttribute(p ec2query.Params, required bool) (string, error) {
	attr := p.String("Attribute")
	switch attr {
	case "createVolumePermission", "productCodes":
		return attr, nil
	case "":
		if !required {
			return "", nil
		}
		return "", apierr.Missing("Attribute")
	}
	return "", apierr.InvalidValue("Attribute", attr, "Valid values: createVolumePermission, productCodes.")
}

type permissionItem struct {
	UserID string `xml:"userId,omitempty"`
	Group  string `xml:"group,omitempty"`
}

func (a *API) describeSnapshotAttribute(ctx context.Context, r *ec2query.Request) (any, error) {
	id, err := r.Params.Required("SnapshotId")
	if err != nil {
		return nil, err
	}
	attr, err := snapshotAttribute(r.Params, true)
	if err != nil {
		return nil, err
	}
	x, err := a.Snapshots.Get(ctx, a.scope(r), id)
	if err != nil {
		return nil, err
	}
	out := struct {
		SnapshotID             string                         `xml:"snapshotId"`
		CreateVolumePermission *ec2query.List[permissionItem] `xml:"createVolumePermission"`
		ProductCodes           *ec2query.List[permissionItem] `xml:"productCodes"`
	}{SnapshotID: x.ID}
	if attr == "createVolumePermission" {
		var items []permissionItem
		for _, pm := range x.CreateVolumePermissions {
			items = append(items, permissionItem(pm))
		}
		l := ec2query.ListOf(items)
		out.CreateVolumePermission = &l
	} else {
		out.ProductCodes = &ec2query.List[permissionItem]{}
	}
	return out, nil
}

// permissions reads the members of a createVolumePermission list.
func permissions(ms []ec2query.Params) []snapshot.Permission {
	var out []snapshot.Permission
	for _, m := range ms {
		out = append(out, snapshot.Permission{UserID: m.String("UserId"), Group: m.String("Group")})
	}
	return out
}

func (a *API) modifySnapshotAttribute(ctx context.Context, r *ec2query.Request) (any, error) {
	p := r.Params
	id, err := p.Required("SnapshotId")
	if err != nil {
		return nil, err
	}
	if attr, err := snapshotAttribute(p, false); err != nil {
		return nil, err
	} else if attr == "productCodes" {
		return nil, apierr.New(apierr.UnsupportedOperation, "Product codes are AWS Marketplace's; nubo has none to set.")
	}
	cvp := p.Member("CreateVolumePermission")
	add, remove := permissions(cvp.Members("Add")), permissions(cvp.Members("Remove"))
	// The short form: OperationType with UserId.N and UserGroup.N.
	var short []snapshot.Permission
	for _, u := range p.Strings("UserId") {
		short = append(short, snapshot.Permission{UserID: u})
	}
	for _, g := range p.Strings("UserGroup") {
		short = append(short, snapshot.Permission{Group: g})
	}
	switch op := p.String("OperationType"); {
	case len(short) > 0 && op == "add":
		add = append(add, short...)
	case len(short) > 0 && op == "remove":
		remove = append(remove, short...)
	case len(short) > 0:
		return nil, apierr.InvalidValue("OperationType", op, "Valid values: add, remove.")
	}
	if len(add) == 0 && len(remove) == 0 {
		return nil, apierr.New(apierr.MissingParameter, "The request must contain the parameter CreateVolumePermission (or OperationType with UserId or UserGroup).")
	}
	for _, pm := range append(append([]snapshot.Permission{}, add...), remove...) {
		if err := snapshot.CheckPermission(pm); err != nil {
			return nil, err
		}
	}
	if _, err := a.Snapshots.Get(ctx, a.scope(r), id); err != nil {
		return nil, err
	}
	if err := r.CheckDryRun(); err != nil {
		return nil, err
	}
	if err := a.Snapshots.ModifyPermissions(ctx, a.scope(r), id, add, remove); err != nil {
		return nil, err
	}
	return returnTrue{true}, nil
}

func (a *API) resetSnapshotAttribute(ctx context.Context, r *ec2query.Request) (any, error) {
	attr, err := snapshotAttribute(r.Params, true)
	if err != nil {
		return nil, err
	}
	if attr != "createVolumePermission" {
		return nil, apierr.InvalidValue("Attribute", attr, "Only createVolumePermission can be reset.")
	}
	return onID(r, "SnapshotId", func(id string) error {
		_, err := a.Snapshots.Get(ctx, a.scope(r), id)
		return err
	}, func(id string) error { return a.Snapshots.ResetPermissions(ctx, a.scope(r), id) })
}
