package ec2

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"nubo/internal/api/ec2query"
	"nubo/internal/apierr"
	"nubo/internal/catalog"
	"nubo/internal/eni"
	"nubo/internal/instance"
	"nubo/internal/resource"
	"nubo/internal/volume"
	"nubo/internal/vpc"
)

func (a *API) runInstances(ctx context.Context, r *ec2query.Request) (any, error) {
	p := r.Params
	spec := instance.RunSpec{
		ImageID:             p.String("ImageId"),
		InstanceType:        p.String("InstanceType"),
		KeyName:             p.String("KeyName"),
		Zone:                p.Member("Placement").String("AvailabilityZone"),
		SubnetID:            p.String("SubnetId"),
		PrivateIP:           p.String("PrivateIpAddress"),
		UserData:            p.String("UserData"),
		ClientToken:         p.String("ClientToken"),
		ShutdownBehavior:    p.String("InstanceInitiatedShutdownBehavior"),
		DeleteOnTermination: true,
	}
	if spec.ImageID == "" {
		return nil, apierr.Missing("ImageId")
	}
	if !resource.ValidID(resource.Image, spec.ImageID) {
		return nil, apierr.New("InvalidAMIID.Malformed", "Invalid id: \"%s\" (expecting \"ami-...\")", spec.ImageID)
	}
	if spec.InstanceType == "" {
		spec.InstanceType = "m1.small" // EC2's default, which nubo does not offer
	}
	if _, ok := catalog.LookupInstanceType(spec.InstanceType); !ok {
		return nil, apierr.New(apierr.InvalidParameterValue, "Invalid value '%s' for InstanceType. nubo offers: see DescribeInstanceTypes.", spec.InstanceType)
	}
	var err error
	if spec.MinCount, err = requiredCount(p, "MinCount"); err != nil {
		return nil, err
	}
	if spec.MaxCount, err = requiredCount(p, "MaxCount"); err != nil {
		return nil, err
	}
	if spec.MinCount > spec.MaxCount {
		return nil, apierr.New(apierr.InvalidParameterValue, "MinCount (%d) must be less than or equal to MaxCount (%d).", spec.MinCount, spec.MaxCount)
	}
	if len(spec.ClientToken) > 64 {
		return nil, apierr.InvalidValue("ClientToken", spec.ClientToken, "It must be at most 64 ASCII characters.")
	}
	if err := launchInterfaces(p, &spec); err != nil {
		return nil, err
	}
	if err := launchPlacement(p.Member("Placement"), &spec); err != nil {
		return nil, err
	}
	if spec.SecurityGroupIDs, spec.SecurityGroupNames, err = launchGroups(p); err != nil {
		return nil, err
	}
	if spec.SubnetID != "" && !resource.ValidID(resource.Subnet, spec.SubnetID) {
		return nil, apierr.New("InvalidSubnetID.Malformed", "Invalid id: \"%s\" (expecting \"subnet-...\")", spec.SubnetID)
	}
	switch spec.ShutdownBehavior {
	case "":
		spec.ShutdownBehavior = "stop"
	case "stop", "terminate":
	default:
		return nil, apierr.InvalidValue("InstanceInitiatedShutdownBehavior", spec.ShutdownBehavior, "Valid values are stop and terminate.")
	}
	if spec.DisableAPITermination, err = p.Bool("DisableApiTermination"); err != nil {
		return nil, err
	}
	if spec.UserData != "" {
		raw, err := base64.StdEncoding.DecodeString(spec.UserData)
		if err != nil {
			return nil, apierr.New(apierr.InvalidParameterValue, "Invalid BASE64 encoding of user data.")
		}
		if len(raw) > 16*1024 {
			return nil, apierr.New(apierr.InvalidParameterValue, "User data is limited to 16384 bytes (got %d).", len(raw))
		}
	}
	if spec.Hibernation, err = p.Member("HibernationOptions").Bool("Configured"); err != nil {
		return nil, err
	}
	if mo, given, err := parseMetadataOptions(p.Member("MetadataOptions")); err != nil {
		return nil, err
	} else if given {
		spec.MetadataOptions = &mo
	}
	for _, bdm := range p.Members("BlockDeviceMapping") {
		ebs := bdm.Member("Ebs")
		if n, ok, err := ebs.Int("VolumeSize"); err != nil {
			return nil, err
		} else if ok {
			if n < 1 || n > 16384 {
				return nil, apierr.InvalidValue(ebs.Name("VolumeSize"), strconv.Itoa(n), "Volume size must be between 1 and 16384 GiB.")
			}
			spec.RootSizeGiB = n
		}
		if d, err := ebs.OptBool("DeleteOnTermination"); err != nil {
			return nil, err
		} else if d != nil {
			spec.DeleteOnTermination = *d
		}
		if err := parseRootEbs(ebs, &spec); err != nil {
			return nil, err
		}
	}
	for _, ts := range p.Members("TagSpecification") {
		rt, err := ts.Required("ResourceType")
		if err != nil {
			return nil, err
		}
		tags := parseTags(ts, "Tag")
		if err := resource.ValidateTags(ts.Name("Tag"), tags); err != nil {
			return nil, err
		}
		switch rt {
		case "instance":
			spec.Tags = append(spec.Tags, tags...)
		case "volume":
			spec.VolumeTags = append(spec.VolumeTags, tags...)
		case "network-interface":
			spec.InterfaceTags = append(spec.InterfaceTags, tags...)
		default:
			return nil, apierr.New(apierr.InvalidParameterValue, "'%s' is not a valid taggable resource type for this operation.", rt)
		}
	}
	if err := r.CheckDryRun(); err != nil {
		return nil, err
	}
	res, err := a.Instances.Run(ctx, r.Account, spec)
	if err != nil {
		return nil, err
	}
	groups, err := a.groupNames(ctx, r.Account)
	if err != nil {
		return nil, err
	}
	items := make([]instanceItem, len(res.Instances))
	names := a.dnsNamer(ctx, r.Account)
	for i, in := range res.Instances {
		items[i] = a.instanceItem(in, names, groups, nil) // nothing attached yet
	}
	ptrs := make([]*instanceItem, len(items))
	for i := range items {
		ptrs[i] = &items[i]
	}
	v, err := a.newENIView(ctx, r, groups, names, res.Instances)
	if err != nil {
		return nil, err
	}
	if err := a.withInterfaces(ctx, r, ptrs, v); err != nil {
		return nil, err
	}
	return struct {
		ReservationID string                      `xml:"reservationId"`
		OwnerID       string                      `xml:"ownerId"`
		GroupSet      ec2query.List[struct{}]     `xml:"groupSet"`
		InstancesSet  ec2query.List[instanceItem] `xml:"instancesSet"`
	}{res.ID, r.Account, ec2query.List[struct{}]{}, ec2query.ListOf(items)}, nil
}

