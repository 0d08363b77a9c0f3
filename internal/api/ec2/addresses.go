package ec2

import (
	"context"

	"nubo/internal/api/ec2query"
	"nubo/internal/apierr"
	"nubo/internal/eni"
	"nubo/internal/resource"
	"nubo/internal/vpc"
)

type addressItem struct {
	PublicIP                string                       `xml:"publicIp"`
	AllocationID            string                       `xml:"allocationId"`
	Domain                  string                       `xml:"domain"`
	InstanceID              string                       `xml:"instanceId,omitempty"`
	AssociationID           string                       `xml:"associationId,omitempty"`
	NetworkInterfaceID      string                       `xml:"networkInterfaceId,omitempty"`
	NetworkInterfaceOwnerID string                       `xml:"networkInterfaceOwnerId,omitempty"`
	PrivateIPAddress        string                       `xml:"privateIpAddress,omitempty"`
	PublicIpv4Pool          string                       `xml:"publicIpv4Pool"`
	NetworkBorderGroup      string                       `xml:"networkBorderGroup"`
	TagSet                  *ec2query.List[ec2query.Tag] `xml:"tagSet"`
}

func (a *API) addressOf(e vpc.ElasticIP) addressItem {
	it := addressItem{PublicIP: e.PublicIP, AllocationID: e.ID, Domain: "vpc", InstanceID: e.InstanceID,
		AssociationID: e.AssociationID, PrivateIPAddress: e.PrivateIP, PublicIpv4Pool: "amazon",
		NetworkBorderGroup: a.Region.Name, TagSet: ec2query.TagSet(e.Tags), NetworkInterfaceID: e.NetworkInterfaceID}
	if e.NetworkInterfaceID != "" {
		it.NetworkInterfaceOwnerID = e.Owner
	}
	return it
}

var addressFilters = map[string]ec2query.FilterFunc[vpc.ElasticIP]{
	"allocation-id":        func(e vpc.ElasticIP) []string { return one(e.ID) },
	"association-id":       func(e vpc.ElasticIP) []string { return nonEmpty(e.AssociationID) },
	"domain":               func(e vpc.ElasticIP) []string { return one("vpc") },
	"instance-id":          func(e vpc.ElasticIP) []string { return nonEmpty(e.InstanceID) },
	"public-ip":            func(e vpc.ElasticIP) []string { return one(e.PublicIP) },
	"private-ip-address":   func(e vpc.ElasticIP) []string { return nonEmpty(e.PrivateIP) },
	"network-interface-id": func(e vpc.ElasticIP) []string { return nonEmpty(e.NetworkInterfaceID) },
	"network-interface-owner-id": func(e vpc.ElasticIP) []string {
		if e.NetworkInterfaceID == "" {
			return nil
		}
		return one(e.Owner)
	},
}

func (a *API) allocateAddress(ctx context.Context, r *ec2query.Request) (any, error) {
	if d := r.Params.String("Domain"); d != "" && d != "vpc" {
		return nil, apierr.InvalidValue("Domain", d, "EC2-Classic is retired: the only domain is vpc.")
	}
	if r.Params.Has("Address") || r.Params.Has("PublicIpv4Pool") && r.Params.String("PublicIpv4Pool") != "amazon" {
		return nil, apierr.New(apierr.UnsupportedOperation, "Bring-your-own addresses are not supported: nubo allocates from its public pool.")
	}
	tags, err := parseTagSpecs(r.Params, resource.ElasticIP)
	if err != nil {
		return nil, err
	}
	if err := r.CheckDryRun(); err != nil {
		return nil, err
	}
	e, err := a.Instances.AllocateAddress(ctx, r.Account, tags)
	if err != nil {
		return nil, err
	}
	return struct {
		PublicIP           string `xml:"publicIp"`
		Domain             string `xml:"domain"`
		AllocationID       string `xml:"allocationId"`
		PublicIpv4Pool     string `xml:"publicIpv4Pool"`
		NetworkBorderGroup string `xml:"networkBorderGroup"`
	}{e.PublicIP, "vpc", e.ID, "amazon", a.Region.Name}, nil
}

