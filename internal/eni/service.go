package eni

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sort"
	"time"

	"nubo/internal/apierr"
	"nubo/internal/catalog"
	"nubo/internal/resource"
	"nubo/internal/secgroup"
	"nubo/internal/store"
	"nubo/internal/vpc"
)

// Service keeps interface records: the API's half of the protocol with
// the agents.
type Service struct {
	Store *store.Store
	VPCs  *vpc.Service
	Now   func() time.Time
}

const (
	// MaxIPsPerInterface bounds an interface that is not attached: the
	// most any instance type takes (its own type's limit applies once it
	// attaches).
	MaxIPsPerInterface = 50
	// MaxDeviceIndex is the highest device index nubo attaches at.
	MaxDeviceIndex = 31
	maxAttempts    = 50
)

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

func notFound(id string) error {
	return apierr.New(Kind.NotFoundCode, "The networkInterface ID '%s' does not exist", id)
}

// CheckID rejects a malformed interface ID.
func CheckID(id string) error {
	if !resource.ValidID(Kind, id) {
		return apierr.New("InvalidNetworkInterfaceID.Malformed", "Invalid id: \"%s\" (expecting \"eni-...\")", id)
	}
	return nil
}

// NewMAC is a locally administered unicast MAC, like EC2's 0e:… and 12:….
func NewMAC() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	b[0] = b[0]&0xfc | 0x02
	return net.HardwareAddr(b[:]).String()
}

func (s *Service) get(ctx context.Context, sc resource.Scope, id string) (Interface, int64, error) {
	if err := CheckID(id); err != nil {
		return Interface{}, 0, err
	}
	var n Interface
	rev, err := s.Store.Get(ctx, Key(sc, id), &n)
	if errors.Is(err, store.ErrNotFound) {
		return n, 0, notFound(id)
	}
	return n, rev, err
}

// Get returns one interface.
func (s *Service) Get(ctx context.Context, sc resource.Scope, id string) (Interface, error) {
	n, _, err := s.get(ctx, sc, id)
	return n, err
}

// List returns the scope's interfaces.
func (s *Service) List(ctx context.Context, sc resource.Scope) ([]Interface, error) {
	out, _, err := s.list(ctx, sc)
	return out, err
}

// list also returns the newest mod revision among them, for a transaction
// that must fail if any interface changed (a device index taken meanwhile).
func (s *Service) list(ctx context.Context, sc resource.Scope) ([]Interface, int64, error) {
	kvs, err := s.Store.List(ctx, resource.Prefix(sc, Kind))
	if err != nil {
		return nil, 0, err
	}
	out := make([]Interface, 0, len(kvs))
	var newest int64
	for _, kv := range kvs {
		var n Interface
		if err := json.Unmarshal(kv.Value, &n); err != nil {
			return nil, 0, fmt.Errorf("decoding %s: %w", kv.Key, err)
		}
		out = append(out, n)
		newest = max(newest, kv.ModRev)
	}
	return out, newest, nil
}

// OfInstance picks the interfaces attached (or attaching, or detaching)
// to instanceID out of all, by device index.
func OfInstance(all []Interface, instanceID string) []Interface {
	var out []Interface
	for _, n := range all {
		if n.AttachedTo(instanceID) {
			out = append(out, n)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Attachment.DeviceIndex < out[j].Attachment.DeviceIndex })
	return out
}

// Attached returns the interfaces of an instance, by device index.
func (s *Service) Attached(ctx context.Context, sc resource.Scope, instanceID string) ([]Interface, error) {
	all, err := s.List(ctx, sc)
	if err != nil {
		return nil, err
	}
	return OfInstance(all, instanceID), nil
}

