package daemon

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"nubo/internal/ami"
	"nubo/internal/image"
	"nubo/internal/resource"
)

// BuildImage builds a recipe image (debian-12-minimal, debian-12) into dir,
// with the nubo-init that sits next to this executable (make build puts
// bin/nubo-init beside bin/nubo).
func BuildImage(ctx context.Context, dir, name string, progress io.Writer) (image.Manifest, error) {
	exe, err := os.Executable()
	if err != nil {
		return image.Manifest{}, err
	}
	initBin := filepath.Join(filepath.Dir(exe), "nubo-init")
	if _, err := os.Stat(initBin); err != nil {
		return image.Manifest{}, fmt.Errorf("nubo-init must sit next to nubo (run make build): %w", err)
	}
	b := &image.Builder{Dir: dir, InitBinary: initBin}
	return b.Build(ctx, name, progress)
}

// AMIOf is the public AMI record of a built image.
func AMIOf(m image.Manifest) ami.Image {
	const gib = 1 << 30
	size := int((m.SizeBytes + gib - 1) / gib)
	return ami.Image{
		Meta:         resource.Meta{ID: ami.PublicID(m.Name, m.Created), CreateTime: m.Created.UTC()},
		Name:         m.Name,
		Description:  m.Description,
		Architecture: m.Architecture,
		RootDevice:   m.RootDeviceName,
		SizeGiB:      max(8, size), // EC2's Linux images start at 8 GiB
		State:        "available",
		Location:     m.Name,
		Init:         m.Init,
		UIDBase:      m.UIDBase,
		Announces:    m.Source == "build",
	}
}
