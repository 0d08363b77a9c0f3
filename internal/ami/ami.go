// Package ami is the image registry: the AMIs accounts can launch. Images
// built or imported on a host (package image) are registered here; public
// images (those nubo builds) live under the "public" scope and every account
// sees them, an account's own images under its scope.
package ami

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"nubo/internal/apierr"
	"nubo/internal/resource"
	"nubo/internal/store"
)

// PublicAccount is the scope of public images, and their owner ID.
const PublicAccount = "000000000000"

// OwnerAlias is what DescribeImages shows as the owner of public images.
const OwnerAlias = "nubo"

// Image is an AMI record.
type Image struct {
	resource.Meta
	Name         string   `json:"name"`
	Description  string   `json:"description,omitempty"`
	OwnerID      string   `json:"ownerId"`
	Public       bool     `json:"public"`
	Architecture string   `json:"architecture"`
	Platform     string   `json:"platform,omitempty"` // "" (Linux/UNIX) or "windows"
	RootDevice   string   `json:"rootDevice"`         // /dev/xvda
	SizeGiB      int      `json:"sizeGiB"`            // root volume size
	State        string   `json:"state"`              // available | pending | failed
	Location     string   `json:"location"`           // the local image directory name
	Init         []string `json:"init"`               // PID 1
	UIDBase      uint32   `json:"uidBase"`            // host uid of the image's root
	// Announces is set when the image's boot prints "nubo-init: ready" on
	// its console once it is up (nubo's own images); others are up as soon
	// as their init runs.
	Announces bool `json:"announces,omitempty"`

	// Images made from instances or snapshots (CreateImage, RegisterImage,
	// CopyImage) are two layers: BaseImageID, a built image whose root
	// filesystem is the lower layer (Location, Init, UIDBase and Announces
	// are its), and RootSnapshotID, a snapshot of a root volume holding the
	// upper layer, restored into each new instance's root volume.
	BaseImageID    string `json:"baseImageId,omitempty"`
	RootSnapshotID string `json:"rootSnapshotId,omitempty"`
	RootVolumeType string `json:"rootVolumeType,omitempty"`
	RootEncrypted  bool   `json:"rootEncrypted,omitempty"`
	RootKmsKeyID   string `json:"rootKmsKeyId,omitempty"`
	// DeleteOnTermination of the root mapping; nil: true.
	RootDeleteOnTermination *bool `json:"rootDeleteOnTermination,omitempty"`
	// Data are the other volumes of the mapping (CreateImage snapshots the
	// instance's data volumes too).
	Data []Mapping `json:"data,omitempty"`
}

// Mapping is a data volume of an image's block device mapping.
type Mapping struct {
	Device              string `json:"device"`
	SnapshotID          string `json:"snapshotId"`
	SizeGiB             int    `json:"sizeGiB"`
	VolumeType          string `json:"volumeType"`
	Iops                int    `json:"iops,omitempty"`
	Throughput          int    `json:"throughput,omitempty"`
	Encrypted           bool   `json:"encrypted"`
	DeleteOnTermination bool   `json:"deleteOnTermination"`
}

// Base is the image whose root filesystem is im's lower layer: im itself
// unless im was made from an instance or a snapshot.
func (im Image) Base() string {
	if im.BaseImageID != "" {
		return im.BaseImageID
	}
	return im.ID
}

// PlatformDetails is EC2's PlatformDetails for the image.
func (im Image) PlatformDetails() string {
	if im.Platform == "windows" {
		return "Windows"
	}
	return "Linux/UNIX"
}

// Registry stores images.
type Registry struct {
	Store  *store.Store
	Region string
	// Settle, if set, brings a pending image up to date as it is read
	// (Maker.Settle: available once its snapshots completed).
	Settle func(ctx context.Context, im Image) (Image, error)
}

func (r *Registry) settle(ctx context.Context, im Image) (Image, error) {
	if r.Settle == nil || im.State != "pending" {
		return im, nil
	}
	return r.Settle(ctx, im)
}

// PublicID is the stable AMI ID of a public image: the same name and build
// always register under the same ID, so re-registering at every start is a no-op.
func PublicID(name string, created time.Time) string {
	sum := sha256.Sum256([]byte(name + "\x00" + created.UTC().Format(time.RFC3339Nano)))
	return "ami-" + hex.EncodeToString(sum[:])[:17]
}

func (r *Registry) scope(account string) resource.Scope {
	return resource.Scope{Account: account, Region: r.Region}
}

// EnsurePublic registers a public image unless it already is.
func (r *Registry) EnsurePublic(ctx context.Context, im Image) error {
	im.OwnerID, im.Public = PublicAccount, true
	err := r.Store.Create(ctx, map[string]any{resource.Key(r.scope(PublicAccount), resource.Image, im.ID): im})
	if errors.Is(err, store.ErrExists) {
		return nil
	}
	return err
}

// Register stores an account's own image.
func (r *Registry) Register(ctx context.Context, account string, im Image) error {
	im.OwnerID = account
	return r.Store.Create(ctx, map[string]any{resource.Key(r.scope(account), resource.Image, im.ID): im})
}

// Get finds an image the account may launch: its own, or a public one.
func (r *Registry) Get(ctx context.Context, account, id string) (Image, error) {
	for _, owner := range []string{account, PublicAccount} {
		var im Image
		_, err := r.Store.Get(ctx, resource.Key(r.scope(owner), resource.Image, id), &im)
		if err == nil {
			return r.settle(ctx, im)
		}
		if !errors.Is(err, store.ErrNotFound) {
			return Image{}, err
		}
	}
	return Image{}, apierr.New("InvalidAMIID.NotFound", "The image id '[%s]' does not exist", id)
}

// List returns the account's own images and the public ones, ordered by ID.
func (r *Registry) List(ctx context.Context, account string) ([]Image, error) {
	var out []Image
	for _, owner := range []string{account, PublicAccount} {
		kvs, err := r.Store.List(ctx, resource.Prefix(r.scope(owner), resource.Image))
		if err != nil {
			return nil, err
		}
		for _, kv := range kvs {
			var im Image
			if err := json.Unmarshal(kv.Value, &im); err != nil {
				return nil, fmt.Errorf("decoding %s: %w", kv.Key, err)
			}
			if im, err = r.settle(ctx, im); err != nil {
				return nil, err
			}
			out = append(out, im)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Deregister removes an account's own image; public images belong to nubo.
func (r *Registry) Deregister(ctx context.Context, account, id string) error {
	im, err := r.Get(ctx, account, id)
	if err != nil {
		return err
	}
	if im.OwnerID != account {
		return apierr.New("AuthFailure", "Not authorized for image: %s (it belongs to %s).", id, im.OwnerID)
	}
	err = r.Store.Delete(ctx, resource.Key(r.scope(account), resource.Image, id))
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}