// Groups resolves security group IDs for an interface of VPC vpcID, or the
// VPC's default group when none are given, with Check ops that fail the
// write if a group changed or went meanwhile.
func (s *Service) Groups(ctx context.Context, account, vpcID string, ids []string) ([]string, []store.Op, error) {
	sc := resource.Scope{Account: account, Region: s.VPCs.Region}
	var out []string
	var checks []store.Op
	for _, id := range ids {
		if slices.Contains(out, id) {
			continue
		}
		g, rev, err := s.VPCs.SecurityGroup(ctx, account, id)
		if err != nil {
			return nil, nil, err
		}
		if g.VPCID != vpcID {
			return nil, nil, apierr.New(apierr.InvalidParameter, "Security group %s and the interface's subnet belong to different networks (%s, %s).", id, g.VPCID, vpcID)
		}
		out = append(out, id)
		checks = append(checks, store.Op{Key: resource.Key(sc, secgroup.Kind, id), ModRev: rev, Check: true})
	}
	if len(out) > secgroup.MaxGroupsPerENI {
		return nil, nil, apierr.New("SecurityGroupsPerInterfaceLimitExceeded",
			"The maximum number of security groups per interface has been reached: %d given, at most %d.", len(out), secgroup.MaxGroupsPerENI)
	}
	if len(out) == 0 {
		g, rev, err := s.VPCs.DefaultSecurityGroup(ctx, account, vpcID)
		if err != nil {
			return nil, nil, fmt.Errorf("reading the default security group of %s: %w", vpcID, err)
		}
		out = []string{g.ID}
		checks = append(checks, store.Op{Key: resource.Key(sc, secgroup.Kind, g.ID), ModRev: rev, Check: true})
	}
	return out, checks, nil
}

// CreateSpec is a CreateNetworkInterface request, or an interface a launch
// makes.
type CreateSpec struct {
	SubnetID  string
	PrivateIP string   // the primary; "": the lowest free
	Secondary []string // secondary addresses asked for by value
	// SecondaryCount more secondary addresses, the lowest free.
	SecondaryCount int
	Groups         []string
	Description    string
	Tags           []resource.Tag
}

// Count is the number of private addresses the spec asks for.
func (c CreateSpec) Count() int { return 1 + len(c.Secondary) + c.SecondaryCount }

// Create makes an available interface with its addresses claimed.
func (s *Service) Create(ctx context.Context, sc resource.Scope, spec CreateSpec) (Interface, error) {
	if spec.SubnetID == "" {
		return Interface{}, apierr.Missing("SubnetId")
	}
	if !resource.ValidID(resource.Subnet, spec.SubnetID) {
		return Interface{}, apierr.New("InvalidSubnetID.Malformed", "Invalid id: \"%s\" (expecting \"subnet-...\")", spec.SubnetID)
	}
	if n := spec.Count(); n > MaxIPsPerInterface {
		return Interface{}, ipLimit(n, MaxIPsPerInterface, "an interface")
	}
	tags, err := resource.Merge("", nil, spec.Tags)
	if err != nil {
		return Interface{}, err
	}
	for attempt := 0; attempt < maxAttempts; attempt++ {
		sn, err := s.VPCs.GetSubnet(ctx, sc.Account, spec.SubnetID)
		if err != nil {
			return Interface{}, err
		}
		n, ops, err := s.New(ctx, sc, sn, resource.NewID(Kind), spec, nil)
		if err != nil {
			return Interface{}, err
		}
		n.Tags = tags
		ops = append(ops, store.Op{Key: Key(sc, n.ID), Value: n})
		err = s.Store.Apply(ctx, ops...)
		if err == nil {
			return n, nil
		}
		if !errors.Is(err, store.ErrConflict) {
			return Interface{}, fmt.Errorf("creating interface: %w", err)
		}
	}
	return Interface{}, fmt.Errorf("creating interface: %w", store.ErrConflict)
}

// New builds the record of a new interface id in sn (not written) and
// returns the writes it needs with it: its address claims and checks of
// its groups. A launch adds the attachment and writes it with the instance;
// planned are the launch's writes so far (addresses they claim are taken).
func (s *Service) New(ctx context.Context, sc resource.Scope, sn vpc.Subnet, id string, spec CreateSpec, planned []store.Op) (Interface, []store.Op, error) {
	groups, ops, err := s.Groups(ctx, sc.Account, sn.VPCID, spec.Groups)
	if err != nil {
		return Interface{}, nil, err
	}
	claims := []vpc.Claim{{Holder: id, Want: spec.PrivateIP}}
	for _, a := range spec.Secondary {
		claims = append(claims, vpc.Claim{Holder: id, Want: a})
	}
	for range spec.SecondaryCount {
		claims = append(claims, vpc.Claim{Holder: id})
	}
	ips, claimOps, err := s.VPCs.ClaimPrivate(ctx, sc.Account, sn, claims, planned)
	if err != nil {
		return Interface{}, nil, err
	}
	n := Interface{
		Meta:  resource.Meta{ID: id, CreateTime: s.now()},
		Owner: sc.Account, VPCID: sn.VPCID, SubnetID: sn.ID, Zone: sn.Zone, MAC: NewMAC(),
		Groups: groups, Description: spec.Description, SourceDestCheck: true, Status: Available,
	}
	for i, ip := range ips {
		n.PrivateIPs = append(n.PrivateIPs, PrivateIP{Address: ip.String(), Primary: i == 0})
	}
	return n, append(ops, claimOps...), nil
}

