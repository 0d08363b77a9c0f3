package ec2

import (
	"context"
	"strings"

	"nubo/internal/ami"
	"nubo/internal/api/ec2query"
	"nubo/internal/apierr"
	"nubo/internal/resource"
)

type imageEbs struct {
	SnapshotID          string `xml:"snapshotId,omitempty"`
	VolumeSize          int    `xml:"volumeSize"`
	DeleteOnTermination bool   `xml:"deleteOnTermination"`
	VolumeType          string `xml:"volumeType"`
	Encrypted           bool   `xml:"encrypted"`
}

type imageBlockDevice struct {
	DeviceName string   `xml:"deviceName"`
	Ebs        imageEbs `xml:"ebs"`
}

type imageItem struct {
	ImageID            string                          `xml:"imageId"`
	ImageLocation      string                          `xml:"imageLocation"`
	ImageState         string                          `xml:"imageState"`
	ImageOwnerID       string                          `xml:"imageOwnerId"`
	CreationDate       string                          `xml:"creationDate"`
	IsPublic           bool                            `xml:"isPublic"`
	Architecture       string                          `xml:"architecture"`
	ImageType          string                          `xml:"imageType"`
	Platform           string                          `xml:"platform,omitempty"`
	ImageOwnerAlias    string                          `xml:"imageOwnerAlias,omitempty"`
	Name               string                          `xml:"name"`
	Description        string                          `xml:"description,omitempty"`
	RootDeviceType     string                          `xml:"rootDeviceType"`
	RootDeviceName     string                          `xml:"rootDeviceName"`
	BlockDeviceMapping ec2query.List[imageBlockDevice] `xml:"blockDeviceMapping"`
	VirtualizationType string                          `xml:"virtualizationType"`
	TagSet             *ec2query.List[ec2query.Tag]    `xml:"tagSet"`
	Hypervisor         string                          `xml:"hypervisor"`
	EnaSupport         bool                            `xml:"enaSupport"`
	PlatformDetails    string                          `xml:"platformDetails"`
	UsageOperation     string                          `xml:"usageOperation"`
	BootMode           string                          `xml:"bootMode"`
}

func imageOf(im ami.Image) imageItem {
	it := imageItem{
		ImageID: im.ID, ImageLocation: im.OwnerID + "/" + im.Name, ImageState: im.State, ImageOwnerID: im.OwnerID,
		CreationDate: ec2query.Time(im.CreateTime), IsPublic: im.Public, Architecture: im.Architecture,
		ImageType: "machine", Platform: im.Platform, Name: im.Name, Description: im.Description,
		RootDeviceType: "ebs", RootDeviceName: im.RootDevice, VirtualizationType: "hvm",
		TagSet: ec2query.TagSet(im.Tags), Hypervisor: "xen", EnaSupport: true,
		PlatformDetails: im.PlatformDetails(), UsageOperation: "RunInstances", BootMode: "legacy-bios",
	}
	if im.Public {
		it.ImageOwnerAlias = ami.OwnerAlias
	}
	typ := im.RootVolumeType
	if typ == "" {
		typ = "gp3"
	}
	del := im.RootDeleteOnTermination == nil || *im.RootDeleteOnTermination
	it.BlockDeviceMapping.Items = []imageBlockDevice{{DeviceName: im.RootDevice,
		Ebs: imageEbs{SnapshotID: im.RootSnapshotID, VolumeSize: im.SizeGiB, DeleteOnTermination: del, VolumeType: typ, Encrypted: im.RootEncrypted}}}
	for _, d := range im.Data {
		it.BlockDeviceMapping.Items = append(it.BlockDeviceMapping.Items, imageBlockDevice{DeviceName: d.Device,
			Ebs: imageEbs{SnapshotID: d.SnapshotID, VolumeSize: d.SizeGiB, DeleteOnTermination: d.DeleteOnTermination, VolumeType: d.VolumeType, Encrypted: d.Encrypted}})
	}
	return it
}

