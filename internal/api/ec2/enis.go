package ec2

import (
	"context"
	"net/netip"
	"strconv"

	"nubo/internal/api/ec2query"
	"nubo/internal/apierr"
	"nubo/internal/eni"
	"nubo/internal/instance"
	"nubo/internal/vpc"
)

// Responses.

type eniItem struct {
	NetworkInterfaceID string                       `xml:"networkInterfaceId"`
	SubnetID           string                       `xml:"subnetId"`
	VpcID              string                       `xml:"vpcId"`
	AvailabilityZone   string                       `xml:"availabilityZone"`
	Description        string                       `xml:"description"`
	OwnerID            string                       `xml:"ownerId"`
	RequesterManaged   bool                         `xml:"requesterManaged"`
	Status             string                       `xml:"status"`
	MacAddress         string                       `xml:"macAddress"`
	PrivateIPAddress   string                       `xml:"privateIpAddress"`
	PrivateDNSName     string                       `xml:"privateDnsName"`
	SourceDestCheck    bool                         `xml:"sourceDestCheck"`
	GroupSet           ec2query.List[instanceGroup] `xml:"groupSet"`
	Attachment         *eniAttachmentItem           `xml:"attachment,omitempty"`
	Association        *eniAssociation              `xml:"association,omitempty"`
	TagSet             *ec2query.List[ec2query.Tag] `xml:"tagSet"`
	PrivateIPAddresses ec2query.List[eniAddress]    `xml:"privateIpAddressesSet"`
	Ipv6Addresses      ec2query.List[struct{}]      `xml:"ipv6AddressesSet"`
	InterfaceType      string                       `xml:"interfaceType"`
}

type eniAttachmentItem struct {
	AttachmentID        string `xml:"attachmentId"`
	InstanceID          string `xml:"instanceId"`
	InstanceOwnerID     string `xml:"instanceOwnerId"`
	DeviceIndex         int    `xml:"deviceIndex"`
	NetworkCardIndex    int    `xml:"networkCardIndex"`
	Status              string `xml:"status"`
	AttachTime          string `xml:"attachTime"`
	DeleteOnTermination bool   `xml:"deleteOnTermination"`
}

type eniAssociation struct {
	PublicIP      string `xml:"publicIp"`
	PublicDNSName string `xml:"publicDnsName,omitempty"`
	IPOwnerID     string `xml:"ipOwnerId"`
	AllocationID  string `xml:"allocationId,omitempty"`
	AssociationID string `xml:"associationId,omitempty"`
}

type eniAddress struct {
	PrivateIPAddress string          `xml:"privateIpAddress"`
	PrivateDNSName   string          `xml:"privateDnsName"`
	Primary          bool            `xml:"primary"`
	Association      *eniAssociation `xml:"association,omitempty"`
}

// eniView is what renders interfaces: group names, the public addresses
// of primary interfaces (their instances'), and the Elastic IPs on other
// addresses.
type eniView struct {
	region  string
	names   map[string]string
	publics map[string]instance.Instance // instance ID → record
	eips    map[string]vpc.ElasticIP     // "<eni> <private address>" → its Elastic IP
	dns     func(instance.Instance) (string, string)
}

func (a *API) eniView(ctx context.Context, r *ec2query.Request) (eniView, error) {
	names, err := a.groupNames(ctx, r.Account)
	if err != nil {
		return eniView{}, err
	}
	ins, err := a.Instances.List(ctx, r.Account)
	if err != nil {
		return eniView{}, err
	}
	return a.newENIView(ctx, r, names, a.dnsNamer(ctx, r.Account), ins)
}

// newENIView is an eniView over what the caller has read already.
func (a *API) newENIView(ctx context.Context, r *ec2query.Request, names map[string]string, dns func(instance.Instance) (string, string), ins []instance.Instance) (eniView, error) {
	v := eniView{region: a.Region.Name, names: names, publics: map[string]instance.Instance{}, eips: map[string]vpc.ElasticIP{}, dns: dns}
	for _, in := range ins {
		if in.PublicIP != "" {
			v.publics[in.ID] = in
		}
	}
	es, err := a.Instances.Addresses(ctx, r.Account)
	if err != nil {
		return v, err
	}
	for _, e := range es {
		if e.NetworkInterfaceID != "" {
			v.eips[e.NetworkInterfaceID+" "+e.PrivateIP] = e
		}
	}
	return v, nil
}