func (a *API) describeAddresses(ctx context.Context, r *ec2query.Request) (any, error) {
	all, err := a.Instances.Addresses(ctx, r.Account)
	if err != nil {
		return nil, err
	}
	// An address of an interface shows (and filters by) the instance the
	// interface is attached to now.
	if a.ENIs != nil {
		ns, err := a.ENIs.List(ctx, a.scope(r))
		if err != nil {
			return nil, err
		}
		attachedTo := map[string]string{}
		for _, n := range ns {
			if n.Attachment != nil {
				attachedTo[n.ID] = n.Attachment.InstanceID
			}
		}
		for i := range all {
			if id := all[i].NetworkInterfaceID; id != "" {
				all[i].InstanceID = attachedTo[id]
			}
		}
	}
	if ips := r.Params.Strings("PublicIp"); len(ips) > 0 {
		byIP := map[string]vpc.ElasticIP{}
		for _, e := range all {
			byIP[e.PublicIP] = e
		}
		all = nil
		for _, ip := range ips {
			e, ok := byIP[ip]
			if !ok {
				return nil, apierr.New("InvalidAddress.NotFound", "Address '%s' not found.", ip)
			}
			all = append(all, e)
		}
	}
	es, _, err := describe(r, resource.ElasticIP, "AllocationId", all, func(e vpc.ElasticIP) string { return e.ID },
		addressFilters, func(e vpc.ElasticIP) ec2query.Tags { return e.Tags })
	if err != nil {
		return nil, err
	}
	items := make([]addressItem, len(es))
	for i, e := range es {
		items[i] = a.addressOf(e)
	}
	return struct {
		AddressesSet ec2query.List[addressItem] `xml:"addressesSet"`
	}{ec2query.ListOf(items)}, nil
}

func (a *API) associateAddress(ctx context.Context, r *ec2query.Request) (any, error) {
	alloc, ip := r.Params.String("AllocationId"), r.Params.String("PublicIp")
	if alloc == "" && ip == "" {
		return nil, apierr.New(apierr.MissingParameter, "The request must contain the parameter AllocationId (or PublicIp).")
	}
	instanceID, eniID := r.Params.String("InstanceId"), r.Params.String("NetworkInterfaceId")
	switch {
	case instanceID == "" && eniID == "":
		return nil, apierr.Missing("InstanceId")
	case instanceID != "" && eniID != "":
		return nil, apierr.New(apierr.InvalidParameterCombination, "InstanceId and NetworkInterfaceId cannot both be given.")
	case eniID != "":
		if err := eni.CheckID(eniID); err != nil {
			return nil, err
		}
	}
	reassoc, err := r.Params.Bool("AllowReassociation")
	if err != nil {
		return nil, err
	}
	if err := r.CheckDryRun(); err != nil {
		return nil, err
	}
	id, err := a.Instances.AssociateAddress(ctx, r.Account, alloc, ip, instanceID, eniID, r.Params.String("PrivateIpAddress"), reassoc)
	if err != nil {
		return nil, err
	}
	return struct {
		Return        bool   `xml:"return"`
		AssociationID string `xml:"associationId"`
	}{true, id}, nil
}

func (a *API) disassociateAddress(ctx context.Context, r *ec2query.Request) (any, error) {
	assoc, ip := r.Params.String("AssociationId"), r.Params.String("PublicIp")
	if assoc == "" && ip == "" {
		return nil, apierr.New(apierr.MissingParameter, "The request must contain the parameter AssociationId (or PublicIp).")
	}
	if err := r.CheckDryRun(); err != nil {
		return nil, err
	}
	if err := a.Instances.DisassociateAddress(ctx, r.Account, assoc, ip); err != nil {
		return nil, err
	}
	return returnTrue{true}, nil
}

func (a *API) releaseAddress(ctx context.Context, r *ec2query.Request) (any, error) {
	alloc, ip := r.Params.String("AllocationId"), r.Params.String("PublicIp")
	if alloc == "" && ip == "" {
		return nil, apierr.New(apierr.MissingParameter, "The request must contain the parameter AllocationId (or PublicIp).")
	}
	if err := r.CheckDryRun(); err != nil {
		return nil, err
	}
	if err := a.Instances.ReleaseAddress(ctx, r.Account, alloc, ip); err != nil {
		return nil, err
	}
	return returnTrue{true}, nil
}