var imageFilters = map[string]ec2query.FilterFunc[ami.Image]{
	"image-id":            func(im ami.Image) []string { return []string{im.ID} },
	"name":                func(im ami.Image) []string { return []string{im.Name} },
	"description":         func(im ami.Image) []string { return []string{im.Description} },
	"architecture":        func(im ami.Image) []string { return []string{im.Architecture} },
	"platform":            func(im ami.Image) []string { return []string{im.Platform} },
	"platform-details":    func(im ami.Image) []string { return []string{im.PlatformDetails()} },
	"root-device-type":    func(im ami.Image) []string { return []string{"ebs"} },
	"root-device-name":    func(im ami.Image) []string { return []string{im.RootDevice} },
	"state":               func(im ami.Image) []string { return []string{im.State} },
	"owner-id":            func(im ami.Image) []string { return []string{im.OwnerID} },
	"is-public":           func(im ami.Image) []string { return []string{boolString(im.Public)} },
	"image-type":          func(im ami.Image) []string { return []string{"machine"} },
	"virtualization-type": func(im ami.Image) []string { return []string{"hvm"} },
	"hypervisor":          func(im ami.Image) []string { return []string{"xen"} },
	"owner-alias": func(im ami.Image) []string {
		if im.Public {
			return []string{ami.OwnerAlias}
		}
		return nil
	},
}

func boolString(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

func (a *API) describeImages(ctx context.Context, r *ec2query.Request) (any, error) {
	filters, err := ec2query.ParseFilters(r.Params)
	if err != nil {
		return nil, err
	}
	m, err := ec2query.Compile(filters, imageFilters, func(im ami.Image) ec2query.Tags { return im.Tags })
	if err != nil {
		return nil, err
	}
	page, err := ec2query.ParsePage(r.Params, 5, 1000)
	if err != nil {
		return nil, err
	}
	all, err := a.Images.List(ctx, r.Account)
	if err != nil {
		return nil, err
	}
	if owners := r.Params.Strings("Owner"); len(owners) > 0 {
		want := map[string]bool{}
		for _, o := range owners {
			switch o {
			case "self":
				want[r.Account] = true
			case ami.OwnerAlias, "amazon", "aws-marketplace":
				want[ami.PublicAccount] = true
			default:
				want[o] = true
			}
		}
		var keep []ami.Image
		for _, im := range all {
			if want[im.OwnerID] {
				keep = append(keep, im)
			}
		}
		all = keep
	}
	if ids := r.Params.Strings("ImageId"); len(ids) > 0 {
		byID := map[string]ami.Image{}
		for _, im := range all {
			byID[im.ID] = im
		}
		var keep []ami.Image
		for _, id := range ids {
			if !resource.ValidID(resource.Image, id) {
				return nil, apierr.New("InvalidAMIID.Malformed", "Invalid id: \"%s\" (expecting \"ami-...\")", id)
			}
			im, ok := byID[id]
			if !ok {
				return nil, apierr.New("InvalidAMIID.NotFound", "The image id '[%s]' does not exist", id)
			}
			keep = append(keep, im)
		}
		all = keep
	}
	ims, next, err := ec2query.Paginate(m.Apply(all), func(im ami.Image) string { return im.ID }, page)
	if err != nil {
		return nil, err
	}
	items := make([]imageItem, len(ims))
	for i, im := range ims {
		items[i] = imageOf(im)
	}
	return struct {
		ImagesSet ec2query.List[imageItem] `xml:"imagesSet"`
		NextToken string                   `xml:"nextToken,omitempty"`
	}{ec2query.ListOf(items), next}, nil
}

func (a *API) deregisterImage(ctx context.Context, r *ec2query.Request) (any, error) {
	id, err := r.Params.Required("ImageId")
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(id, "ami-") || !resource.ValidID(resource.Image, id) {
		return nil, apierr.New("InvalidAMIID.Malformed", "Invalid id: \"%s\" (expecting \"ami-...\")", id)
	}
	if err := r.CheckDryRun(); err != nil {
		return nil, err
	}
	if err := a.Images.Deregister(ctx, r.Account, id); err != nil {
		return nil, err
	}
	return returnTrue{true}, nil
}
