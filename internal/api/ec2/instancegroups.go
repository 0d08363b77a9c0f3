package ec2

import (
	"context"

	"nubo/internal/api/ec2query"
	"nubo/internal/apierr"
	"nubo/internal/instance"
	"nubo/internal/resource"
)

// instanceGroup is one item of an instance's groupSet.
type instanceGroup struct {
	GroupID   string `xml:"groupId"`
	GroupName string `xml:"groupName,omitempty"`
}

// instanceGroupSet renders an instance's groups; names maps IDs to names
// (nil: IDs only, as DescribeInstanceAttribute answers).
func instanceGroupSet(ids []string, names map[string]string) ec2query.List[instanceGroup] {
	items := make([]instanceGroup, len(ids))
	for i, id := range ids {
		items[i] = instanceGroup{GroupID: id, GroupName: names[id]}
	}
	return ec2query.ListOf(items)
}

// groupNames maps the account's security group IDs to their names: read
// once per call rather than once per instance.
func (a *API) groupNames(ctx context.Context, account string) (map[string]string, error) {
	gs, err := a.VPCs.SecurityGroups(ctx, account)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(gs))
	for _, g := range gs {
		out[g.ID] = g.Name
	}
	return out, nil
}

// launchGroups reads RunInstances' security groups: SecurityGroupId.N and
// SecurityGroup.N (names), or those of the primary network interface
// (NetworkInterface.N.SecurityGroupId.M), never both as EC2.
func launchGroups(p ec2query.Params) (ids, names []string, err error) {
	ids, names = p.Strings("SecurityGroupId"), p.Strings("SecurityGroup")
	if nis := p.Members("NetworkInterface"); len(nis) > 0 {
		if len(ids) > 0 || len(names) > 0 {
			return nil, nil, apierr.New(apierr.InvalidParameterCombination,
				"Network interfaces and an instance-level security groups may not be specified on the same request")
		}
		for _, ni := range nis {
			if ni.String("DeviceIndex") == "0" { // the others' groups are their own
				ids = append(ids, ni.Strings("SecurityGroupId")...)
			}
		}
	}
	if err := checkGroupIDs(ids); err != nil {
		return nil, nil, err
	}
	for _, n := range names {
		if n == "" {
			return nil, nil, apierr.New(apierr.InvalidParameterValue, "Value () for parameter groupName is invalid. The value cannot be empty")
		}
	}
	return ids, names, nil
}

func checkGroupIDs(ids []string) error {
	for _, id := range ids {
		if id == "" {
			return apierr.New(apierr.InvalidParameterValue, "Value () for parameter groupId is invalid. The value cannot be empty")
		}
		if !resource.ValidID(resource.SecurityGroup, id) {
			return apierr.New("InvalidGroupId.Malformed", "Invalid id: \"%s\" (expecting \"sg-...\")", id)
		}
	}
	return nil
}

// The filters on an instance's groups. EC2 documents the instance. and
// network-interface. forms; the bare ones are EC2-Classic's, still accepted.
var instanceGroupNameFilters = map[string]bool{"instance.group-name": true, "network-interface.group-name": true, "group-name": true}

func instanceGroupIDs(in instance.Instance) []string { return in.SecurityGroups }

// instanceFilter looks up a filter of DescribeInstances; names maps group
// IDs to names (read only when a group-name filter is given).
func instanceFilter(names map[string]string) func(string) (ec2query.FilterFunc[instance.Instance], bool) {
	return func(name string) (ec2query.FilterFunc[instance.Instance], bool) {
		if f, ok := instanceFilters[name]; ok {
			return f, true
		}
		if !instanceGroupNameFilters[name] {
			return nil, false
		}
		return func(in instance.Instance) []string {
			out := make([]string, len(in.SecurityGroups))
			for i, id := range in.SecurityGroups {
				out[i] = names[id]
			}
			return out
		}, true
	}
}
