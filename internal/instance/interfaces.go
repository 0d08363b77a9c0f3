package instance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"

	"nubo/internal/apierr"
	"nubo/internal/eni"
	"nubo/internal/resource"
	"nubo/internal/store"
	"nubo/internal/vpc"
)

// PrimarySpec is what NetworkInterface.N with DeviceIndex 0 says beyond
// the subnet, address, groups and public address of RunSpec.
type PrimarySpec struct {
	NetworkInterfaceID string   `json:",omitempty"` // an existing interface as eth0
	Secondary          []string `json:",omitempty"`
	SecondaryCount     int      `json:",omitempty"`
	Description        string   `json:",omitempty"`
	// KeepOnTermination: DeleteOnTermination false.
	KeepOnTermination bool `json:",omitempty"`
}

// ExtraInterface is an interface at DeviceIndex ≥ 1: an existing one, or a
// new one per instance (in the instance's subnet unless Create says).
type ExtraInterface struct {
	DeviceIndex        int
	NetworkInterfaceID string         `json:",omitempty"`
	Create             eni.CreateSpec `json:",omitzero"`
	KeepOnTermination  bool           `json:",omitempty"`
}

// interfaces gives each new instance its interfaces: the primary (eth0,
// new or given) with its private addresses, the extra ones, and a public
// address when asked. It names the instance after its private address as
// EC2 does and returns ops with the instance and interface records and
// the address claims added.
func (s *Service) interfaces(ctx context.Context, account string, spec RunSpec, sn vpc.Subnet, public bool, res *Reservation, ops []store.Op) ([]store.Op, error) {
	sc := s.scope(account)
	maxIfcs, maxIPs := eni.Limits(spec.InstanceType)
	if n := 1 + len(spec.Primary.Secondary) + spec.Primary.SecondaryCount; n > maxIPs {
		return nil, apierr.New("PrivateIpAddressLimitExceeded", "Number of private addresses will exceed limit: %d asked for the primary interface, %s takes at most %d.", n, spec.InstanceType, maxIPs)
	}
	if n := 1 + len(spec.Extra); n > maxIfcs {
		return nil, apierr.New("InterfaceLimitExceeded", "Interface count %d exceeds the limit for %s (%d).", n, spec.InstanceType, maxIfcs)
	}
	tags, err := resource.Merge("", nil, spec.InterfaceTags)
	if err != nil {
		return nil, err
	}
	for i := range res.Instances {
		in := &res.Instances[i]
		l := eni.Launch{InstanceID: in.ID, Zone: in.Zone, VPCID: in.VPCID, Time: in.LaunchTime, Tags: tags}
		var primary eni.Interface
		if id := spec.Primary.NetworkInterfaceID; id != "" {
			n, op, err := s.enis().Take(ctx, sc, id, l, 0, !spec.Primary.KeepOnTermination)
			if err != nil {
				return nil, err
			}
			if len(n.PrivateIPs) > maxIPs {
				return nil, apierr.New("PrivateIpAddressLimitExceeded", "Number of private addresses will exceed limit: %s has %d, %s takes at most %d per interface.", n.ID, len(n.PrivateIPs), spec.InstanceType, maxIPs)
			}
			primary, ops = n, append(ops, op)
			in.SubnetID, in.SecurityGroups = n.SubnetID, n.Groups
		} else {
			want := ""
			if i == 0 {
				want = spec.PrivateIP
			}
			n, more, err := s.enis().New(ctx, sc, sn, newInterfaceID(), eni.CreateSpec{
				SubnetID: sn.ID, PrivateIP: want, Secondary: spec.Primary.Secondary, SecondaryCount: spec.Primary.SecondaryCount,
				Groups: in.SecurityGroups, Description: spec.Primary.Description,
			}, ops)
			if err != nil {
				return nil, err
			}
			l.Attached(&n, 0, !spec.Primary.KeepOnTermination)
			n.Tags = l.Tags
			primary, ops = n, append(append(ops, more...), store.Op{Key: eni.Key(sc, n.ID), Value: n})
		}
		in.NetworkInterfaceID, in.MAC, in.PrivateIP = primary.ID, primary.MAC, primary.PrimaryIP()
		in.Hostname = HostnameOf(netip.MustParseAddr(in.PrivateIP))
		var err error
		if ops, err = s.extraInterfaces(ctx, account, spec, in, l, ops); err != nil {
			return nil, err
		}
	}
	if public {
		ids := make([]string, len(res.Instances))
		for i, in := range res.Instances {
			ids[i] = in.ID
		}
		pubs, claims, err := s.Public.Allocate(ctx, account, ids)
		if err != nil {
			return nil, err
		}
		ops = append(ops, claims...)
		for i := range res.Instances {
			res.Instances[i].PublicIP, res.Instances[i].AssignPublic = pubs[i].String(), true
		}
	}
	for _, in := range res.Instances {
		ops = append(ops, store.Op{Key: Key(account, s.Region, in.ID), Value: in})
	}
	return ops, nil
}