func requiredCount(p ec2query.Params, name string) (int, error) {
	n, ok, err := p.Int(name)
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, apierr.Missing(name)
	}
	if n < 1 {
		return 0, apierr.InvalidValue(name, strconv.Itoa(n), "It must be at least 1.")
	}
	return n, nil
}

type stateItem struct {
	Code int    `xml:"code"`
	Name string `xml:"name"`
}

func stateOf(name string) stateItem { return stateItem{instance.StateCode(name), name} }

type reasonItem struct {
	Code    string `xml:"code"`
	Message string `xml:"message"`
}

type ebsMapping struct {
	VolumeID            string `xml:"volumeId"`
	Status              string `xml:"status"`
	AttachTime          string `xml:"attachTime"`
	DeleteOnTermination bool   `xml:"deleteOnTermination"`
}

type blockDevice struct {
	DeviceName string     `xml:"deviceName"`
	Ebs        ebsMapping `xml:"ebs"`
}

// blockDevices is an instance's block device mapping: its root volume, then
// the block volumes attached to it (vols, in attach order) in whatever
// state their attachment is.
func blockDevices(in instance.Instance, vols []volume.Volume) []blockDevice {
	out := []blockDevice{{DeviceName: in.RootDevice, Ebs: ebsMapping{
		VolumeID: in.RootVolumeID, Status: volume.Attached, AttachTime: ec2query.Time(in.LaunchTime), DeleteOnTermination: in.DeleteOnTermination}}}
	for _, v := range vols {
		a := v.Attachment
		out = append(out, blockDevice{DeviceName: a.Device, Ebs: ebsMapping{
			VolumeID: v.ID, Status: a.Status(), AttachTime: ec2query.Time(a.AttachTime), DeleteOnTermination: a.DeleteOnTermination}})
	}
	return out
}

// attachedVolumes maps instance IDs to the block volumes attached to them,
// read once per call; none when the API keeps no volumes.
func (a *API) attachedVolumes(ctx context.Context, account string) (map[string][]volume.Volume, error) {
	if a.Volumes == nil {
		return map[string][]volume.Volume{}, nil
	}
	vols, err := a.Volumes.List(ctx, resource.Scope{Account: account, Region: a.Region.Name})
	if err != nil {
		return nil, err
	}
	return volume.ByInstance(vols), nil
}

