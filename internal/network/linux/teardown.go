package linux

import (
	"context"
	"errors"

	"nubo/internal/network/netns"
)

// Teardown removes everything this driver made: instance namespaces (their
// veths first, so the ports go even if a process still holds a namespace),
// routers and their resolvers, the gateway, and the host link with its
// route. The host is left as before EnsureHost.
func (d *Driver) Teardown(ctx context.Context) error {
	d.all.Lock()
	defer d.all.Unlock()
	names, err := netns.List(d.cfg.NetNSDir, d.cfg.Prefix+"-")
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range names {
		if kind, _ := d.nsKind(n); kind == "instance" {
			if ih, err := netns.NewHandle(d.nsPath(n)); err == nil {
				errs = append(errs, deleteEths(ih))
				ih.Close()
			}
			errs = append(errs, netns.Delete(d.nsPath(n)))
		}
	}
	for _, n := range names {
		if kind, id := d.nsKind(n); kind == "vpc" {
			errs = append(errs, d.removeVPC(ctx, id))
		}
	}
	errs = append(errs, d.Close(), d.removeHost())
	return errors.Join(errs...)
}
