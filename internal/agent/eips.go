package agent

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"nubo/internal/eni"
	"nubo/internal/network"
	"nubo/internal/resource"
	"nubo/internal/store"
	"nubo/internal/vpc"
)

// An Elastic IP associated with an instance's primary address is the
// instance's public address (syncPublic). One associated with another
// address of a network interface is mapped here: the VPC's router maps it
// to the private address whichever instance has the interface, so it
// follows the interface (and a reassigned secondary address) for free.

func isEIPKey(k string) bool { return strings.Contains(k, "/"+resource.ElasticIP.Name+"/") }

func (a *Agent) reconcileEIP(ctx context.Context, key string) error {
	var e vpc.ElasticIP
	if _, err := a.Store.Get(ctx, key, &e); errors.Is(err, store.ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	a.mu.Lock()
	applied := a.eniPublic[e.ID]
	a.mu.Unlock()
	if e.NetworkInterfaceID == "" {
		if applied == "" {
			return nil
		}
		if !e.Associated() { // off everything (an instance's mapping is its own)
			if ip, err := netip.ParseAddr(e.PublicIP); err == nil {
				if err := a.Network.ClearPublicIP(ctx, ip); err != nil {
					return fmt.Errorf("unmapping %s: %w", ip, err)
				}
			}
		}
		a.setENIPublic(e.ID, "")
		return nil
	}
	var n eni.Interface
	if _, err := a.Store.Get(ctx, eni.Key(scopeOf(key), e.NetworkInterfaceID), &n); errors.Is(err, store.ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	want := n.VPCID + " " + e.PrivateIP
	if applied == want {
		return nil
	}
	private, err1 := netip.ParseAddr(e.PrivateIP)
	public, err2 := netip.ParseAddr(e.PublicIP)
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("addresses of %s: %w", e.ID, err)
	}
	err := a.Network.SetPublicIP(ctx, n.VPCID, private, public)
	if errors.Is(err, network.ErrNotFound) {
		return nil // no router here yet; the resync tries again
	}
	if err != nil {
		return fmt.Errorf("mapping %s to %s: %w", public, private, err)
	}
	a.setENIPublic(e.ID, want)
	return nil
}

func (a *Agent) setENIPublic(id, v string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.eniPublic == nil {
		a.eniPublic = map[string]string{}
	}
	if v == "" {
		delete(a.eniPublic, id)
	} else {
		a.eniPublic[id] = v
	}
}
