package imds

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"nubo/internal/api/eic"
	"nubo/internal/apierr"
	"nubo/internal/catalog"
	"nubo/internal/eni"
	"nubo/internal/instance"
	"nubo/internal/keypair"
	"nubo/internal/resource"
	"nubo/internal/volume"
	"nubo/internal/vpc"
)

var errNotFound = errors.New("not found")

// Versions are the dated versions the root lists, as EC2 does; any
// YYYY-MM-DD is served, as an alias of latest.
var Versions = []string{
	"1.0", "2007-01-19", "2007-03-01", "2007-08-29", "2007-10-10", "2007-12-15",
	"2008-02-01", "2008-09-01", "2009-04-04", "2011-01-01", "2011-05-01", "2012-01-12",
	"2014-02-25", "2014-11-05", "2015-10-20", "2016-04-19", "2016-06-30", "2016-09-02",
	"2018-03-28", "2018-08-17", "2018-09-24", "2019-10-01", "2020-10-27", "2021-01-03",
	"2021-03-23", "2021-07-15", "2022-09-24", "2024-04-11",
}

var datedVersion = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)

// node is a leaf (value) or a directory (dir); label, if set, is how its
// parent lists it (public-keys/ lists "0=name").
type node struct {
	value func() (string, error)
	dir   func() (map[string]node, error)
	label string
}

func leaf(s string) node                         { return node{value: func() (string, error) { return s, nil }} }
func lazy(f func() (string, error)) node         { return node{value: f} }
func dir(f func() (map[string]node, error)) node { return node{dir: f} }
func fixed(m map[string]node) node {
	return dir(func() (map[string]node, error) { return m, nil })
}

// view is one request's look at its instance. What it needs beyond the
// record is read when first needed, once.
type view struct {
	ctx context.Context
	s   *Server
	in  instance.Instance
	now time.Time

	vpc    *vpc.VPC
	subnet *vpc.Subnet
	doc    []byte
}

// get resolves a request path to its body and content type.
func (v *view) get(path string) ([]byte, string, error) {
	if path == "/" {
		return []byte(strings.Join(append(slices.Clone(Versions), "latest"), "\n")), "text/plain", nil
	}
	parts := strings.Split(strings.Trim(path, "/"), "/")
	if ver := parts[0]; ver != "latest" && ver != "1.0" && !datedVersion.MatchString(ver) {
		return nil, "", errNotFound
	}
	if len(parts) == 2 && parts[1] == "user-data" {
		ud, err := v.userData()
		return ud, "application/octet-stream", err
	}
	n := v.version()
	for _, p := range parts[1:] {
		if n.dir == nil {
			return nil, "", errNotFound
		}
		children, err := n.dir()
		if err != nil {
			return nil, "", err
		}
		var ok bool
		if n, ok = children[p]; !ok || p == "" {
			return nil, "", errNotFound
		}
	}
	if n.value != nil {
		s, err := n.value()
		return []byte(s), "text/plain", err
	}
	children, err := n.dir()
	if err != nil {
		return nil, "", err
	}
	// EC2 marks subdirectories with '/', except in a version's listing.
	slash := len(parts) > 1
	var names []string
	for name, c := range children {
		switch {
		case c.label != "":
			name = c.label
		case c.dir != nil && slash:
			name += "/"
		}
		names = append(names, name)
	}
	slices.Sort(names)
	return []byte(strings.Join(names, "\n")), "text/plain", nil
}

// version is /latest/ (and every dated version).
func (v *view) version() node {
	m := map[string]node{
		"meta-data": dir(v.metaData),
		"dynamic": fixed(map[string]node{
			"instance-identity": fixed(map[string]node{
				"document":  lazy(func() (string, error) { return string(v.document()), nil }),
				"signature": lazy(func() (string, error) { return v.s.Identity.Signature(v.document()) }),
				"pkcs7":     lazy(func() (string, error) { return v.s.Identity.PKCS7(v.document()) }),
				"rsa2048":   lazy(func() (string, error) { return v.s.Identity.PKCS7(v.document()) }),
			}),
		}),
	}
	if v.in.UserData != "" {
		m["user-data"] = leaf("") // listed only; get serves it
	}
	return fixed(m)
}

func (v *view) userData() ([]byte, error) {
	if v.in.UserData == "" {
		return nil, errNotFound
	}
	b, err := base64.StdEncoding.DecodeString(v.in.UserData)
	if err != nil {
		return nil, fmt.Errorf("user data of %s: %w", v.in.ID, err)
	}
	return b, nil
}