// bdmFilters are the block-device-mapping.* filters over the mappings
// blockDevices makes with vols.
func bdmFilters(vols map[string][]volume.Volume) map[string]ec2query.FilterFunc[instance.Instance] {
	values := func(get func(blockDevice) []string) ec2query.FilterFunc[instance.Instance] {
		return func(in instance.Instance) []string {
			if in.State == instance.Terminated {
				return nil
			}
			var out []string
			for _, d := range blockDevices(in, vols[in.ID]) {
				out = append(out, get(d)...)
			}
			return out
		}
	}
	return map[string]ec2query.FilterFunc[instance.Instance]{
		"block-device-mapping.attach-time": values(func(d blockDevice) []string {
			t, _ := time.Parse("2006-01-02T15:04:05.000Z", d.Ebs.AttachTime)
			return []string{d.Ebs.AttachTime, t.Format(time.RFC3339)}
		}),
		"block-device-mapping.delete-on-termination": values(func(d blockDevice) []string { return one(strconv.FormatBool(d.Ebs.DeleteOnTermination)) }),
		"block-device-mapping.device-name":           values(func(d blockDevice) []string { return one(d.DeviceName) }),
		"block-device-mapping.status":                values(func(d blockDevice) []string { return one(d.Ebs.Status) }),
		"block-device-mapping.volume-id":             values(func(d blockDevice) []string { return one(d.Ebs.VolumeID) }),
	}
}

type instanceItem struct {
	InstanceID            string                       `xml:"instanceId"`
	ImageID               string                       `xml:"imageId"`
	InstanceState         stateItem                    `xml:"instanceState"`
	PrivateDNSName        string                       `xml:"privateDnsName"`
	DNSName               string                       `xml:"dnsName"`
	Reason                string                       `xml:"reason"`
	KeyName               string                       `xml:"keyName,omitempty"`
	AmiLaunchIndex        int                          `xml:"amiLaunchIndex"`
	ProductCodes          ec2query.List[struct{}]      `xml:"productCodes"`
	InstanceType          string                       `xml:"instanceType"`
	LaunchTime            string                       `xml:"launchTime"`
	Placement             placementItem                `xml:"placement"`
	Monitoring            monitoringItem               `xml:"monitoring"`
	StateReason           *reasonItem                  `xml:"stateReason,omitempty"`
	Architecture          string                       `xml:"architecture"`
	RootDeviceType        string                       `xml:"rootDeviceType"`
	RootDeviceName        string                       `xml:"rootDeviceName"`
	BlockDeviceMapping    ec2query.List[blockDevice]   `xml:"blockDeviceMapping"`
	VirtualizationType    string                       `xml:"virtualizationType"`
	SubnetID              string                       `xml:"subnetId,omitempty"`
	VpcID                 string                       `xml:"vpcId,omitempty"`
	PrivateIPAddress      string                       `xml:"privateIpAddress,omitempty"`
	IPAddress             string                       `xml:"ipAddress,omitempty"`
	SourceDestCheck       bool                         `xml:"sourceDestCheck"`
	GroupSet              ec2query.List[instanceGroup] `xml:"groupSet"`
	ClientToken           string                       `xml:"clientToken"`
	TagSet                *ec2query.List[ec2query.Tag] `xml:"tagSet"`
	Hypervisor            string                       `xml:"hypervisor"`
	EbsOptimized          bool                         `xml:"ebsOptimized"`
	EnaSupport            bool                         `xml:"enaSupport"`
	CPUOptions            cpuOptions                   `xml:"cpuOptions"`
	HibernationOptions    hibernationItem              `xml:"hibernationOptions"`
	PlatformDetails       string                       `xml:"platformDetails"`
	UsageOperation        string                       `xml:"usageOperation"`
	CurrentInstanceBootMd string                       `xml:"currentInstanceBootMode"`
	MetadataOptions       metadataOptionsItem          `xml:"metadataOptions"`
	NetworkInterfaceSet   ec2query.List[eniItem]       `xml:"networkInterfaceSet"`
}

type monitoringItem struct {
	State string `xml:"state"`
}

type hibernationItem struct {
	Configured bool `xml:"configured"`
}

type placementItem struct {
	AvailabilityZone string `xml:"availabilityZone"`
	GroupName        string `xml:"groupName"`
	GroupID          string `xml:"groupId,omitempty"`
	PartitionNumber  int    `xml:"partitionNumber,omitempty"`
	HostID           string `xml:"hostId,omitempty"`
	Tenancy          string `xml:"tenancy"`
}

// placementOf is where an instance runs: its zone, group, partition and host.
func placementOf(in instance.Instance) placementItem {
	return placementItem{AvailabilityZone: in.Zone, GroupName: in.PlacementGroupName, GroupID: in.PlacementGroupID,
		PartitionNumber: in.Partition, HostID: hostID(in), Tenancy: tenancyOf(in)}
}

// hostID is the instance's host, for records placed on a topology's hosts.
func hostID(in instance.Instance) string {
	if strings.HasPrefix(in.Host, "h-") {
		return in.Host
	}
	return ""
}

func tenancyOf(in instance.Instance) string {
	if in.Tenancy == "" {
		return "default"
	}
	return in.Tenancy
}

type cpuOptions struct {
	CoreCount      int `xml:"coreCount"`
	ThreadsPerCore int `xml:"threadsPerCore"`
}

