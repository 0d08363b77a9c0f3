package instance

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"time"

	"nubo/internal/ami"
	"nubo/internal/apierr"
	"nubo/internal/catalog"
	"nubo/internal/eni"
	"nubo/internal/keypair"
	"nubo/internal/resource"
	"nubo/internal/scheduler"
	"nubo/internal/store"
	"nubo/internal/topology"
	"nubo/internal/volume"
	"nubo/internal/vpc"
)

// Service records instances. It never runs anything: agents do.
type Service struct {
	Store    *store.Store
	Region   string
	Zones    []string
	Images   *ami.Registry
	KeyPairs *keypair.Service
	VPCs     *vpc.Service
	Public   *vpc.PublicPool
	// Volumes, when set, makes root volumes block volumes (encryptable,
	// snapshottable); nil keeps them overlays on the host's disk (tests).
	Volumes *volume.Service
	ENIs    *eni.Service
	// PlacementGroups resolves Placement.GroupName and GroupId; nil: none.
	PlacementGroups GroupLookup
	// Hibernation says whether this region's hosts can hibernate
	// instances: nil, or returning nil, yes; an error says why not, and
	// launches configured for hibernation are refused with it.
	Hibernation func() error
	Now         func() time.Time
}

// testHookAfterRead runs between a launch's read of the topology and its
// decision.
var testHookAfterRead = func() {}

// MaxLaunch is the most instances one RunInstances launches (EC2's
// max-instances account attribute): the launch is one etcd transaction of a
// few writes per instance.
const MaxLaunch = 1000

// RunSpec is a validated RunInstances request.
type RunSpec struct {
	ImageID, InstanceType, KeyName, Zone string
	SubnetID, PrivateIP                  string
	AssociatePublicIP                    *bool // nil: the subnet's MapPublicIpOnLaunch
	UserData, ClientToken                string
	ShutdownBehavior                     string // stop | terminate
	MinCount, MaxCount                   int
	RootSizeGiB                          int  // 0: the image's size
	DeleteOnTermination                  bool // of the root volume
	DisableAPITermination                bool
	Tags, VolumeTags                     []resource.Tag
	// InterfaceTags go on the interfaces the launch makes.
	InterfaceTags []resource.Tag `json:",omitempty"`
	// Security groups by ID and, in the default VPC only, by name; neither:
	// the VPC's default group. (omitempty keeps earlier ClientToken hashes.)
	SecurityGroupIDs   []string `json:",omitempty"`
	SecurityGroupNames []string `json:",omitempty"`
	// MetadataOptions as given (validated); nil: the defaults.
	MetadataOptions *MetadataOptions `json:",omitempty"`
	// Root is the rest of the root device's mapping (type, performance,
	// encryption); RootSizeGiB and DeleteOnTermination are above.
	Root *volume.RootSpec `json:",omitempty"`
	// Primary and Extra are NetworkInterface.N: more of the primary
	// interface, and interfaces at device indexes 1 and up.
	Primary PrimarySpec      `json:",omitzero"`
	Extra   []ExtraInterface `json:",omitempty"`
	// Placement: a placement group by name or ID, a partition in it (0:
	// the scheduler's choice), and the tenancy ("" default).
	PlacementGroupName string `json:",omitempty"`
	PlacementGroupID   string `json:",omitempty"`
	PartitionNumber    int    `json:",omitempty"`
	Tenancy            string `json:",omitempty"`
	// Hibernation is HibernationOptions.Configured.
	Hibernation bool `json:",omitempty"`
}

// Reservation is what RunInstances answers.
type Reservation struct {
	ID        string
	Account   string
	Instances []Instance
}