func (v eniView) item(n eni.Interface) eniItem {
	it := eniItem{
		NetworkInterfaceID: n.ID, SubnetID: n.SubnetID, VpcID: n.VPCID, AvailabilityZone: n.Zone, Description: n.Description,
		OwnerID: n.Owner, Status: n.Status, MacAddress: n.MAC, PrivateIPAddress: n.PrimaryIP(), SourceDestCheck: n.SourceDestCheck,
		GroupSet: instanceGroupSet(n.Groups, v.names), TagSet: ec2query.TagSet(n.Tags), InterfaceType: "interface",
	}
	if ip, err := netip.ParseAddr(n.PrimaryIP()); err == nil {
		it.PrivateDNSName = vpc.PrivateDNSName(v.region, ip)
	}
	var assoc *eniAssociation
	if att := n.Attachment; att != nil {
		it.Attachment = &eniAttachmentItem{AttachmentID: att.ID, InstanceID: att.InstanceID, InstanceOwnerID: n.Owner,
			DeviceIndex: att.DeviceIndex, Status: att.Status, AttachTime: ec2query.Time(att.AttachTime), DeleteOnTermination: att.DeleteOnTermination}
		if in, ok := v.publics[att.InstanceID]; ok && att.DeviceIndex == 0 {
			_, dns := v.dns(in)
			assoc = &eniAssociation{PublicIP: in.PublicIP, PublicDNSName: dns, IPOwnerID: "amazon"}
			if in.ElasticIP != "" {
				assoc.IPOwnerID, assoc.AllocationID = n.Owner, in.ElasticIP
			}
			it.Association = assoc
		}
	}
	for _, p := range n.PrivateIPs {
		addr := eniAddress{PrivateIPAddress: p.Address, Primary: p.Primary}
		if ip, err := netip.ParseAddr(p.Address); err == nil {
			addr.PrivateDNSName = vpc.PrivateDNSName(v.region, ip)
		}
		if p.Primary {
			addr.Association = assoc
		}
		if e, ok := v.eips[n.ID+" "+p.Address]; ok {
			addr.Association = &eniAssociation{PublicIP: e.PublicIP, IPOwnerID: n.Owner, AllocationID: e.ID, AssociationID: e.AssociationID}
			if p.Primary {
				it.Association = addr.Association
			}
		}
		it.PrivateIPAddresses.Items = append(it.PrivateIPAddresses.Items, addr)
	}
	return it
}

// Requests.

func (a *API) createNetworkInterface(ctx context.Context, r *ec2query.Request) (any, error) {
	p := r.Params
	spec := eni.CreateSpec{SubnetID: p.String("SubnetId"), PrivateIP: p.String("PrivateIpAddress"),
		Groups: p.Strings("SecurityGroupId"), Description: p.String("Description")}
	if spec.SubnetID == "" {
		return nil, apierr.Missing("SubnetId")
	}
	var err error
	if spec.Secondary, spec.PrivateIP, err = privateAddresses(p, spec.PrivateIP); err != nil {
		return nil, err
	}
	if n, err := optInt(p, "SecondaryPrivateIpAddressCount"); err != nil {
		return nil, err
	} else if n != nil {
		spec.SecondaryCount = *n
	}
	if spec.Tags, err = parseTagSpecs(p, eni.Kind); err != nil {
		return nil, err
	}
	if err := checkIPs("PrivateIpAddress", append([]string{spec.PrivateIP}, spec.Secondary...)...); err != nil {
		return nil, err
	}
	if _, err := a.VPCs.GetSubnet(ctx, r.Account, spec.SubnetID); err != nil {
		return nil, err
	}
	if err := r.CheckDryRun(); err != nil {
		return nil, err
	}
	n, err := a.ENIs.Create(ctx, a.scope(r), spec)
	if err != nil {
		return nil, err
	}
	v, err := a.eniView(ctx, r)
	if err != nil {
		return nil, err
	}
	return struct {
		NetworkInterface eniItem `xml:"networkInterface"`
	}{v.item(n)}, nil
}