// dnsNamer gives an instance's private and public DNS names, as EC2 forms
// them for the region; public names only where the VPC has DNS hostnames on.
func (a *API) dnsNamer(ctx context.Context, account string) func(instance.Instance) (string, string) {
	hostnames := map[string]bool{}
	if vs, err := a.VPCs.VPCs(ctx, account); err == nil {
		for _, v := range vs {
			hostnames[v.ID] = v.DNSHostnames
		}
	}
	return func(in instance.Instance) (private, public string) {
		if ip, err := netip.ParseAddr(in.PrivateIP); err == nil {
			private = vpc.PrivateDNSName(a.Region.Name, ip)
		}
		if ip, err := netip.ParseAddr(in.PublicIP); err == nil && hostnames[in.VPCID] {
			public = vpc.PublicDNSName(a.Region.Name, ip)
		}
		return private, public
	}
}

// instanceItem renders an instance; groups maps security group IDs to
// names; vols are the block volumes attached to it.
func (a *API) instanceItem(in instance.Instance, names func(instance.Instance) (string, string), groups map[string]string, vols []volume.Volume) instanceItem {
	it, _ := catalog.LookupInstanceType(in.InstanceType)
	private, public := names(in)
	item := instanceItem{
		PrivateDNSName:        private,
		DNSName:               public,
		SubnetID:              in.SubnetID,
		VpcID:                 in.VPCID,
		PrivateIPAddress:      in.PrivateIP,
		IPAddress:             in.PublicIP,
		SourceDestCheck:       true,
		InstanceID:            in.ID,
		ImageID:               in.ImageID,
		InstanceState:         stateOf(in.State),
		Reason:                in.StateTransitionReason,
		KeyName:               in.KeyName,
		AmiLaunchIndex:        in.LaunchIndex,
		InstanceType:          in.InstanceType,
		LaunchTime:            ec2query.Time(in.LaunchTime),
		Placement:             placementOf(in),
		Architecture:          "x86_64",
		RootDeviceType:        "ebs",
		RootDeviceName:        in.RootDevice,
		VirtualizationType:    "hvm",
		ClientToken:           in.ClientToken,
		TagSet:                ec2query.TagSet(in.Tags),
		Hypervisor:            "xen",
		EnaSupport:            true,
		CPUOptions:            cpuOptions{int(it.VCpuInfo.DefaultCores), int(it.VCpuInfo.DefaultThreadsPerCore)},
		PlatformDetails:       "Linux/UNIX",
		UsageOperation:        "RunInstances",
		CurrentInstanceBootMd: "legacy-bios",
		MetadataOptions:       metadataOptionsOf(in.MetadataOptions),
		HibernationOptions:    hibernationItem{Configured: in.Hibernation},
	}
	item.Monitoring.State = "disabled"
	if in.StateReason != nil {
		item.StateReason = &reasonItem{in.StateReason.Code, in.StateReason.Message}
	}
	if in.State != instance.Terminated { // its interface and volume are gone
		item.GroupSet = instanceGroupSet(in.SecurityGroups, groups)
		item.BlockDeviceMapping.Items = blockDevices(in, vols)
	}
	return item
}

func launchTimeValue(in instance.Instance) []string {
	return []string{ec2query.Time(in.LaunchTime), in.LaunchTime.UTC().Format(time.RFC3339)}
}