func (v *view) document() []byte {
	if v.doc == nil {
		v.doc = document{
			AccountID: v.in.Account, Architecture: "x86_64", AvailabilityZone: v.in.Zone,
			ImageID: v.in.ImageID, InstanceID: v.in.ID, InstanceType: v.in.InstanceType,
			PendingTime: v.in.LaunchTime, PrivateIP: v.in.PrivateIP, Region: v.s.Region,
		}.bytes()
	}
	return v.doc
}

func (v *view) metaData() (map[string]node, error) {
	in := v.in
	private := v.privateDNS()
	m := map[string]node{
		"ami-id":               leaf(in.ImageID),
		"ami-launch-index":     leaf(strconv.Itoa(in.LaunchIndex)),
		"ami-manifest-path":    leaf("(unknown)"), // EBS-backed
		"block-device-mapping": dir(v.blockDevices),
		"hostname":             leaf(private),
		"instance-action":      leaf("none"),
		"instance-id":          leaf(in.ID),
		"instance-life-cycle":  leaf("on-demand"),
		"instance-type":        leaf(in.InstanceType),
		"local-hostname":       leaf(private),
		"local-ipv4":           leaf(in.PrivateIP),
		"mac":                  leaf(in.MAC),
		"managed-ssh-keys":     fixed(map[string]node{"active-keys": dir(v.activeKeys)}),
		"network":              fixed(map[string]node{"interfaces": fixed(map[string]node{"macs": dir(v.macs)})}),
		"placement":            fixed(placement(in, v.zoneID, v.s.Region)),
		"reservation-id":       leaf(in.ReservationID),
		"security-groups":      lazy(func() (string, error) { return v.groupNames(in.SecurityGroups), nil }),
		"services":             fixed(map[string]node{"domain": leaf("amazonaws.com"), "partition": leaf("aws")}),
	}
	if in.PublicIP != "" {
		m["public-ipv4"] = leaf(in.PublicIP)
		public, err := v.publicDNS()
		if err != nil {
			return nil, err
		}
		if public != "" {
			m["public-hostname"] = leaf(public)
		}
	}
	if in.KeyName != "" {
		m["public-keys"] = fixed(map[string]node{"0": {
			label: "0=" + in.KeyName,
			dir: func() (map[string]node, error) {
				return map[string]node{"openssh-key": lazy(v.openSSHKey)}, nil
			},
		}})
	}
	if in.MetadataOptions.Effective().InstanceMetadataTags == "enabled" {
		tags := map[string]node{}
		for k, val := range in.Tags {
			if k != "" && !strings.Contains(k, "/") {
				tags[k] = leaf(val)
			}
		}
		m["tags"] = fixed(map[string]node{"instance": fixed(tags)})
	}
	return m, nil
}

// blockDevices is block-device-mapping/: the root device as "ami" and
// "root", and each attached EBS volume as ebsN (N from 1, in attach order)
// whose value is its device name without /dev/, and instance store disks
// as ephemeralN, as EC2 serves them.
func (v *view) blockDevices() (map[string]node, error) {
	m := map[string]node{"ami": leaf(v.in.RootDevice), "root": leaf(v.in.RootDevice)}
	sc := resource.Scope{Account: v.in.Account, Region: v.s.Region}
	vols, err := (&volume.Service{Store: v.s.Store}).Attached(v.ctx, sc, v.in.ID)
	if err != nil {
		return nil, fmt.Errorf("volumes of %s: %w", v.in.ID, err)
	}
	n := 0
	for _, vol := range vols {
		if vol.Attachment.Status() != volume.Attached { // no device yet, or going
			continue
		}
		n++
		m["ebs"+strconv.Itoa(n)] = leaf(strings.TrimPrefix(vol.Attachment.Device, "/dev/"))
	}
	// Instance store disks, named as EC2 maps them (the instance sees
	// them as NVMe devices).
	if it, ok := catalog.LookupInstanceType(v.in.InstanceType); ok && it.InstanceStorageInfo != nil {
		i := 0
		for _, d := range it.InstanceStorageInfo.Disks {
			for range d.Count {
				m["ephemeral"+strconv.Itoa(i)] = leaf("sd" + string(rune('b'+i)))
				i++
			}
		}
	}
	return m, nil
}

