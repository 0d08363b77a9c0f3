package ec2

import (
	"context"

	"nubo/internal/ami"
	"nubo/internal/api/ec2query"
	"nubo/internal/apierr"
	"nubo/internal/resource"
)

type imageIDResult struct {
	ImageID string `xml:"imageId"`
}

// imageTagSpecs splits CreateImage's TagSpecification.N: the image's tags
// and its snapshots'.
func imageTagSpecs(p ec2query.Params) (image, snaps []resource.Tag, err error) {
	for _, spec := range p.Members("TagSpecification") {
		rt, err := spec.Required("ResourceType")
		if err != nil {
			return nil, nil, err
		}
		tags := parseTags(spec, "Tag")
		if err := resource.ValidateTags(spec.Name("Tag"), tags); err != nil {
			return nil, nil, err
		}
		switch rt {
		case "image":
			image = append(image, tags...)
		case "snapshot":
			snaps = append(snaps, tags...)
		default:
			return nil, nil, apierr.New(apierr.InvalidParameterValue, "'%s' is not a valid taggable resource type for this operation (%s).", rt, spec.Name("ResourceType"))
		}
	}
	return image, snaps, nil
}

func (a *API) createImage(ctx context.Context, r *ec2query.Request) (any, error) {
	p := r.Params
	id, err := p.Required("InstanceId")
	if err != nil {
		return nil, err
	}
	spec := ami.CreateSpec{InstanceID: id, Name: p.String("Name"), Description: p.String("Description")}
	if spec.NoReboot, err = p.Bool("NoReboot"); err != nil {
		return nil, err
	}
	if err := ami.CheckName(spec.Name); err != nil {
		return nil, err
	}
	for _, m := range p.Members("BlockDeviceMapping") {
		d := ami.DeviceSpec{Device: m.String("DeviceName"), NoDevice: m.Has("NoDevice")}
		if d.Device == "" {
			return nil, apierr.Missing(m.Name("DeviceName"))
		}
		ebs := m.Member("Ebs")
		if ebs.String("SnapshotId") != "" {
			return nil, apierr.New(apierr.UnsupportedOperation, "CreateImage maps the instance's own volumes; %s is not supported.", ebs.Name("SnapshotId"))
		}
		if n, ok, err := ebs.Int("VolumeSize"); err != nil {
			return nil, err
		} else if ok {
			d.SizeGiB = n
		}
		d.VolumeType = ebs.String("VolumeType")
		if d.DeleteOnTermination, err = ebs.OptBool("DeleteOnTermination"); err != nil {
			return nil, err
		}
		spec.Mappings = append(spec.Mappings, d)
	}
	if spec.Tags, spec.SnapshotTags, err = imageTagSpecs(p); err != nil {
		return nil, err
	}
	if err := r.CheckDryRun(); err != nil {
		return nil, err
	}
	im, err := a.AMIs.Create(ctx, r.Account, spec)
	if err != nil {
		return nil, err
	}
	return imageIDResult{im.ID}, nil
}

func (a *API) registerImage(ctx context.Context, r *ec2query.Request) (any, error) {
	p := r.Params
	if p.String("ImageLocation") != "" {
		return nil, apierr.New(apierr.UnsupportedOperation, "nubo registers images from EBS snapshots only (ImageLocation).")
	}
	spec := ami.RegisterSpec{Name: p.String("Name"), Description: p.String("Description"),
		Architecture: p.String("Architecture"), RootDevice: p.String("RootDeviceName")}
	if err := ami.CheckName(spec.Name); err != nil {
		return nil, err
	}
	root := spec.RootDevice
	if root == "" {
		root = "/dev/xvda"
	}
	for _, m := range p.Members("BlockDeviceMapping") {
		if dev := m.String("DeviceName"); dev != root {
			return nil, apierr.New(apierr.UnsupportedOperation, "nubo registers the root device's mapping only (%s is not %s).", dev, root)
		}
		ebs := m.Member("Ebs")
		spec.SnapshotID, spec.VolumeType = ebs.String("SnapshotId"), ebs.String("VolumeType")
		if n, ok, err := ebs.Int("VolumeSize"); err != nil {
			return nil, err
		} else if ok {
			spec.SizeGiB = n
		}
		var err error
		if spec.DeleteOnTermination, err = ebs.OptBool("DeleteOnTermination"); err != nil {
			return nil, err
		}
	}
	var err error
	if spec.Tags, err = parseTagSpecs(p, resource.Image); err != nil {
		return nil, err
	}
	if err := r.CheckDryRun(); err != nil {
		return nil, err
	}
	im, err := a.AMIs.Register(ctx, r.Account, spec)
	if err != nil {
		return nil, err
	}
	return imageIDResult{im.ID}, nil
}

func (a *API) copyImage(ctx context.Context, r *ec2query.Request) (any, error) {
	p := r.Params
	src, err := p.Required("SourceImageId")
	if err != nil {
		return nil, err
	}
	region, err := p.Required("SourceRegion")
	if err != nil {
		return nil, err
	}
	spec := ami.CopySpec{SourceID: src, SourceRegion: region, Name: p.String("Name"), Description: p.String("Description"), KmsKeyID: p.String("KmsKeyId")}
	if spec.Encrypted, err = p.Bool("Encrypted"); err != nil {
		return nil, err
	}
	if !resource.ValidID(resource.Image, src) {
		return nil, apierr.New("InvalidAMIID.Malformed", "Invalid id: \"%s\" (expecting \"ami-...\")", src)
	}
	if err := ami.CheckName(spec.Name); err != nil {
		return nil, err
	}
	if spec.Tags, err = parseTagSpecs(p, resource.Image); err != nil {
		return nil, err
	}
	if err := r.CheckDryRun(); err != nil {
		return nil, err
	}
	im, err := a.AMIs.Copy(ctx, r.Account, spec)
	if err != nil {
		return nil, err
	}
	return imageIDResult{im.ID}, nil
}