var instanceFilters = map[string]ec2query.FilterFunc[instance.Instance]{
	"instance-id":                 func(in instance.Instance) []string { return []string{in.ID} },
	"instance-state-name":         func(in instance.Instance) []string { return []string{in.State} },
	"instance-state-code":         func(in instance.Instance) []string { return []string{strconv.Itoa(instance.StateCode(in.State))} },
	"instance-type":               func(in instance.Instance) []string { return []string{in.InstanceType} },
	"image-id":                    func(in instance.Instance) []string { return []string{in.ImageID} },
	"key-name":                    func(in instance.Instance) []string { return []string{in.KeyName} },
	"availability-zone":           func(in instance.Instance) []string { return []string{in.Zone} },
	"placement.availability-zone": func(in instance.Instance) []string { return []string{in.Zone} },
	"reservation-id":              func(in instance.Instance) []string { return []string{in.ReservationID} },
	"launch-time":                 launchTimeValue,
	"launch-index":                func(in instance.Instance) []string { return []string{strconv.Itoa(in.LaunchIndex)} },
	"client-token":                func(in instance.Instance) []string { return []string{in.ClientToken} },
	"architecture":                func(in instance.Instance) []string { return []string{"x86_64"} },
	"root-device-type":            func(in instance.Instance) []string { return []string{"ebs"} },
	"root-device-name":            func(in instance.Instance) []string { return []string{in.RootDevice} },
	"state-reason-code": func(in instance.Instance) []string {
		if in.StateReason == nil {
			return nil
		}
		return []string{in.StateReason.Code}
	},
	"owner-id":             func(in instance.Instance) []string { return []string{in.Account} },
	"platform-details":     func(in instance.Instance) []string { return []string{"Linux/UNIX"} },
	"tenancy":              func(in instance.Instance) []string { return []string{tenancyOf(in)} },
	"placement-group-name": func(in instance.Instance) []string { return nonEmpty(in.PlacementGroupName) },
	"placement-group-id":   func(in instance.Instance) []string { return nonEmpty(in.PlacementGroupID) },
	"placement-partition-number": func(in instance.Instance) []string {
		if in.Partition == 0 {
			return nil
		}
		return []string{strconv.Itoa(in.Partition)}
	},
	"host-id":   func(in instance.Instance) []string { return nonEmpty(hostID(in)) },
	"subnet-id": func(in instance.Instance) []string { return []string{in.SubnetID} },
	"vpc-id":    func(in instance.Instance) []string { return []string{in.VPCID} },
	"private-ip-address": func(in instance.Instance) []string {
		return nonEmpty(in.PrivateIP)
	},
	"ip-address": func(in instance.Instance) []string { return nonEmpty(in.PublicIP) },
	"network-interface.addresses.private-ip-address": func(in instance.Instance) []string {
		return nonEmpty(in.PrivateIP)
	},
	"metadata-options.http-tokens": func(in instance.Instance) []string {
		return []string{in.MetadataOptions.Effective().HTTPTokens}
	},
	"metadata-options.http-endpoint": func(in instance.Instance) []string {
		return []string{in.MetadataOptions.Effective().HTTPEndpoint}
	},
	"metadata-options.http-put-response-hop-limit": func(in instance.Instance) []string {
		return []string{strconv.Itoa(in.MetadataOptions.Effective().HTTPPutResponseHopLimit)}
	},
	"metadata-options.instance-metadata-tags": func(in instance.Instance) []string {
		return []string{in.MetadataOptions.Effective().InstanceMetadataTags}
	},
	"metadata-options.http-protocol-ipv6": func(in instance.Instance) []string {
		return []string{in.MetadataOptions.Effective().HTTPProtocolIPv6}
	},
	"hibernation-options.configured": func(in instance.Instance) []string {
		return []string{strconv.FormatBool(in.Hibernation)}
	},
	"instance.group-id":          instanceGroupIDs,
	"network-interface.group-id": instanceGroupIDs,
	"group-id":                   instanceGroupIDs,
}

func instanceTags(in instance.Instance) ec2query.Tags { return in.Tags }

// selectInstances lists the account's instances, narrowed to InstanceId.N
// (each of which must exist) and filters; vols (attachedVolumes, nil: read
// here if a filter needs it) are the attached volumes.
func (a *API) selectInstances(ctx context.Context, r *ec2query.Request, vols map[string][]volume.Volume) ([]instance.Instance, error) {
	filters, err := ec2query.ParseFilters(r.Params)
	if err != nil {
		return nil, err
	}
	var names map[string]string
	for _, f := range filters {
		if instanceGroupNameFilters[f.Name] && names == nil {
			if names, err = a.groupNames(ctx, r.Account); err != nil {
				return nil, err
			}
		}
		if strings.HasPrefix(f.Name, "block-device-mapping.") && vols == nil {
			if vols, err = a.attachedVolumes(ctx, r.Account); err != nil {
				return nil, err
			}
		}
	}
	var byInstance map[string][]eni.Interface
	for _, f := range filters {
		if _, ok := byENI(f.Name, nil); ok && byInstance == nil && a.ENIs != nil {
			all, err := a.ENIs.List(ctx, a.scope(r))
			if err != nil {
				return nil, err
			}
			byInstance = map[string][]eni.Interface{}
			for _, n := range all {
				if n.Attachment != nil {
					byInstance[n.Attachment.InstanceID] = append(byInstance[n.Attachment.InstanceID], n)
				}
			}
		}
	}
	bdm, known := bdmFilters(vols), instanceFilter(names)
	m, err := ec2query.CompileWith(filters, func(name string) (ec2query.FilterFunc[instance.Instance], bool) {
		if f, ok := bdm[name]; ok {
			return f, true
		}
		if f, ok := byENI(name, byInstance); ok && byInstance != nil {
			return f, true
		}
		return known(name)
	}, instanceTags)
	if err != nil {
		return nil, err
	}
	ids := r.Params.Strings("InstanceId")
	var all []instance.Instance
	if len(ids) > 0 {
		var missing []string
		for _, id := range ids {
			in, err := a.Instances.Get(ctx, r.Account, id)
			if e, ok := apierr.As(err); ok && e.Code == "InvalidInstanceID.NotFound" {
				missing = append(missing, id)
				continue
			} else if err != nil {
				return nil, err
			}
			all = append(all, in)
		}
		if len(missing) > 0 {
			return nil, apierr.New("InvalidInstanceID.NotFound", "The instance IDs '%s' do not exist", strings.Join(missing, ", "))
		}
	} else if all, err = a.Instances.List(ctx, r.Account); err != nil {
		return nil, err
	}
	return m.Apply(all), nil
}

type reservationItem struct {
	ReservationID string                      `xml:"reservationId"`
	OwnerID       string                      `xml:"ownerId"`
	GroupSet      ec2query.List[struct{}]     `xml:"groupSet"`
	InstancesSet  ec2query.List[instanceItem] `xml:"instancesSet"`
}

