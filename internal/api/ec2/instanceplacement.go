package ec2

import (
	"context"
	"strconv"

	"nubo/internal/api/ec2query"
	"nubo/internal/apierr"
	"nubo/internal/instance"
)

// modifyInstancePlacement moves a stopped instance to or from a placement
// group or partition, or changes its tenancy (EC2: "To remove an instance
// from a placement group, specify an empty string" as GroupName).
func (a *API) modifyInstancePlacement(ctx context.Context, r *ec2query.Request) (any, error) {
	p := r.Params
	id := p.String("InstanceId")
	if id == "" {
		return nil, apierr.Missing("InstanceId")
	}
	c := instance.PlacementChange{
		Group:     p.Has("GroupName") || p.Has("GroupId"),
		GroupName: p.String("GroupName"), GroupID: p.String("GroupId"),
	}
	if c.GroupName != "" && c.GroupID != "" {
		return nil, apierr.New(apierr.InvalidParameterCombination, "Give GroupName or GroupId, not both.")
	}
	if n, ok, err := p.Int("PartitionNumber"); err != nil {
		return nil, err
	} else if ok {
		if n < 1 {
			return nil, apierr.InvalidValue("PartitionNumber", strconv.Itoa(n), "Partition numbers start at 1.")
		}
		c.Partition = n
	}
	for _, name := range []string{"HostId", "Affinity", "HostResourceGroupArn"} {
		if p.String(name) != "" {
			return nil, apierr.New(apierr.UnsupportedOperation, "%s is not supported: nubo has no Dedicated Hosts.", name)
		}
	}
	switch t := p.String("Tenancy"); t {
	case "", "default", "dedicated":
		c.Tenancy = t
	case "host":
		return nil, apierr.New(apierr.UnsupportedOperation, "Tenancy host is not offered: nubo has no Dedicated Hosts.")
	default:
		return nil, apierr.InvalidValue("Tenancy", t, "Valid values: default, dedicated, host.")
	}
	if !c.Group && c.Partition == 0 && c.Tenancy == "" {
		return nil, apierr.New("MissingParameter", "Give at least one of GroupName, GroupId, PartitionNumber or Tenancy.")
	}
	if err := a.Instances.ModifyPlacement(ctx, r.Account, id, c); err != nil {
		return nil, err
	}
	return returnTrue{true}, nil
}