// privateAddresses reads PrivateIpAddresses.N (PrivateIpAddress, Primary):
// the secondary addresses, and the primary when one is marked so.
func privateAddresses(p ec2query.Params, primary string) ([]string, string, error) {
	var secondary []string
	for _, m := range p.Members("PrivateIpAddresses") {
		ip, err := m.Required("PrivateIpAddress")
		if err != nil {
			return nil, "", err
		}
		isPrimary, err := m.Bool("Primary")
		if err != nil {
			return nil, "", err
		}
		switch {
		case isPrimary && primary != "" && primary != ip:
			return nil, "", apierr.New(apierr.InvalidParameterCombination, "Two primary addresses given: %s and %s.", primary, ip)
		case isPrimary:
			primary = ip
		default:
			secondary = append(secondary, ip)
		}
	}
	return secondary, primary, nil
}

func checkIPs(param string, ips ...string) error {
	for _, s := range ips {
		if s == "" {
			continue
		}
		if ip, err := netip.ParseAddr(s); err != nil || !ip.Is4() {
			return apierr.InvalidValue(param, s, "It is not an IPv4 address.")
		}
	}
	return nil
}

func eniID(n eni.Interface) string          { return n.ID }
func eniTags(n eni.Interface) ec2query.Tags { return n.Tags }

func eniAttachment(get func(eni.Attachment) string) ec2query.FilterFunc[eni.Interface] {
	return func(n eni.Interface) []string {
		if n.Attachment == nil {
			return nil
		}
		return one(get(*n.Attachment))
	}
}

func eniAddresses(n eni.Interface) []string {
	var out []string
	for _, p := range n.PrivateIPs {
		out = append(out, p.Address)
	}
	return out
}

var eniFilters = map[string]ec2query.FilterFunc[eni.Interface]{
	"network-interface-id":             func(n eni.Interface) []string { return one(n.ID) },
	"attachment.attachment-id":         eniAttachment(func(a eni.Attachment) string { return a.ID }),
	"attachment.instance-id":           eniAttachment(func(a eni.Attachment) string { return a.InstanceID }),
	"attachment.device-index":          eniAttachment(func(a eni.Attachment) string { return strconv.Itoa(a.DeviceIndex) }),
	"attachment.status":                eniAttachment(func(a eni.Attachment) string { return a.Status }),
	"attachment.delete-on-termination": eniAttachment(func(a eni.Attachment) string { return strconv.FormatBool(a.DeleteOnTermination) }),
	"attachment.attach-time": func(n eni.Interface) []string {
		if n.Attachment == nil {
			return nil
		}
		return timeValues(n.Attachment.AttachTime)
	},
	"attachment.instance-owner-id": func(n eni.Interface) []string {
		if n.Attachment == nil {
			return nil
		}
		return one(n.Owner)
	},
	"availability-zone":            func(n eni.Interface) []string { return one(n.Zone) },
	"description":                  func(n eni.Interface) []string { return one(n.Description) },
	"group-id":                     func(n eni.Interface) []string { return n.Groups },
	"mac-address":                  func(n eni.Interface) []string { return one(n.MAC) },
	"owner-id":                     func(n eni.Interface) []string { return one(n.Owner) },
	"private-ip-address":           func(n eni.Interface) []string { return one(n.PrimaryIP()) },
	"addresses.private-ip-address": eniAddresses,
	"private-ip-addresses.private-ip-address": eniAddresses,
	"source-dest-check":                       func(n eni.Interface) []string { return one(strconv.FormatBool(n.SourceDestCheck)) },
	"status":                                  func(n eni.Interface) []string { return one(n.Status) },
	"subnet-id":                               func(n eni.Interface) []string { return one(n.SubnetID) },
	"vpc-id":                                  func(n eni.Interface) []string { return one(n.VPCID) },
	"interface-type":                          func(n eni.Interface) []string { return one("interface") },
	"requester-managed":                       func(n eni.Interface) []string { return one("false") },
}

func (a *API) describeNetworkInterfaces(ctx context.Context, r *ec2query.Request) (any, error) {
	ids := r.Params.Strings("NetworkInterfaceId")
	if r.Params.Has("MaxResults") && len(ids) > 0 {
		return nil, apierr.New(apierr.InvalidParameterCombination, "The parameter networkInterfaceIdSet cannot be used with the parameter maxResults")
	}
	for _, id := range ids {
		if err := eni.CheckID(id); err != nil {
			return nil, err
		}
	}
	all, err := a.ENIs.List(ctx, a.scope(r))
	if err != nil {
		return nil, err
	}
	ns, next, err := describe(r, eni.Kind, "NetworkInterfaceId", all, eniID, eniFilters, eniTags)
	if err != nil {
		return nil, err
	}
	v, err := a.eniView(ctx, r)
	if err != nil {
		return nil, err
	}
	items := make([]eniItem, len(ns))
	for i, n := range ns {
		items[i] = v.item(n)
	}
	return struct {
		NetworkInterfaceSet ec2query.List[eniItem] `xml:"networkInterfaceSet"`
		NextToken           string                 `xml:"nextToken,omitempty"`
	}{ec2query.ListOf(items), next}, nil
}

