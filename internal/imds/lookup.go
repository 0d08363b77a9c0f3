package imds

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"

	clientv3 "go.etcd.io/etcd/client/v3"

	"nubo/internal/eni"
	"nubo/internal/instance"
	"nubo/internal/resource"
	"nubo/internal/store"
	"nubo/internal/vpc"
)

// ErrNoInstance: no instance of the VPC has the caller's address.
var ErrNoInstance = errors.New("no instance has this address")

// Index finds the instance behind a private address of a VPC, whatever its
// account. A VPC's ID is unique and its owner never changes: the owner is
// learned once, from the address claims (the only keys that name VPCs of
// every account), and the claim of an address names its instance. Each
// request then costs one read of the instance's record, which is also what
// makes the answers live.
type Index struct {
	Store  *store.Store
	Region string

	scan    sync.Mutex // one scan at a time
	mu      sync.RWMutex
	owners  map[string]string  // VPC ID → account
	holders map[slot]holderRef // address → its instance, when last seen
	scans   int                // scans done
}

type slot struct {
	vpcID string
	ip    netip.Addr
}

type holderRef struct {
	account, id string
}

// Lookup returns the instance of vpcID whose private address is ip.
func (x *Index) Lookup(ctx context.Context, vpcID string, ip netip.Addr) (instance.Instance, error) {
	x.mu.RLock()
	h, ok := x.holders[slot{vpcID, ip}]
	x.mu.RUnlock()
	if ok {
		if in, err := x.read(ctx, h, ip); err == nil && owns(in, vpcID, ip, h) {
			return in, nil
		} else if err != nil && !errors.Is(err, store.ErrNotFound) {
			return instance.Instance{}, err
		}
	}
	// Not known yet, or the address has moved on (terminated, reused).
	account, err := x.owner(ctx, vpcID)
	if err != nil {
		return instance.Instance{}, err
	}
	var claim vpc.Address
	if _, err := x.Store.Get(ctx, vpc.PrivateKey(account, x.Region, vpcID, ip), &claim); errors.Is(err, store.ErrNotFound) {
		return instance.Instance{}, ErrNoInstance
	} else if err != nil {
		return instance.Instance{}, err
	}
	h = holderRef{account: account, id: claim.Holder}
	in, err := x.read(ctx, h, ip)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !owns(in, vpcID, ip, h)) {
		return instance.Instance{}, ErrNoInstance
	} else if err != nil {
		return instance.Instance{}, err
	}
	x.mu.Lock()
	if x.holders == nil {
		x.holders = map[slot]holderRef{}
	}
	x.holders[slot{vpcID, ip}] = h
	x.mu.Unlock()
	return in, nil
}

// read returns the instance behind an address's holder: the holder
// itself, or the instance a network interface holding ip is attached to.
func (x *Index) read(ctx context.Context, h holderRef, ip netip.Addr) (instance.Instance, error) {
	var in instance.Instance
	id := h.id
	if strings.HasPrefix(id, "eni-") {
		var n eni.Interface
		if _, err := x.Store.Get(ctx, eni.Key(resource.Scope{Account: h.account, Region: x.Region}, id), &n); err != nil {
			return in, err
		}
		if n.Attachment == nil || !n.Has(ip.String()) {
			return in, store.ErrNotFound
		}
		id = n.Attachment.InstanceID
	}
	if !strings.HasPrefix(id, "i-") { // an address held by something else
		return in, store.ErrNotFound
	}
	_, err := x.Store.Get(ctx, instance.Key(h.account, x.Region, id), &in)
	return in, err
}

// owns: the instance (still) has the address, itself or through the
// interface holding it (read checked that one).
func owns(in instance.Instance, vpcID string, ip netip.Addr, h holderRef) bool {
	mine := in.PrivateIP == ip.String() || strings.HasPrefix(h.id, "eni-")
	return in.VPCID == vpcID && mine && in.State != instance.Terminated
}

// owner returns the account of vpcID, scanning the address claims when it
// is not known; a scan that began after the caller asked is as good as its
// own, so concurrent misses cost one scan.
func (x *Index) owner(ctx context.Context, vpcID string) (string, error) {
	x.mu.RLock()
	account, ok := x.owners[vpcID]
	before := x.scans
	x.mu.RUnlock()
	if ok {
		return account, nil
	}
	x.scan.Lock()
	defer x.scan.Unlock()
	x.mu.RLock()
	account, ok = x.owners[vpcID]
	fresh := x.scans > before
	x.mu.RUnlock()
	if ok {
		return account, nil
	}
	if fresh {
		return "", ErrNoInstance
	}
	prefix := store.Root + "ipam/"
	resp, err := x.Store.Client().Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return "", fmt.Errorf("listing address claims: %w", err)
	}
	found := map[string]string{}
	for _, kv := range resp.Kvs {
		// <account>/<region>/<vpc>/<ip>
		parts := strings.Split(strings.TrimPrefix(string(kv.Key), prefix), "/")
		if len(parts) == 4 && parts[1] == x.Region {
			found[parts[2]] = parts[0]
		}
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.owners == nil {
		x.owners = map[string]string{}
	}
	for v, a := range found {
		x.owners[v] = a
	}
	x.scans++
	if account, ok = x.owners[vpcID]; !ok {
		return "", ErrNoInstance
	}
	return account, nil
}