func (a *API) describeInstances(ctx context.Context, r *ec2query.Request) (any, error) {
	page, err := ec2query.ParsePage(r.Params, 5, 1000)
	if err != nil {
		return nil, err
	}
	if page.Max > 0 && len(r.Params.Strings("InstanceId")) > 0 {
		return nil, apierr.New(apierr.InvalidParameterCombination, "The parameter instancesSet cannot be used with the parameter maxResults")
	}
	vols, err := a.attachedVolumes(ctx, r.Account)
	if err != nil {
		return nil, err
	}
	all, err := a.selectInstances(ctx, r, vols)
	if err != nil {
		return nil, err
	}
	ins, next, err := ec2query.Paginate(all, func(in instance.Instance) string { return in.ID }, page)
	if err != nil {
		return nil, err
	}
	groups, err := a.groupNames(ctx, r.Account)
	if err != nil {
		return nil, err
	}
	names := a.dnsNamer(ctx, r.Account)
	// Group into reservations, in order of first appearance.
	var out []reservationItem
	index := map[string]int{}
	for _, in := range ins {
		i, ok := index[in.ReservationID]
		if !ok {
			i = len(out)
			index[in.ReservationID] = i
			out = append(out, reservationItem{ReservationID: in.ReservationID, OwnerID: in.Account})
		}
		out[i].InstancesSet.Items = append(out[i].InstancesSet.Items, a.instanceItem(in, names, groups, vols[in.ID]))
	}
	var ptrs []*instanceItem
	for i := range out {
		for j := range out[i].InstancesSet.Items {
			ptrs = append(ptrs, &out[i].InstancesSet.Items[j])
		}
	}
	v, err := a.newENIView(ctx, r, groups, names, ins)
	if err != nil {
		return nil, err
	}
	if err := a.withInterfaces(ctx, r, ptrs, v); err != nil {
		return nil, err
	}
	return struct {
		ReservationSet ec2query.List[reservationItem] `xml:"reservationSet"`
		NextToken      string                         `xml:"nextToken,omitempty"`
	}{ec2query.ListOf(out), next}, nil
}

type statusDetail struct {
	Name   string `xml:"name"`
	Status string `xml:"status"`
}

type statusSummary struct {
	Status  string                      `xml:"status"`
	Details ec2query.List[statusDetail] `xml:"details"`
}

type instanceStatusItem struct {
	InstanceID       string        `xml:"instanceId"`
	AvailabilityZone string        `xml:"availabilityZone"`
	InstanceState    stateItem     `xml:"instanceState"`
	SystemStatus     statusSummary `xml:"systemStatus"`
	InstanceStatus   statusSummary `xml:"instanceStatus"`
}

func (a *API) describeInstanceStatus(ctx context.Context, r *ec2query.Request) (any, error) {
	includeAll, err := r.Params.Bool("IncludeAllInstances")
	if err != nil {
		return nil, err
	}
	page, err := ec2query.ParsePage(r.Params, 5, 1000)
	if err != nil {
		return nil, err
	}
	all, err := a.selectInstances(ctx, r, nil)
	if err != nil {
		return nil, err
	}
	var items []instanceStatusItem
	for _, in := range all {
		if in.State != instance.Running && !includeAll {
			continue
		}
		st := "not-applicable"
		det := ec2query.List[statusDetail]{}
		if in.State == instance.Running {
			st = "ok"
			det.Items = []statusDetail{{"reachability", "passed"}}
		}
		items = append(items, instanceStatusItem{in.ID, in.Zone, stateOf(in.State), statusSummary{st, det}, statusSummary{st, det}})
	}
	items, next, err := ec2query.Paginate(items, func(s instanceStatusItem) string { return s.InstanceID }, page)
	if err != nil {
		return nil, err
	}
	return struct {
		InstanceStatusSet ec2query.List[instanceStatusItem] `xml:"instanceStatusSet"`
		NextToken         string                            `xml:"nextToken,omitempty"`
	}{ec2query.ListOf(items), next}, nil
}

type changeItem struct {
	InstanceID    string    `xml:"instanceId"`
	CurrentState  stateItem `xml:"currentState"`
	PreviousState stateItem `xml:"previousState"`
}

func changeSet(changes []instance.Change) any {
	items := make([]changeItem, len(changes))
	for i, c := range changes {
		items[i] = changeItem{c.ID, stateOf(c.State), stateOf(c.Previous)}
	}
	return struct {
		InstancesSet ec2query.List[changeItem] `xml:"instancesSet"`
	}{ec2query.ListOf(items)}
}

func (a *API) instanceIDs(r *ec2query.Request) ([]string, error) {
	ids := r.Params.Strings("InstanceId")
	if len(ids) == 0 {
		return nil, apierr.Missing("InstanceId")
	}
	for _, id := range ids {
		if !resource.ValidID(resource.Instance, id) {
			return nil, apierr.New("InvalidInstanceID.Malformed", "Invalid id: \"%s\"", id)
		}
	}
	return ids, r.CheckDryRun()
}