func (a *API) deleteNetworkInterface(ctx context.Context, r *ec2query.Request) (any, error) {
	return onID(r, "NetworkInterfaceId", func(id string) error {
		_, err := a.ENIs.Get(ctx, a.scope(r), id)
		return err
	}, func(id string) error { return a.ENIs.Delete(ctx, a.scope(r), id) })
}

func (a *API) attachNetworkInterface(ctx context.Context, r *ec2query.Request) (any, error) {
	p := r.Params
	id, err := p.Required("NetworkInterfaceId")
	if err != nil {
		return nil, err
	}
	instID, err := p.Required("InstanceId")
	if err != nil {
		return nil, err
	}
	if _, err := p.Required("DeviceIndex"); err != nil {
		return nil, err
	}
	idx, _, err := p.Int("DeviceIndex")
	if err != nil {
		return nil, err
	}
	if card, ok, err := p.Int("NetworkCardIndex"); err != nil {
		return nil, err
	} else if ok && card != 0 {
		return nil, apierr.InvalidValue("NetworkCardIndex", strconv.Itoa(card), "nubo's instances have one network card, index 0.")
	}
	if _, err := a.ENIs.Get(ctx, a.scope(r), id); err != nil {
		return nil, err
	}
	if _, err := a.Instances.Get(ctx, r.Account, instID); err != nil {
		return nil, err
	}
	if err := r.CheckDryRun(); err != nil {
		return nil, err
	}
	attID, err := a.ENIs.Attach(ctx, a.scope(r), id, instID, idx)
	if err != nil {
		return nil, err
	}
	return struct {
		AttachmentID     string `xml:"attachmentId"`
		NetworkCardIndex int    `xml:"networkCardIndex"`
	}{attID, 0}, nil
}

func (a *API) detachNetworkInterface(ctx context.Context, r *ec2query.Request) (any, error) {
	id, err := r.Params.Required("AttachmentId")
	if err != nil {
		return nil, err
	}
	if _, err := r.Params.Bool("Force"); err != nil {
		return nil, err
	}
	if err := r.CheckDryRun(); err != nil {
		return nil, err
	}
	if err := a.ENIs.Detach(ctx, a.scope(r), id); err != nil {
		return nil, err
	}
	return returnTrue{true}, nil
}

func (a *API) modifyNetworkInterfaceAttribute(ctx context.Context, r *ec2query.Request) (any, error) {
	p := r.Params
	id, err := p.Required("NetworkInterfaceId")
	if err != nil {
		return nil, err
	}
	var spec eni.ModifySpec
	given := 0
	if gs := p.Strings("SecurityGroupId"); len(gs) > 0 {
		spec.Groups, given = gs, given+1
	}
	if p.Has("Description.Value") {
		d := p.String("Description.Value")
		spec.Description, given = &d, given+1
	}
	if p.Has("SourceDestCheck.Value") {
		b, err := p.Bool("SourceDestCheck.Value")
		if err != nil {
			return nil, err
		}
		spec.SourceDestCheck, given = &b, given+1
	}
	if att := p.Member("Attachment"); att.Has("AttachmentId") || att.Has("DeleteOnTermination") {
		if spec.AttachmentID, err = att.Required("AttachmentId"); err != nil {
			return nil, err
		}
		b, err := att.Bool("DeleteOnTermination")
		if err != nil {
			return nil, err
		}
		spec.DeleteOnTermination, given = &b, given+1
	}
	if given > 1 {
		return nil, apierr.New(apierr.InvalidParameterCombination, "Only one attribute can be modified at a time.")
	}
	return a.onENI(ctx, r, id, func() error { return a.ENIs.Modify(ctx, a.scope(r), id, spec) })
}

// onENI is an action on interface id that answers <return>true</return>:
// the interface must exist, a dry run stops there, then do.
func (a *API) onENI(ctx context.Context, r *ec2query.Request, id string, do func() error) (any, error) {
	if _, err := a.ENIs.Get(ctx, a.scope(r), id); err != nil {
		return nil, err
	}
	if err := r.CheckDryRun(); err != nil {
		return nil, err
	}
	if err := do(); err != nil {
		return nil, err
	}
	return returnTrue{true}, nil
}

