package linux

import (
	"context"
	"errors"
	"fmt"

	"nubo/internal/network"
	"nubo/internal/network/netns"
)

// Adopt binds the namespace the instance's runtime made at the path Attach
// uses, so Attach plumbs into it (hibernatable instances: CRIU can only
// save a network namespace owned by the instance's user namespace).
func (d *Driver) Adopt(ctx context.Context, instanceID, path string) error {
	if !network.ValidID(instanceID, "i-") {
		return fmt.Errorf("%w: instance ID %q", network.ErrInvalid, instanceID)
	}
	defer d.begin("i/" + instanceID)()
	err := netns.Bind(path, d.instanceNS(instanceID))
	if errors.Is(err, netns.ErrOther) {
		return fmt.Errorf("%w: instance %s has another network namespace (detach it first)", network.ErrConflict, instanceID)
	}
	return err
}