func (a *API) stopInstances(ctx context.Context, r *ec2query.Request) (any, error) {
	force, err := r.Params.Bool("Force")
	if err != nil {
		return nil, err
	}
	hibernate, err := r.Params.Bool("Hibernate")
	if err != nil {
		return nil, err
	}
	ids, err := a.instanceIDs(r)
	if err != nil {
		return nil, err
	}
	stop := a.Instances.Stop
	if hibernate {
		stop = a.Instances.StopHibernate
	}
	changes, err := stop(ctx, r.Account, ids, force)
	if err != nil {
		return nil, err
	}
	return changeSet(changes), nil
}

func (a *API) startInstances(ctx context.Context, r *ec2query.Request) (any, error) {
	ids, err := a.instanceIDs(r)
	if err != nil {
		return nil, err
	}
	changes, err := a.Instances.Start(ctx, r.Account, ids)
	if err != nil {
		return nil, err
	}
	return changeSet(changes), nil
}

func (a *API) terminateInstances(ctx context.Context, r *ec2query.Request) (any, error) {
	ids, err := a.instanceIDs(r)
	if err != nil {
		return nil, err
	}
	changes, err := a.Instances.Terminate(ctx, r.Account, ids)
	if err != nil {
		return nil, err
	}
	return changeSet(changes), nil
}

func (a *API) rebootInstances(ctx context.Context, r *ec2query.Request) (any, error) {
	ids, err := a.instanceIDs(r)
	if err != nil {
		return nil, err
	}
	if err := a.Instances.Reboot(ctx, r.Account, ids); err != nil {
		return nil, err
	}
	return returnTrue{true}, nil
}

func (a *API) getConsoleOutput(ctx context.Context, r *ec2query.Request) (any, error) {
	id, err := r.Params.Required("InstanceId")
	if err != nil {
		return nil, err
	}
	if _, err := a.Instances.Get(ctx, r.Account, id); err != nil {
		return nil, err
	}
	if err := r.CheckDryRun(); err != nil {
		return nil, err
	}
	out, at, err := a.Console(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("reading console of %s: %w", id, err)
	}
	return struct {
		InstanceID string `xml:"instanceId"`
		Timestamp  string `xml:"timestamp"`
		Output     string `xml:"output"`
	}{id, ec2query.Time(at), base64.StdEncoding.EncodeToString(out)}, nil
}

func nonEmpty(v string) []string {
	if v == "" {
		return nil
	}
	return []string{v}
}

// launchInterfaces reads NetworkInterface.N: the primary interface
// (DeviceIndex 0) says where and how, the others are extra cards, new or
// existing.
func launchInterfaces(p ec2query.Params, spec *instance.RunSpec) error {
	seen := map[int]bool{}
	ids := map[string]bool{}
	for _, ni := range p.Members("NetworkInterface") {
		if _, err := ni.Required("DeviceIndex"); err != nil {
			return err
		}
		idx, _, err := ni.Int("DeviceIndex")
		if err != nil {
			return err
		}
		if idx < 0 || idx > eni.MaxDeviceIndex {
			return apierr.InvalidValue(ni.Name("DeviceIndex"), strconv.Itoa(idx), fmt.Sprintf("Device indexes go from 0 to %d.", eni.MaxDeviceIndex))
		}
		if seen[idx] {
			return apierr.New(apierr.InvalidParameterValue, "Each network interface requires a unique device index (%d is given twice).", idx)
		}
		seen[idx] = true
		id := ni.String("NetworkInterfaceId")
		if id != "" {
			if err := eni.CheckID(id); err != nil {
				return err
			}
			if ids[id] {
				return apierr.New(apierr.InvalidParameterValue, "Network interface %s is given twice.", id)
			}
			ids[id] = true
			if ni.Has("SubnetId") || ni.Has("PrivateIpAddress") || len(ni.Strings("SecurityGroupId")) > 0 {
				return apierr.New(apierr.InvalidParameterCombination, "A network interface ID cannot be given with SubnetId, PrivateIpAddress or groups (%s).", ni.Name("NetworkInterfaceId"))
			}
		}
		create := eni.CreateSpec{SubnetID: ni.String("SubnetId"), PrivateIP: ni.String("PrivateIpAddress"), Description: ni.String("Description")}
		if create.Secondary, create.PrivateIP, err = privateAddresses(ni, create.PrivateIP); err != nil {
			return err
		}
		if n, ok, err := ni.Int("SecondaryPrivateIpAddressCount"); err != nil {
			return err
		} else if ok && n < 0 {
			return apierr.InvalidValue(ni.Name("SecondaryPrivateIpAddressCount"), strconv.Itoa(n), "It must not be negative.")
		} else {
			create.SecondaryCount = n
		}
		if err := checkIPs(ni.Name("PrivateIpAddress"), append([]string{create.PrivateIP}, create.Secondary...)...); err != nil {
			return err
		}
		// DeleteOnTermination is true by default for an interface the
		// launch makes, false for an existing one (EC2: true only if new).
		keep := id != ""
		if d, err := ni.OptBool("DeleteOnTermination"); err != nil {
			return err
		} else if d != nil {
			keep = !*d
		}
		public, err := ni.OptBool("AssociatePublicIpAddress")
		if err != nil {
			return err
		}
		if idx > 0 {
			if public != nil && *public {
				return apierr.New(apierr.InvalidParameterCombination, "The associatePublicIPAddress parameter can only be specified for the network interface with DeviceIndex 0.")
			}
			create.Groups = ni.Strings("SecurityGroupId")
			spec.Extra = append(spec.Extra, instance.ExtraInterface{DeviceIndex: idx, NetworkInterfaceID: id, Create: create, KeepOnTermination: keep})
			continue
		}
		if create.SubnetID != "" {
			spec.SubnetID = create.SubnetID
		}
		if create.PrivateIP != "" {
			spec.PrivateIP = create.PrivateIP
		}
		spec.AssociatePublicIP = public
		spec.Primary = instance.PrimarySpec{NetworkInterfaceID: id, Secondary: create.Secondary, SecondaryCount: create.SecondaryCount,
			Description: create.Description, KeepOnTermination: keep}
	}
	if len(seen) > 0 && !seen[0] {
		return apierr.New(apierr.InvalidParameterValue, "The network interfaces given must include one at DeviceIndex 0, the primary.")
	}
	return nil
}

