package ec2

import (
	"context"
	"encoding/base64"
	"strings"

	"nubo/internal/api/ec2query"
	"nubo/internal/apierr"
	"nubo/internal/catalog"
	"nubo/internal/eni"
	"nubo/internal/instance"
)

type valueItem struct {
	Value string `xml:"value"`
}

type optValue struct {
	Value string `xml:"value,omitempty"`
}

type boolValue struct {
	Value bool `xml:"value"`
}

func (a *API) describeInstanceAttribute(ctx context.Context, r *ec2query.Request) (any, error) {
	id, err := r.Params.Required("InstanceId")
	if err != nil {
		return nil, err
	}
	attr, err := r.Params.Required("Attribute")
	if err != nil {
		return nil, err
	}
	in, err := a.Instances.Get(ctx, r.Account, id)
	if err != nil {
		return nil, err
	}
	out := struct {
		InstanceID                        string                        `xml:"instanceId"`
		InstanceType                      *valueItem                    `xml:"instanceType,omitempty"`
		UserData                          *optValue                     `xml:"userData,omitempty"`
		DisableAPITermination             *boolValue                    `xml:"disableApiTermination,omitempty"`
		InstanceInitiatedShutdownBehavior *valueItem                    `xml:"instanceInitiatedShutdownBehavior,omitempty"`
		RootDeviceName                    *valueItem                    `xml:"rootDeviceName,omitempty"`
		GroupSet                          *ec2query.List[instanceGroup] `xml:"groupSet,omitempty"`
		SourceDestCheck                   *boolValue                    `xml:"sourceDestCheck,omitempty"`
		BlockDeviceMapping                *ec2query.List[blockDevice]   `xml:"blockDeviceMapping,omitempty"`
	}{InstanceID: id}
	switch attr {
	case "instanceType":
		out.InstanceType = &valueItem{in.InstanceType}
	case "userData":
		out.UserData = &optValue{in.UserData} // <userData/> when there is none, as EC2 answers
	case "disableApiTermination":
		out.DisableAPITermination = &boolValue{in.DisableAPITermination}
	case "instanceInitiatedShutdownBehavior":
		out.InstanceInitiatedShutdownBehavior = &valueItem{in.ShutdownBehavior}
	case "rootDeviceName":
		out.RootDeviceName = &valueItem{in.RootDevice}
	case "groupSet":
		set := instanceGroupSet(in.SecurityGroups, nil) // IDs only, as EC2 answers
		out.GroupSet = &set
	case "sourceDestCheck":
		check, err := a.sourceDestCheck(ctx, r, in)
		if err != nil {
			return nil, err
		}
		out.SourceDestCheck = &boolValue{check}
	case "blockDeviceMapping":
		vols, err := a.attachedVolumes(ctx, r.Account)
		if err != nil {
			return nil, err
		}
		set := ec2query.List[blockDevice]{}
		if in.State != instance.Terminated { // its volumes are gone or detached
			set.Items = blockDevices(in, vols[in.ID])
		}
		out.BlockDeviceMapping = &set
	default:
		return nil, apierr.InvalidValue("Attribute", attr, "nubo supports instanceType, userData, disableApiTermination, instanceInitiatedShutdownBehavior, rootDeviceName, groupSet, sourceDestCheck and blockDeviceMapping.")
	}
	return out, nil
}