// macs lists the instance's interfaces by MAC, as the instance OS's
// network helper reads them (ec2-net-utils, cloud-init).
func (v *view) macs() (map[string]node, error) {
	sc := resource.Scope{Account: v.in.Account, Region: v.s.Region}
	ifcs, err := (&eni.Service{Store: v.s.Store}).Attached(v.ctx, sc, v.in.ID)
	if err != nil {
		return nil, err
	}
	m := map[string]node{}
	for _, n := range ifcs {
		if n.Attachment.Status == eni.Attached || n.Attachment.Status == eni.Attaching {
			m[n.MAC] = dir(func() (map[string]node, error) { return v.nic(n) })
		}
	}
	if v.in.NetworkInterfaceID == "" { // launched before interfaces were records
		m[v.in.MAC] = dir(func() (map[string]node, error) {
			return v.nic(eni.Interface{MAC: v.in.MAC, SubnetID: v.in.SubnetID, Groups: v.in.SecurityGroups, Owner: v.in.Account,
				PrivateIPs: []eni.PrivateIP{{Address: v.in.PrivateIP, Primary: true}}, Attachment: &eni.Attachment{}})
		})
	}
	return m, nil
}

// nic is one interface's directory under its MAC.
func (v *view) nic(n eni.Interface) (map[string]node, error) {
	in := v.in
	vp, err := v.loadVPC()
	if err != nil {
		return nil, err
	}
	sn, err := v.vpcs().GetSubnet(v.ctx, in.Account, n.SubnetID)
	if err != nil {
		return nil, err
	}
	var ips []string
	for _, p := range n.PrivateIPs {
		ips = append(ips, p.Address)
	}
	primary := n.Attachment.DeviceIndex == 0
	m := map[string]node{
		"device-number":          leaf(strconv.Itoa(n.Attachment.DeviceIndex)),
		"local-ipv4s":            leaf(strings.Join(ips, "\n")),
		"mac":                    leaf(n.MAC),
		"owner-id":               leaf(n.Owner),
		"security-group-ids":     leaf(strings.Join(n.Groups, "\n")),
		"security-groups":        lazy(func() (string, error) { return v.groupNames(n.Groups), nil }),
		"subnet-id":              leaf(n.SubnetID),
		"subnet-ipv4-cidr-block": leaf(sn.CIDR),
		"vpc-id":                 leaf(in.VPCID),
		"vpc-ipv4-cidr-block":    leaf(vp.CIDR),
		"vpc-ipv4-cidr-blocks":   leaf(vp.CIDR),
	}
	if ip, err := netip.ParseAddr(n.PrimaryIP()); err == nil {
		m["local-hostname"] = leaf(vpc.PrivateDNSName(v.s.Region, ip))
	}
	if n.ID != "" {
		m["interface-id"] = leaf(n.ID)
	}
	// Public addresses: the instance's on eth0's primary, Elastic IPs on
	// the card's other addresses.
	assoc := map[string]node{}
	var publics []string
	if primary && in.PublicIP != "" {
		assoc[in.PublicIP], publics = leaf(in.PrivateIP), append(publics, in.PublicIP)
		if vp.DNSHostnames {
			m["public-hostname"] = leaf(v.publicName())
		}
	}
	if n.ID != "" {
		eips, err := v.eipsOf(n.ID)
		if err != nil {
			return nil, err
		}
		for _, e := range eips {
			assoc[e.PublicIP], publics = leaf(e.PrivateIP), append(publics, e.PublicIP)
		}
	}
	if len(publics) > 0 {
		m["public-ipv4s"] = leaf(strings.Join(publics, "\n"))
		m["ipv4-associations"] = fixed(assoc)
	}
	return m, nil
}

// eipsOf lists the Elastic IPs associated with addresses of interface id.
func (v *view) eipsOf(id string) ([]vpc.ElasticIP, error) {
	kvs, err := v.s.Store.List(v.ctx, resource.Prefix(resource.Scope{Account: v.in.Account, Region: v.s.Region}, resource.ElasticIP))
	if err != nil {
		return nil, err
	}
	var out []vpc.ElasticIP
	for _, kv := range kvs {
		var e vpc.ElasticIP
		if err := json.Unmarshal(kv.Value, &e); err != nil {
			return nil, fmt.Errorf("decoding %s: %w", kv.Key, err)
		}
		if e.NetworkInterfaceID == id {
			out = append(out, e)
		}
	}
	return out, nil
}

func (v *view) privateDNS() string {
	ip, err := netip.ParseAddr(v.in.PrivateIP)
	if err != nil {
		return ""
	}
	return vpc.PrivateDNSName(v.s.Region, ip)
}