// withInterfaces adds each instance's network interfaces to its item.
func (a *API) withInterfaces(ctx context.Context, r *ec2query.Request, items []*instanceItem, v eniView) error {
	if a.ENIs == nil || len(items) == 0 {
		return nil
	}
	all, err := a.ENIs.List(ctx, a.scope(r))
	if err != nil {
		return err
	}
	for i := range items {
		for _, n := range eni.OfInstance(all, items[i].InstanceID) {
			items[i].NetworkInterfaceSet.Items = append(items[i].NetworkInterfaceSet.Items, v.item(n))
			if n.Attachment.DeviceIndex == 0 {
				items[i].SourceDestCheck = n.SourceDestCheck
			}
		}
	}
	return nil
}

// byENI is the instance filter network-interface.<name> for the interface
// filter <name>: an instance matches when one of its interfaces does.
func byENI(name string, byInstance map[string][]eni.Interface) (ec2query.FilterFunc[instance.Instance], bool) {
	rest, ok := strings.CutPrefix(name, "network-interface.")
	f, known := eniFilters[rest]
	if !ok || !known || rest == "group-id" { // groups: the instance's own filter
		return nil, false
	}
	return func(in instance.Instance) []string {
		var out []string
		for _, n := range byInstance[in.ID] {
			out = append(out, f(n)...)
		}
		return out
	}, true
}

// launchPlacement reads RunInstances' Placement: a placement group by name
// or ID and a partition in it (the scheduler checks them against the
// group), and a tenancy. Dedicated Hosts and host affinity are refused
// rather than ignored: nubo has no Dedicated Hosts to allocate.
func launchPlacement(p ec2query.Params, spec *instance.RunSpec) error {
	spec.PlacementGroupName, spec.PlacementGroupID = p.String("GroupName"), p.String("GroupId")
	if spec.PlacementGroupName != "" && spec.PlacementGroupID != "" {
		return apierr.New(apierr.InvalidParameterCombination, "Give %s or %s, not both.", p.Name("GroupName"), p.Name("GroupId"))
	}
	if n, ok, err := p.Int("PartitionNumber"); err != nil {
		return err
	} else if ok {
		if spec.PlacementGroupName == "" && spec.PlacementGroupID == "" {
			return apierr.New(apierr.InvalidParameterCombination, "%s needs a partition placement group (Placement.GroupName or Placement.GroupId).", p.Name("PartitionNumber"))
		}
		if n < 1 {
			return apierr.InvalidValue(p.Name("PartitionNumber"), strconv.Itoa(n), "Partition numbers start at 1.")
		}
		spec.PartitionNumber = n
	}
	for _, name := range []string{"HostId", "Affinity", "HostResourceGroupArn"} {
		if p.String(name) != "" {
			return apierr.New(apierr.UnsupportedOperation, "%s is not supported: nubo has no Dedicated Hosts.", p.Name(name))
		}
	}
	switch t := p.String("Tenancy"); t {
	case "", "default":
	case "dedicated":
		spec.Tenancy = t
	case "host":
		return apierr.New(apierr.UnsupportedOperation, "Tenancy host is not offered: nubo has no Dedicated Hosts (%s).", p.Name("Tenancy"))
	default:
		return apierr.InvalidValue(p.Name("Tenancy"), t, "Valid values: default, dedicated, host.")
	}
	return nil
}
