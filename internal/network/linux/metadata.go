package linux

import (
	"fmt"
	"net"
	"net/netip"

	"nubo/internal/network/netns"
)

// MetadataIP is where instances reach the instance metadata service, as on
// EC2. Every router has it on its loopback and, when Config.Metadata is
// set, a listener on port 80 opened inside the router namespace and served
// by this process. A request's source address is the calling instance's
// private IP: strict reverse-path filtering on every instance port makes
// it trustworthy.
var MetadataIP = netip.MustParseAddr("169.254.169.254")

// startMetadata opens the VPC's metadata listener unless this process has
// it, and hands it to Config.Metadata.
func (d *Driver) startMetadata(vpcID string) error {
	if d.cfg.Metadata == nil {
		return nil
	}
	d.dnsMu.Lock()
	defer d.dnsMu.Unlock()
	if _, ok := d.metadata[vpcID]; ok {
		return nil
	}
	ln, err := netns.Listen(d.routerNS(vpcID), "tcp4", netip.AddrPortFrom(MetadataIP, 80).String())
	if err != nil {
		return fmt.Errorf("metadata service of %s: %w", vpcID, err)
	}
	if d.metadata == nil {
		d.metadata = map[string]net.Listener{}
	}
	d.metadata[vpcID] = ln
	go d.cfg.Metadata(vpcID, ln)
	return nil
}

// stopMetadata closes the VPC's metadata listener (which holds the router
// namespace), if this process has one.
func (d *Driver) stopMetadata(vpcID string) {
	d.dnsMu.Lock()
	ln := d.metadata[vpcID]
	delete(d.metadata, vpcID)
	d.dnsMu.Unlock()
	if ln != nil {
		ln.Close()
	}
}