func (v *view) publicName() string {
	ip, err := netip.ParseAddr(v.in.PublicIP)
	if err != nil {
		return ""
	}
	return vpc.PublicDNSName(v.s.Region, ip)
}

// publicDNS is the public DNS name, where the VPC gives them.
func (v *view) publicDNS() (string, error) {
	vp, err := v.loadVPC()
	if err != nil || !vp.DNSHostnames {
		return "", err
	}
	return v.publicName(), nil
}

func (v *view) vpcs() *vpc.Service { return &vpc.Service{Store: v.s.Store, Region: v.s.Region} }

func (v *view) loadVPC() (vpc.VPC, error) {
	if v.vpc == nil {
		vp, err := v.vpcs().GetVPC(v.ctx, v.in.Account, v.in.VPCID)
		if err != nil {
			return vpc.VPC{}, fmt.Errorf("VPC of %s: %w", v.in.ID, err)
		}
		v.vpc = &vp
	}
	return *v.vpc, nil
}

func (v *view) loadSubnet() (vpc.Subnet, error) {
	if v.subnet == nil {
		sn, err := v.vpcs().GetSubnet(v.ctx, v.in.Account, v.in.SubnetID)
		if err != nil {
			return vpc.Subnet{}, fmt.Errorf("subnet of %s: %w", v.in.ID, err)
		}
		v.subnet = &sn
	}
	return *v.subnet, nil
}

func (v *view) zoneID() (string, error) {
	sn, err := v.loadSubnet()
	return sn.ZoneID, err
}

// groupNames lists security groups by name, one a line; a group deleted
// meanwhile is left out.
func (v *view) groupNames(ids []string) string {
	var names []string
	for _, id := range ids {
		if g, _, err := v.vpcs().SecurityGroup(v.ctx, v.in.Account, id); err == nil {
			names = append(names, g.Name)
		}
	}
	return strings.Join(names, "\n")
}

// openSSHKey is the launch key's public half: the key kept with the instance
// at launch (as EC2 does: deleting the key pair changes nothing), else the
// key pair's current one; with its name as comment, as EC2 serves it.
func (v *view) openSSHKey() (string, error) {
	key := v.in.PublicKey
	if key == "" {
		sc := resource.Scope{Account: v.in.Account, Region: v.s.Region}
		kp, err := (&keypair.Service{Store: v.s.Store}).Get(v.ctx, sc, v.in.KeyName)
		if _, ok := apierr.As(err); ok {
			return "", errNotFound
		} else if err != nil {
			return "", err
		}
		key = kp.PublicKey
	}
	return key + " " + v.in.KeyName + "\n", nil
}

// activeKeys lists the OS users with keys pushed through EC2 Instance
// Connect that have not expired; a user's entry holds them, one a line.
func (v *view) activeKeys() (map[string]node, error) {
	in := v.in
	// The instance's keys are below each user's prefix.
	prefix := strings.TrimSuffix(eic.Prefix(in.Account, v.s.Region, in.ID, ""), "/")
	kvs, err := v.s.Store.List(v.ctx, prefix)
	if err != nil {
		return nil, err
	}
	out := map[string]node{}
	for _, kv := range kvs {
		user, _, ok := strings.Cut(strings.TrimPrefix(kv.Key, prefix), "/")
		if _, seen := out[user]; !ok || seen {
			continue
		}
		keys, err := eic.ActiveKeys(v.ctx, v.s.Store, in.Account, v.s.Region, in.ID, user, v.now)
		if err != nil {
			return nil, err
		}
		if len(keys) > 0 {
			out[user] = leaf(strings.Join(keys, "\n") + "\n")
		}
	}
	return out, nil
}

// placement is placement/: the zone and region, and the placement group,
// partition and host where the instance has them.
func placement(in instance.Instance, zoneID func() (string, error), region string) map[string]node {
	m := map[string]node{
		"availability-zone":    leaf(in.Zone),
		"availability-zone-id": lazy(zoneID),
		"region":               leaf(region),
	}
	if in.PlacementGroupName != "" {
		m["group-name"] = leaf(in.PlacementGroupName)
	}
	if in.Partition != 0 {
		m["partition-number"] = leaf(strconv.Itoa(in.Partition))
	}
	if strings.HasPrefix(in.Host, "h-") {
		m["host-id"] = leaf(in.Host)
	}
	return m
}