type idempotency struct {
	Hash          string   `json:"hash"`
	ReservationID string   `json:"reservationId"`
	InstanceIDs   []string `json:"instanceIds"`
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

func (s *Service) scope(account string) resource.Scope {
	return resource.Scope{Account: account, Region: s.Region}
}

// Run launches between MinCount and MaxCount instances, all or nothing
// against the host's capacity, idempotent by ClientToken.
func (s *Service) Run(ctx context.Context, account string, spec RunSpec) (Reservation, error) {
	it, ok := catalog.LookupInstanceType(spec.InstanceType)
	if !ok {
		return Reservation{}, apierr.New(apierr.InvalidParameterValue, "Invalid value '%s' for InstanceType.", spec.InstanceType)
	}
	im, err := s.Images.Get(ctx, account, spec.ImageID)
	if err != nil {
		return Reservation{}, err
	}
	if im.State != "available" {
		return Reservation{}, apierr.New("InvalidAMIID.Unavailable", "Image %s is %s, not available.", im.ID, im.State)
	}
	if im.Platform != "" {
		return Reservation{}, apierr.New(apierr.UnsupportedOperation,
			"Image %s is a %s image; nubo runs Linux/UNIX instances only (system containers), so it cannot launch it.", im.ID, im.PlatformDetails())
	}
	var publicKey string
	if spec.KeyName != "" {
		kp, err := s.KeyPairs.Get(ctx, s.scope(account), spec.KeyName)
		if err != nil {
			return Reservation{}, err
		}
		publicKey = kp.PublicKey
	}
	if spec.Zone != "" && !contains(s.Zones, spec.Zone) {
		return Reservation{}, apierr.New(apierr.InvalidParameterValue, "Invalid availability zone: [%s]", spec.Zone)
	}
	if err := s.takesInterfaces(ctx, account, &spec); err != nil {
		return Reservation{}, err
	}
	group, err := s.lookupGroup(ctx, account, spec.PlacementGroupName, spec.PlacementGroupID)
	if err != nil {
		return Reservation{}, err
	}
	where := spec // spec itself stays as asked: its hash keys ClientToken
	if where.SubnetID == "" && where.Zone == "" && group != nil {
		if where.Zone, err = s.groupZone(ctx, account, it, spec, group); err != nil {
			return Reservation{}, err
		}
	}
	sn, err := s.subnet(ctx, account, &where)
	if err != nil {
		return Reservation{}, err
	}
	if spec.PrivateIP != "" && spec.MaxCount > 1 {
		return Reservation{}, apierr.New(apierr.InvalidParameterCombination, "PrivateIpAddress can be given only when launching one instance (MaxCount 1).")
	}
	public := sn.MapPublicIPOnLaunch
	if spec.AssociatePublicIP != nil {
		public = *spec.AssociatePublicIP
	}
	if spec.RootSizeGiB == 0 {
		spec.RootSizeGiB = im.SizeGiB
	} else if spec.RootSizeGiB < im.SizeGiB {
		return Reservation{}, apierr.New(apierr.InvalidParameterValue,
			"Volume of size %dGB is smaller than snapshot of image %s, expect size >= %dGB", spec.RootSizeGiB, im.ID, im.SizeGiB)
	}
	root, err := s.planRoot(ctx, account, spec, im)
	if err != nil {
		return Reservation{}, err
	}
	if err := s.checkHibernation(spec, it, im, root); err != nil {
		return Reservation{}, err
	}
	if im.RootDeleteOnTermination != nil && (spec.Root == nil || spec.Root.DeleteOnTermination == nil) {
		spec.DeleteOnTermination = *im.RootDeleteOnTermination // the image's mapping's, unless the launch says
	}
	if spec.MinCount > MaxLaunch {
		return Reservation{}, apierr.New("InstanceLimitExceeded", "You have requested more instances (%d) than your current instance limit of %d allows.", spec.MinCount, MaxLaunch)
	}
	spec.MaxCount = min(spec.MaxCount, MaxLaunch)
	hash := spec.hash()
	idemKey := store.Root + "idem/" + account + "/" + s.Region + "/RunInstances/" + spec.ClientToken

	for attempt := 0; attempt < 20; attempt++ {
		if spec.ClientToken != "" {
			var prior idempotency
			if _, err := s.Store.Get(ctx, idemKey, &prior); err == nil {
				if prior.Hash != hash {
					return Reservation{}, apierr.New("IdempotentParameterMismatch",
						"The client token %s was used with different parameters.", spec.ClientToken)
				}
				return s.reservation(ctx, account, prior)
			} else if !errors.Is(err, store.ErrNotFound) {
				return Reservation{}, err
			}
		}
		groups, checks, err := s.groups(ctx, account, sn, spec.SecurityGroupIDs, spec.SecurityGroupNames)
		if err != nil {
			return Reservation{}, err
		}
		// The group's revision is read before the topology: a launch into
		// the group that commits after this read fails ours, and one that
		// committed before it is in the topology we decide from.
		var gop []store.Op
		if group != nil {
			op, err := s.groupOp(ctx, group)
			if err != nil {
				return Reservation{}, err
			}
			gop = append(gop, op)
		}
		view, err := topology.Read(ctx, s.Store)
		if err != nil {
			return Reservation{}, err
		}
		testHookAfterRead()
		ps, err := scheduler.Place(scheduler.Request{
			MinCount: spec.MinCount, MaxCount: spec.MaxCount, Zone: sn.Zone,
			VCPUs: int(it.VCpuInfo.DefaultVCpus), MemoryMiB: it.MemoryInfo.SizeInMiB,
			Account: account, Tenancy: spec.Tenancy, Group: group.sched(), Partition: spec.PartitionNumber,
		}, view.Scheduling(nil, ""))
		if err != nil {
			return Reservation{}, err
		}
		places := make([]place, len(ps))
		for i, p := range ps {
			h, _ := view.Host(p.Host)
			places[i] = place{host: h.ID, machine: h.Machine, partition: p.Partition}
		}
		res, ops, err := s.newReservation(ctx, account, spec, im, places, sn, root)
		if err != nil {
			return Reservation{}, err
		}
		ids, hosts, uses := make([]string, len(ps)), make([]string, len(ps)), make([]topology.Usage, len(ps))
		for i := range res.Instances {
			in := &res.Instances[i]
			in.SecurityGroups = groups
			in.PublicKey = publicKey
			in.Tenancy = spec.Tenancy
			if group != nil {
				in.PlacementGroupID, in.PlacementGroupName = group.ID, group.Name
			}
			ids[i], hosts[i], uses[i] = in.ID, in.Host, usage(it, *in)
		}
		ops = append(ops, view.Take(ids, hosts, uses)...)
		ops = append(ops, gop...)
		ops = append(ops, checks...)
		if ops, err = s.interfaces(ctx, account, spec, sn, public, &res, ops); err != nil {
			return Reservation{}, err
		}
		prior := idempotency{Hash: hash, ReservationID: res.ID, InstanceIDs: ids}
		if spec.ClientToken != "" {
			ops = append(ops, store.Op{Key: idemKey, Value: prior})
		}
		err = s.Store.Apply(ctx, ops...)
		if errors.Is(err, store.ErrConflict) {
			continue // capacity or the token changed meanwhile: decide again
		}
		if err != nil {
			return Reservation{}, fmt.Errorf("recording instances: %w", err)
		}
		return res, nil
	}
	return Reservation{}, apierr.New("RequestLimitExceeded", "Too many concurrent launches; retry.")
}

// place is where the scheduler put one instance.
type place struct {
	host, machine string
	partition     int
}

func (s *Service) newReservation(ctx context.Context, account string, spec RunSpec, im ami.Image, places []place, sn vpc.Subnet, root *volume.RootPlan) (Reservation, []store.Op, error) {
	now := s.now()
	res := Reservation{ID: resource.NewID(resource.Reservation), Account: account}
	var ops []store.Op
	tags, _ := resource.Merge("", nil, spec.Tags)
	vtags, _ := resource.Merge("", nil, spec.VolumeTags)
	checked := map[string]bool{} // snapshots the data volumes are made of
	for i, p := range places {
		in := Instance{
			Meta:                  resource.Meta{ID: resource.NewID(resource.Instance), Tags: tags, CreateTime: now},
			Account:               account,
			Region:                s.Region,
			ReservationID:         res.ID,
			LaunchIndex:           i,
			ImageID:               im.ID,
			InstanceType:          spec.InstanceType,
			KeyName:               spec.KeyName,
			Zone:                  sn.Zone,
			VPCID:                 sn.VPCID,
			SubnetID:              sn.ID,
			Host:                  p.host,
			Machine:               p.machine,
			Partition:             p.partition,
			UserData:              spec.UserData,
			ClientToken:           spec.ClientToken,
			Desired:               Running,
			Boot:                  1,
			State:                 Pending,
			StateReason:           ReasonPending,
			LaunchTime:            now,
			ShutdownBehavior:      spec.ShutdownBehavior,
			DisableAPITermination: spec.DisableAPITermination,
			RootVolumeID:          resource.NewID(resource.Volume),
			RootDevice:            im.RootDevice,
			RootSizeGiB:           spec.RootSizeGiB,
			DeleteOnTermination:   spec.DeleteOnTermination,
			Hibernation:           spec.Hibernation,
		}
		// Stored whole, so that later changes of the defaults leave running
		// instances as they were launched.
		if spec.MetadataOptions != nil {
			in.MetadataOptions = spec.MetadataOptions.Effective()
		} else {
			in.MetadataOptions = DefaultMetadataOptions
		}
		vol := volume.Volume{
			Meta:    resource.Meta{ID: in.RootVolumeID, Tags: vtags, CreateTime: now},
			SizeGiB: spec.RootSizeGiB, Zone: sn.Zone, Type: "gp3", Iops: 3000, Throughput: 125,
			State: "in-use", ImageID: im.ID, Host: p.machine,
			Attachment: &volume.Attachment{InstanceID: in.ID, Device: im.RootDevice, AttachTime: now, DeleteOnTermination: spec.DeleteOnTermination},
		}
		if root != nil {
			var err error
			vol, err = s.Volumes.RootRecord(ctx, s.scope(account), *root, volume.NewRoot{
				ID: in.RootVolumeID, InstanceID: in.ID, Device: im.RootDevice, Zone: sn.Zone,
				ImageID: im.ID, BaseImageID: im.Base(), SnapshotID: im.RootSnapshotID,
				DeleteOnTermination: spec.DeleteOnTermination, Tags: vtags, Time: now,
			})
			if err != nil {
				return Reservation{}, nil, err
			}
		}
		res.Instances = append(res.Instances, in)
		ops = append(ops, store.Op{Key: resource.Key(s.scope(account), resource.Volume, vol.ID), Value: vol})
		if root != nil {
			data, err := s.dataVolumes(ctx, account, in, im, vtags, checked)
			if err != nil {
				return Reservation{}, nil, err
			}
			ops = append(ops, data...)
		}
	}
	return res, ops, nil
}

// dataVolumes are the records of the data volumes the image's mapping
// makes for instance in (restored from its snapshots, attaching), and the
// checks on those snapshots not yet in checked.
func (s *Service) dataVolumes(ctx context.Context, account string, in Instance, im ami.Image, tags map[string]string, checked map[string]bool) ([]store.Op, error) {
	var ops []store.Op
	for _, m := range im.Data {
		var vt []resource.Tag
		for k, v := range tags {
			vt = append(vt, resource.Tag{Key: k, Value: v, HasValue: true})
		}
		var iops, throughput *int
		if volume.Types[m.VolumeType].IopsSettable && m.Iops > 0 {
			iops = &m.Iops
		}
		if volume.Types[m.VolumeType].ThroughputSettable && m.Throughput > 0 {
			throughput = &m.Throughput
		}
		v, checks, err := s.Volumes.LaunchRecord(ctx, s.scope(account), volume.LaunchSpec{
			CreateSpec: volume.CreateSpec{Zone: in.Zone, SizeGiB: m.SizeGiB, SnapshotID: m.SnapshotID, Type: m.VolumeType, Iops: iops, Throughput: throughput, Tags: vt},
			InstanceID: in.ID, Device: m.Device, DeleteOnTermination: m.DeleteOnTermination, Time: in.LaunchTime,
		})
		if err != nil {
			return nil, fmt.Errorf("volume %s of image %s: %w", m.Device, im.ID, err)
		}
		ops = append(ops, store.Op{Key: resource.Key(s.scope(account), resource.Volume, v.ID), Value: v})
		for _, c := range checks {
			if !checked[c.Key] {
				checked[c.Key] = true
				ops = append(ops, c)
			}
		}
	}
	return ops, nil
}

// planRoot settles the root block volume of a launch (nil when root
// volumes are overlays): the mapping's type and performance, encrypted
// when asked, by default, or when the image's root snapshot is.
func (s *Service) planRoot(ctx context.Context, account string, spec RunSpec, im ami.Image) (*volume.RootPlan, error) {
	if s.Volumes == nil {
		return nil, nil
	}
	var rs volume.RootSpec
	if spec.Root != nil {
		rs = *spec.Root
	}
	if rs.Type == "" {
		rs.Type = im.RootVolumeType
	}
	rs.SizeGiB = spec.RootSizeGiB
	if im.RootEncrypted {
		on := true
		rs.Encrypted = &on
		if rs.KmsKeyID == "" {
			rs.KmsKeyID = im.RootKmsKeyID
		}
	}
	p, err := s.Volumes.PlanRoot(ctx, s.scope(account), rs)
	if err != nil {
		return nil, err
	}
	return &p, nil
}

// subnet resolves where instances go: SubnetId, else the default VPC's
// default subnet in the asked zone (or the first zone).
func (s *Service) subnet(ctx context.Context, account string, spec *RunSpec) (vpc.Subnet, error) {
	if spec.SubnetID != "" {
		sn, err := s.VPCs.GetSubnet(ctx, account, spec.SubnetID)
		if err != nil {
			return vpc.Subnet{}, err
		}
		if spec.Zone != "" && spec.Zone != sn.Zone {
			return vpc.Subnet{}, apierr.New(apierr.InvalidParameterValue, "Subnet %s is in %s, not in the requested zone %s.", sn.ID, sn.Zone, spec.Zone)
		}
		return sn, nil
	}
	def, err := s.VPCs.DefaultVPC(ctx, account)
	if err != nil {
		return vpc.Subnet{}, err
	}
	zone := spec.Zone
	if zone == "" {
		zone = s.Zones[0]
	}
	all, err := s.VPCs.Subnets(ctx, account)
	if err != nil {
		return vpc.Subnet{}, err
	}
	for _, sn := range all {
		if sn.VPCID == def.ID && sn.DefaultForAZ && sn.Zone == zone {
			return sn, nil
		}
	}
	return vpc.Subnet{}, apierr.New("MissingInput", "No default subnet for availability zone %s: give a SubnetId.", zone)
}

// HostnameOf is EC2's IP-based hostname: ip-172-31-5-9.
func HostnameOf(ip netip.Addr) string {
	return "ip-" + strings.ReplaceAll(ip.String(), ".", "-")
}

func newInterfaceID() string { return resource.NewID(eni.Kind) }

// reservation rebuilds the answer to an earlier, identical RunInstances.
func (s *Service) reservation(ctx context.Context, account string, prior idempotency) (Reservation, error) {
	res := Reservation{ID: prior.ReservationID, Account: account}
	for _, id := range prior.InstanceIDs {
		in, err := s.Get(ctx, account, id)
		if err != nil {
			return Reservation{}, err
		}
		res.Instances = append(res.Instances, in)
	}
	return res, nil
}

func (spec RunSpec) hash() string {
	spec.ClientToken = ""
	b, _ := json.Marshal(spec)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Get reads one instance.
func (s *Service) Get(ctx context.Context, account, id string) (Instance, error) {
	if !resource.ValidID(resource.Instance, id) {
		return Instance{}, apierr.New("InvalidInstanceID.Malformed", "Invalid id: \"%s\"", id)
	}
	var in Instance
	if _, err := s.Store.Get(ctx, Key(account, s.Region, id), &in); errors.Is(err, store.ErrNotFound) {
		return Instance{}, apierr.New("InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", id)
	} else if err != nil {
		return Instance{}, err
	}
	return in, nil
}

// List returns the account's instances ordered by ID.
func (s *Service) List(ctx context.Context, account string) ([]Instance, error) {
	kvs, err := s.Store.List(ctx, resource.Prefix(s.scope(account), resource.Instance))
	if err != nil {
		return nil, err
	}
	out := make([]Instance, len(kvs))
	for i, kv := range kvs {
		if err := json.Unmarshal(kv.Value, &out[i]); err != nil {
			return nil, fmt.Errorf("decoding %s: %w", kv.Key, err)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Change is one instance's state before and after a request.
type Change struct {
	ID              string
	Previous, State string
}

// transition applies change to each instance (all must exist first) and
// returns the state changes. change returns an EC2 error to refuse.
func (s *Service) transition(ctx context.Context, account string, ids []string, change func(*Instance) error) ([]Change, error) {
	if len(ids) == 0 {
		return nil, apierr.Missing("InstanceId")
	}
	for _, id := range ids {
		if _, err := s.Get(ctx, account, id); err != nil {
			return nil, err
		}
	}
	var out []Change
	for _, id := range ids {
		var prev string
		in, err := store.Update(ctx, s.Store, Key(account, s.Region, id), func(in *Instance) error {
			prev = in.State
			return change(in)
		})
		if err != nil {
			return nil, err
		}
		out = append(out, Change{ID: id, Previous: prev, State: in.State})
	}
	return out, nil
}

func (s *Service) transitionReason(what string) string {
	return fmt.Sprintf("%s (%s)", what, s.now().Format("2006-01-02 15:04:05 MST"))
}

// Stop asks instances to stop; stopped ones stay stopped.
func (s *Service) Stop(ctx context.Context, account string, ids []string, force bool) ([]Change, error) {
	changes, err := s.transition(ctx, account, ids, func(in *Instance) error {
		switch in.State {
		case Stopped:
			return nil
		case Stopping:
			in.ForceStop = in.ForceStop || force // a second, forced stop hurries a slow one
			if force && in.Hibernate {           // and ends a hibernation stuck in stopping, as on EC2
				in.Hibernate, in.StateReason = false, ReasonUserStop
			}
			return nil
		case Terminated, ShuttingDown:
			return apierr.New("IncorrectInstanceState", "This instance '%s' is not in a state from which it can be stopped.", in.ID)
		}
		in.Desired, in.State, in.ForceStop, in.Hibernate = Stopped, Stopping, force, false
		in.StateReason = ReasonUserStop
		in.StateTransitionReason = s.transitionReason("User initiated")
		return nil
	})
	if err != nil {
		return nil, err
	}
	return changes, s.release(ctx, account, changes)
}

// Terminate asks instances to terminate, unless termination protection is on.
func (s *Service) Terminate(ctx context.Context, account string, ids []string) ([]Change, error) {
	for _, id := range ids {
		in, err := s.Get(ctx, account, id)
		if err != nil {
			return nil, err
		}
		if in.DisableAPITermination && in.State != Terminated {
			return nil, apierr.New("OperationNotPermitted",
				"The instance '%s' may not be terminated. Modify its 'disableApiTermination' instance attribute and try again.", id)
		}
	}
	changes, err := s.transition(ctx, account, ids, func(in *Instance) error {
		if in.State == Terminated || in.State == ShuttingDown {
			return nil
		}
		in.Desired, in.State = Terminated, ShuttingDown
		in.StateReason = ReasonUserTerminate
		in.StateTransitionReason = s.transitionReason("User initiated")
		return nil
	})
	if err != nil {
		return nil, err
	}
	return changes, s.release(ctx, account, changes)
}

func (s *Service) release(ctx context.Context, account string, changes []Change) error {
	byHost := map[string][]string{}
	for _, c := range changes {
		in, err := s.Get(ctx, account, c.ID)
		if err != nil {
			return err
		}
		byHost[in.Host] = append(byHost[in.Host], c.ID)
	}
	for host, ids := range byHost {
		if err := topology.Release(ctx, s.Store, host, ids...); err != nil {
			return err
		}
	}
	return nil
}

// Start asks stopped instances to run again, taking capacity back.
func (s *Service) Start(ctx context.Context, account string, ids []string) ([]Change, error) {
	if len(ids) == 0 {
		return nil, apierr.Missing("InstanceId")
	}
	var out []Change
	for _, id := range ids {
		c, err := s.startOne(ctx, account, id)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

func (s *Service) startOne(ctx context.Context, account, id string) (Change, error) {
	for {
		var in Instance
		irev, err := s.Store.Get(ctx, Key(account, s.Region, id), &in)
		if errors.Is(err, store.ErrNotFound) {
			return Change{}, apierr.New("InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", id)
		} else if err != nil {
			return Change{}, err
		}
		switch in.State {
		case Pending, Running:
			return Change{ID: id, Previous: in.State, State: in.State}, nil
		case Stopped:
		default:
			return Change{}, apierr.New("IncorrectInstanceState", "The instance '%s' is not in a state from which it can be started.", id)
		}
		ops, err := s.replace(ctx, &in)
		if err != nil {
			return Change{}, err
		}
		prev := in.State
		in.Desired, in.State, in.Boot, in.ForceStop = Running, Pending, in.Boot+1, false
		in.StateReason, in.StateTransitionReason = ReasonPending, ""
		in.LaunchTime = s.now()
		if in.AssignPublic && in.PublicIP == "" && in.ElasticIP == "" { // a new public address at every start, as in EC2
			var avoid []netip.Addr
			if last, err := netip.ParseAddr(in.LastPublicIP); err == nil {
				avoid = append(avoid, last)
			}
			pubs, claims, err := s.Public.Allocate(ctx, account, []string{id}, avoid...)
			if err != nil {
				return Change{}, err
			}
			in.PublicIP = pubs[0].String()
			ops = append(ops, claims...)
		}
		ops = append(ops, store.Op{Key: Key(account, s.Region, id), Value: in, ModRev: irev})
		err = s.Store.Apply(ctx, ops...)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return Change{}, err
		}
		return Change{ID: id, Previous: prev, State: in.State}, nil
	}
}

// Reboot asks running instances to restart.
func (s *Service) Reboot(ctx context.Context, account string, ids []string) error {
	_, err := s.transition(ctx, account, ids, func(in *Instance) error {
		switch in.State {
		case Running, Pending:
			in.Boot++
			return nil
		case Terminated, ShuttingDown:
			return apierr.New("IncorrectInstanceState", "The instance '%s' is not in a state from which it can be rebooted.", in.ID)
		}
		return nil // stopped: nothing to reboot
	})
	return err
}

// Modify changes an attribute through mutate (which validates).
func (s *Service) Modify(ctx context.Context, account, id string, mutate func(*Instance) error) error {
	if _, err := s.Get(ctx, account, id); err != nil {
		return err
	}
	_, err := store.Update(ctx, s.Store, Key(account, s.Region, id), mutate)
	return err
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}