func (s *Service) extraInterfaces(ctx context.Context, account string, spec RunSpec, in *Instance, l eni.Launch, ops []store.Op) ([]store.Op, error) {
	sc := s.scope(account)
	_, maxIPs := eni.Limits(spec.InstanceType)
	for _, x := range spec.Extra {
		if x.NetworkInterfaceID != "" {
			n, op, err := s.enis().Take(ctx, sc, x.NetworkInterfaceID, l, x.DeviceIndex, !x.KeepOnTermination)
			if err != nil {
				return nil, err
			}
			if len(n.PrivateIPs) > maxIPs {
				return nil, apierr.New("PrivateIpAddressLimitExceeded", "Number of private addresses will exceed limit: %s has %d, %s takes at most %d per interface.", n.ID, len(n.PrivateIPs), spec.InstanceType, maxIPs)
			}
			ops = append(ops, op)
			continue
		}
		c := x.Create
		if c.SubnetID == "" {
			c.SubnetID = in.SubnetID
		}
		if n := c.Count(); n > maxIPs {
			return nil, apierr.New("PrivateIpAddressLimitExceeded", "Number of private addresses will exceed limit: %d asked for interface %d, %s takes at most %d.", n, x.DeviceIndex, spec.InstanceType, maxIPs)
		}
		sn, err := s.VPCs.GetSubnet(ctx, account, c.SubnetID)
		if err != nil {
			return nil, err
		}
		if sn.Zone != in.Zone || sn.VPCID != in.VPCID {
			return nil, apierr.New(apierr.InvalidParameterCombination,
				"Subnet %s of network interface %d is not in the instance's VPC and availability zone (%s, %s).", sn.ID, x.DeviceIndex, in.VPCID, in.Zone)
		}
		n, more, err := s.enis().New(ctx, sc, sn, newInterfaceID(), c, ops)
		if err != nil {
			return nil, err
		}
		l.Attached(&n, x.DeviceIndex, !x.KeepOnTermination)
		n.Tags = l.Tags
		ops = append(append(ops, more...), store.Op{Key: eni.Key(sc, n.ID), Value: n})
	}
	return ops, nil
}

// enis is the interface service (made from the instance service's parts
// when not given, as in tests).
func (s *Service) enis() *eni.Service {
	if s.ENIs != nil {
		return s.ENIs
	}
	return &eni.Service{Store: s.Store, VPCs: s.VPCs, Now: s.Now}
}

// takesInterfaces checks a launch that names existing interfaces: one
// instance only, and an existing primary brings its subnet and groups.
func (s *Service) takesInterfaces(ctx context.Context, account string, spec *RunSpec) error {
	existing := spec.Primary.NetworkInterfaceID != ""
	for _, x := range spec.Extra {
		existing = existing || x.NetworkInterfaceID != ""
	}
	if existing && spec.MaxCount > 1 {
		return apierr.New(apierr.InvalidParameterCombination, "An existing network interface (NetworkInterfaceId) can be given only when launching one instance (MaxCount 1).")
	}
	named := len(spec.Primary.Secondary) > 0
	for _, x := range spec.Extra {
		named = named || x.Create.PrivateIP != "" || len(x.Create.Secondary) > 0
	}
	if named && spec.MaxCount > 1 {
		return apierr.New(apierr.InvalidParameterCombination, "Private IP addresses can be given by value only when launching one instance (MaxCount 1); use SecondaryPrivateIpAddressCount.")
	}
	id := spec.Primary.NetworkInterfaceID
	if id == "" {
		return nil
	}
	if len(spec.SecurityGroupIDs)+len(spec.SecurityGroupNames) > 0 || spec.PrivateIP != "" || spec.AssociatePublicIP != nil {
		return apierr.New(apierr.InvalidParameterCombination,
			"Network interfaces and an instance-level security groups, private IP or public IP may not be specified on the same request.")
	}
	n, err := s.enis().Get(ctx, s.scope(account), id)
	if err != nil {
		return err
	}
	if spec.SubnetID != "" && spec.SubnetID != n.SubnetID {
		return apierr.New(apierr.InvalidParameterCombination, "Network interface %s is in subnet %s, not %s.", id, n.SubnetID, spec.SubnetID)
	}
	spec.SubnetID, spec.SecurityGroupIDs = n.SubnetID, n.Groups
	f := false
	spec.AssociatePublicIP = &f // EC2 maps no public address to a given interface
	return nil
}

// AdoptInterfaces gives every instance of this region launched before
// interfaces were records its primary interface record (eth0), made from
// the instance record; the instance keeps holding its address's claim,
// which its termination frees. Run once at start; idempotent.
func (s *Service) AdoptInterfaces(ctx context.Context) error {
	kvs, err := s.Store.List(ctx, AllPrefix)
	if err != nil {
		return err
	}
	for _, kv := range kvs {
		if !IsInstanceKey(kv.Key) {
			continue
		}
		var in Instance
		if err := json.Unmarshal(kv.Value, &in); err != nil {
			return fmt.Errorf("decoding %s: %w", kv.Key, err)
		}
		if in.Region != s.Region || in.NetworkInterfaceID != "" || in.VPCID == "" || in.PrivateIP == "" ||
			in.State == Terminated || in.State == ShuttingDown {
			continue
		}
		sc := resource.Scope{Account: in.Account, Region: in.Region}
		n := eni.Interface{
			Meta:  resource.Meta{ID: newInterfaceID(), CreateTime: in.LaunchTime},
			Owner: in.Account, VPCID: in.VPCID, SubnetID: in.SubnetID, Zone: in.Zone, MAC: in.MAC,
			PrivateIPs: []eni.PrivateIP{{Address: in.PrivateIP, Primary: true}}, Groups: in.SecurityGroups, SourceDestCheck: true,
		}
		eni.Launch{InstanceID: in.ID, Time: in.LaunchTime}.Attached(&n, 0, true)
		in.NetworkInterfaceID = n.ID
		err := s.Store.Apply(ctx,
			store.Op{Key: kv.Key, Value: in, ModRev: kv.ModRev},
			store.Op{Key: eni.Key(sc, n.ID), Value: n})
		if err != nil && !errors.Is(err, store.ErrConflict) { // changed meanwhile: the next start sees it
			return fmt.Errorf("adopting the interface of %s: %w", in.ID, err)
		}
	}
	return nil
}