func (a *API) describeNetworkInterfaceAttribute(ctx context.Context, r *ec2query.Request) (any, error) {
	id, err := r.Params.Required("NetworkInterfaceId")
	if err != nil {
		return nil, err
	}
	attr, err := r.Params.Required("Attribute")
	if err != nil {
		return nil, err
	}
	n, err := a.ENIs.Get(ctx, a.scope(r), id)
	if err != nil {
		return nil, err
	}
	v, err := a.eniView(ctx, r)
	if err != nil {
		return nil, err
	}
	it := v.item(n)
	out := struct {
		NetworkInterfaceID string                        `xml:"networkInterfaceId"`
		Description        *valueItem                    `xml:"description,omitempty"`
		SourceDestCheck    *boolValue                    `xml:"sourceDestCheck,omitempty"`
		GroupSet           *ec2query.List[instanceGroup] `xml:"groupSet,omitempty"`
		Attachment         *eniAttachmentItem            `xml:"attachment,omitempty"`
	}{NetworkInterfaceID: id}
	switch attr {
	case "description":
		out.Description = &valueItem{n.Description}
	case "sourceDestCheck":
		out.SourceDestCheck = &boolValue{n.SourceDestCheck}
	case "groupSet":
		out.GroupSet = &it.GroupSet
	case "attachment":
		out.Attachment = it.Attachment
	default:
		return nil, apierr.InvalidValue("Attribute", attr, "Valid values: description, groupSet, sourceDestCheck, attachment.")
	}
	return out, nil
}

func (a *API) assignPrivateIPAddresses(ctx context.Context, r *ec2query.Request) (any, error) {
	p := r.Params
	id, err := p.Required("NetworkInterfaceId")
	if err != nil {
		return nil, err
	}
	spec := eni.AssignSpec{Addresses: p.Strings("PrivateIpAddress")}
	if err := checkIPs("PrivateIpAddress", spec.Addresses...); err != nil {
		return nil, err
	}
	if n, err := optInt(p, "SecondaryPrivateIpAddressCount"); err != nil {
		return nil, err
	} else if n != nil {
		spec.Count = *n
	}
	if spec.AllowReassignment, err = p.Bool("AllowReassignment"); err != nil {
		return nil, err
	}
	if _, err := a.ENIs.Get(ctx, a.scope(r), id); err != nil {
		return nil, err
	}
	if err := r.CheckDryRun(); err != nil {
		return nil, err
	}
	added, err := a.ENIs.Assign(ctx, a.scope(r), id, spec)
	if err != nil {
		return nil, err
	}
	type assigned struct {
		PrivateIPAddress string `xml:"privateIpAddress"`
	}
	items := make([]assigned, len(added))
	for i, ip := range added {
		items[i].PrivateIPAddress = ip
	}
	return struct {
		NetworkInterfaceID string                  `xml:"networkInterfaceId"`
		Assigned           ec2query.List[assigned] `xml:"assignedPrivateIpAddressesSet"`
		Return             bool                    `xml:"return"`
	}{id, ec2query.ListOf(items), true}, nil
}

func (a *API) unassignPrivateIPAddresses(ctx context.Context, r *ec2query.Request) (any, error) {
	id, err := r.Params.Required("NetworkInterfaceId")
	if err != nil {
		return nil, err
	}
	addrs := r.Params.Strings("PrivateIpAddress")
	if err := checkIPs("PrivateIpAddress", addrs...); err != nil {
		return nil, err
	}
	return a.onENI(ctx, r, id, func() error { return a.ENIs.Unassign(ctx, a.scope(r), id, addrs) })
}

func (a *API) resetNetworkInterfaceAttribute(ctx context.Context, r *ec2query.Request) (any, error) {
	id, err := r.Params.Required("NetworkInterfaceId")
	if err != nil {
		return nil, err
	}
	if attr := r.Params.String("SourceDestCheck"); attr != "" && attr != "sourceDestCheck" {
		return nil, apierr.InvalidValue("SourceDestCheck", attr, "Only sourceDestCheck can be reset.")
	}
	on := true
	return a.onENI(ctx, r, id, func() error { return a.ENIs.Modify(ctx, a.scope(r), id, eni.ModifySpec{SourceDestCheck: &on}) })
}