func (a *API) modifyInstanceAttribute(ctx context.Context, r *ec2query.Request) (any, error) {
	p := r.Params
	id, err := p.Required("InstanceId")
	if err != nil {
		return nil, err
	}
	// Each attribute arrives either as "X.Value" or, with Attribute=x, as "Value".
	get := func(name string) (string, bool) {
		if p.Has(name + ".Value") {
			return p.String(name + ".Value"), true
		}
		if strings.EqualFold(p.String("Attribute"), name) && p.Has("Value") {
			return p.String("Value"), true
		}
		return "", false
	}
	var mutations []func(*instance.Instance) error
	if v, ok := get("InstanceType"); ok {
		if _, known := catalog.LookupInstanceType(v); !known {
			return nil, apierr.InvalidValue("InstanceType", v, "")
		}
		ifcs, err := a.interfacesOf(ctx, r, id)
		if err != nil {
			return nil, err
		}
		maxIfcs, maxIPs := eni.Limits(v)
		for _, n := range ifcs {
			if len(ifcs) > maxIfcs || len(n.PrivateIPs) > maxIPs {
				return nil, apierr.New(apierr.InvalidParameterValue,
					"Instance %s has %d network interfaces (%s with %d addresses); %s takes %d, with at most %d addresses each.", id, len(ifcs), n.ID, len(n.PrivateIPs), v, maxIfcs, maxIPs)
			}
		}
		mutations = append(mutations, func(in *instance.Instance) error {
			if in.State != instance.Stopped {
				return apierr.New("IncorrectInstanceState", "The instance '%s' is not in the 'stopped' state.", in.ID)
			}
			in.InstanceType = v
			return nil
		})
	}
	// SourceDestCheck is the primary interface's attribute.
	var sourceDest *bool
	if v, ok := get("SourceDestCheck"); ok {
		b, err := ec2query.NewParams(map[string][]string{"v": {v}}).Bool("v")
		if err != nil {
			return nil, apierr.InvalidValue("SourceDestCheck.Value", v, "Expected true or false.")
		}
		sourceDest = &b
	}
	if v, ok := get("UserData"); ok {
		if _, err := base64.StdEncoding.DecodeString(v); err != nil {
			return nil, apierr.New(apierr.InvalidParameterValue, "Invalid BASE64 encoding of user data.")
		}
		mutations = append(mutations, func(in *instance.Instance) error {
			if in.State != instance.Stopped {
				return apierr.New("IncorrectInstanceState", "The instance '%s' is not in the 'stopped' state.", in.ID)
			}
			in.UserData = v
			return nil
		})
	}
	if v, ok := get("DisableApiTermination"); ok {
		b, err := ec2query.NewParams(map[string][]string{"v": {v}}).Bool("v")
		if err != nil {
			return nil, apierr.InvalidValue("DisableApiTermination.Value", v, "Expected true or false.")
		}
		mutations = append(mutations, func(in *instance.Instance) error { in.DisableAPITermination = b; return nil })
	}
	if v, ok := get("InstanceInitiatedShutdownBehavior"); ok {
		if v != "stop" && v != "terminate" {
			return nil, apierr.InvalidValue("InstanceInitiatedShutdownBehavior.Value", v, "Valid values are stop and terminate.")
		}
		mutations = append(mutations, func(in *instance.Instance) error { in.ShutdownBehavior = v; return nil })
	}
	// Volumes' DeleteOnTermination lives on the volumes (and, for the root,
	// on the instance too): set by the volume service, not a mutation.
	flags, err := deleteOnTerminationFlags(p)
	if err != nil {
		return nil, err
	}
	// Security groups are written with a check on each group: not a mutation.
	groups := p.Strings("GroupId")
	if err := checkGroupIDs(groups); err != nil {
		return nil, err
	}
	if p.String("Attribute") == "groupSet" && len(groups) == 0 {
		return nil, apierr.Missing("GroupId")
	}
	if len(groups) > 0 && len(mutations)+len(flags) > 0 {
		return nil, apierr.New(apierr.InvalidParameterCombination, "Security groups (GroupId.N) must be modified on their own, without other attributes.")
	}
	if len(flags) > 0 && len(mutations) > 0 {
		return nil, apierr.New(apierr.InvalidParameterCombination, "BlockDeviceMapping must be modified on its own, without other attributes.")
	}
	if sourceDest != nil && len(mutations)+len(flags)+len(groups) > 0 {
		return nil, apierr.New(apierr.InvalidParameterCombination, "SourceDestCheck must be modified on its own, without other attributes.")
	}
	if len(mutations) == 0 && len(groups) == 0 && len(flags) == 0 && sourceDest == nil {
		return nil, apierr.New(apierr.MissingParameter, "The request must contain an attribute to modify (e.g. InstanceType.Value, DisableApiTermination.Value).")
	}
	if err := r.CheckDryRun(); err != nil {
		return nil, err
	}
	if sourceDest != nil {
		in, err := a.Instances.Get(ctx, r.Account, id)
		if err != nil {
			return nil, err
		}
		if in.NetworkInterfaceID == "" || a.ENIs == nil {
			return nil, apierr.New(apierr.UnsupportedOperation, "Instance %s has no network interface record to set SourceDestCheck on.", id)
		}
		if err := a.ENIs.Modify(ctx, a.scope(r), in.NetworkInterfaceID, eni.ModifySpec{SourceDestCheck: sourceDest}); err != nil {
			return nil, err
		}
		return returnTrue{true}, nil
	}
	if len(groups) > 0 {
		if err := a.Instances.SetSecurityGroups(ctx, r.Account, id, groups); err != nil {
			return nil, err
		}
		return returnTrue{true}, nil
	}
	if len(flags) > 0 {
		if a.Volumes == nil {
			return nil, apierr.New(apierr.UnsupportedOperation, "Block device mappings cannot be modified here.")
		}
		if _, err := a.Instances.Get(ctx, r.Account, id); err != nil {
			return nil, err
		}
		for _, f := range flags {
			if err := a.Volumes.SetDeleteOnTermination(ctx, a.scope(r), id, f.device, f.deleteOnTermination); err != nil {
				return nil, err
			}
		}
		return returnTrue{true}, nil
	}
	err = a.Instances.Modify(ctx, r.Account, id, func(in *instance.Instance) error {
		for _, m := range mutations {
			if err := m(in); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return returnTrue{true}, nil
}

// deviceFlag is one BlockDeviceMapping.N of ModifyInstanceAttribute.
type deviceFlag struct {
	device              string
	deleteOnTermination bool
}

// deleteOnTerminationFlags reads BlockDeviceMapping.N.DeviceName and
// .Ebs.DeleteOnTermination, the one change EC2 makes to attached volumes.
func deleteOnTerminationFlags(p ec2query.Params) ([]deviceFlag, error) {
	var out []deviceFlag
	for _, m := range p.Members("BlockDeviceMapping") {
		dev, err := m.Required("DeviceName")
		if err != nil {
			return nil, err
		}
		ebs := m.Member("Ebs")
		flag, err := ebs.OptBool("DeleteOnTermination")
		if err != nil {
			return nil, err
		}
		if flag == nil {
			return nil, apierr.Missing(ebs.Name("DeleteOnTermination"))
		}
		out = append(out, deviceFlag{dev, *flag})
	}
	return out, nil
}

// interfacesOf lists the interfaces attached to an instance.
func (a *API) interfacesOf(ctx context.Context, r *ec2query.Request, id string) ([]eni.Interface, error) {
	if a.ENIs == nil {
		return nil, nil
	}
	return a.ENIs.Attached(ctx, a.scope(r), id)
}

// sourceDestCheck is the instance's primary interface's (true without one).
func (a *API) sourceDestCheck(ctx context.Context, r *ec2query.Request, in instance.Instance) (bool, error) {
	if in.NetworkInterfaceID == "" || a.ENIs == nil {
		return true, nil
	}
	n, err := a.ENIs.Get(ctx, a.scope(r), in.NetworkInterfaceID)
	if e, ok := apierr.As(err); ok && e.Code == eni.Kind.NotFoundCode {
		return true, nil
	}
	return n.SourceDestCheck, err
}