// Delete removes an interface that is not attached and frees its addresses.
func (s *Service) Delete(ctx context.Context, sc resource.Scope, id string) error {
	for attempt := 0; attempt < maxAttempts; attempt++ {
		n, rev, err := s.get(ctx, sc, id)
		if err != nil {
			return err
		}
		if n.Attachment != nil {
			return apierr.New("InvalidNetworkInterface.InUse", "The network interface '%s' is currently in use (attached to %s).", id, n.Attachment.InstanceID)
		}
		ops, err := s.ReleaseOps(ctx, sc, n)
		if err != nil {
			return err
		}
		err = s.Store.Apply(ctx, append(ops, store.Op{Key: Key(sc, id), ModRev: rev, Delete: true})...)
		if err == nil || !errors.Is(err, store.ErrConflict) {
			return err
		}
	}
	return fmt.Errorf("deleting %s: %w", id, store.ErrConflict)
}

// ReleaseOps are the writes that free the addresses an interface holds
// (claims held by someone else meanwhile are left alone) and take its
// Elastic IPs off, for its deletion's transaction.
func (s *Service) ReleaseOps(ctx context.Context, sc resource.Scope, n Interface) ([]store.Op, error) {
	ops, err := s.eipOps(ctx, sc, n.ID, func(string) bool { return true }, "")
	if err != nil {
		return nil, err
	}
	for _, p := range n.PrivateIPs {
		ip, err := netip.ParseAddr(p.Address)
		if err != nil {
			continue
		}
		key := vpc.PrivateKey(sc.Account, sc.Region, n.VPCID, ip)
		var claim vpc.Address
		rev, err := s.Store.GetRev(ctx, key, &claim)
		if err != nil {
			return nil, err
		}
		if rev != 0 && claim.Holder == n.ID {
			ops = append(ops, store.Op{Key: key, ModRev: rev, Delete: true})
		}
	}
	return ops, nil
}

// limits are an instance type's interface and address limits.
func limits(instanceType string) (interfaces, ipsPer int) {
	it, ok := catalog.LookupInstanceType(instanceType)
	if !ok {
		return 1, 1
	}
	return it.NetworkInfo.MaximumNetworkInterfaces, it.NetworkInfo.Ipv4AddressesPerInterface
}

// Limits are instanceType's maximum interfaces and IPv4 addresses per interface.
func Limits(instanceType string) (interfaces, ipsPer int) { return limits(instanceType) }

func ipLimit(n, limit int, what string) error {
	return apierr.New("PrivateIpAddressLimitExceeded",
		"Number of private addresses will exceed limit: %d asked for %s, which takes at most %d.", n, what, limit)
}

// eipOps are the writes that move the Elastic IPs associated with
// addresses of interface id (those match picks) to interface to, or take
// them off when to is "".
func (s *Service) eipOps(ctx context.Context, sc resource.Scope, id string, match func(ip string) bool, to string) ([]store.Op, error) {
	kvs, err := s.Store.List(ctx, resource.Prefix(sc, resource.ElasticIP))
	if err != nil {
		return nil, err
	}
	var ops []store.Op
	for _, kv := range kvs {
		var e vpc.ElasticIP
		if err := json.Unmarshal(kv.Value, &e); err != nil {
			return nil, fmt.Errorf("decoding %s: %w", kv.Key, err)
		}
		if e.NetworkInterfaceID != id || !match(e.PrivateIP) {
			continue
		}
		if to == "" {
			e.Disassociate()
		} else {
			e.NetworkInterfaceID = to
		}
		ops = append(ops, store.Op{Key: kv.Key, Value: e, ModRev: kv.ModRev})
	}
	return ops, nil
}
