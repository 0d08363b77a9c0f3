package ec2

import (
	"context"
	"strconv"

	"nubo/internal/api/ec2query"
	"nubo/internal/apierr"
	"nubo/internal/instance"
)

// metadataOptionsItem is EC2's InstanceMetadataOptionsResponse.
type metadataOptionsItem struct {
	State                   string `xml:"state"`
	HTTPTokens              string `xml:"httpTokens"`
	HTTPPutResponseHopLimit int    `xml:"httpPutResponseHopLimit"`
	HTTPEndpoint            string `xml:"httpEndpoint"`
	HTTPProtocolIPv6        string `xml:"httpProtocolIpv6"`
	InstanceMetadataTags    string `xml:"instanceMetadataTags"`
}

// metadataOptionsOf renders an instance's options. EC2 says "pending" until
// the hypervisor has them; nubo's metadata service reads the record at every
// request, so a stored change is already applied.
func metadataOptionsOf(o instance.MetadataOptions) metadataOptionsItem {
	o = o.Effective()
	return metadataOptionsItem{
		State:                   "applied",
		HTTPTokens:              o.HTTPTokens,
		HTTPPutResponseHopLimit: o.HTTPPutResponseHopLimit,
		HTTPEndpoint:            o.HTTPEndpoint,
		HTTPProtocolIPv6:        o.HTTPProtocolIPv6,
		InstanceMetadataTags:    o.InstanceMetadataTags,
	}
}

// parseMetadataOptions reads the options p holds (RunInstances'
// MetadataOptions.*, or ModifyInstanceMetadataOptions' own parameters);
// fields not given stay empty, and given says whether any was.
func parseMetadataOptions(p ec2query.Params) (o instance.MetadataOptions, given bool, err error) {
	choice := func(name string, valid ...string) (string, error) {
		if !p.Has(name) {
			return "", nil
		}
		given = true
		v := p.String(name)
		for _, ok := range valid {
			if v == ok {
				return v, nil
			}
		}
		return "", apierr.InvalidValue(p.Name(name), v, "Valid values are "+valid[0]+" and "+valid[1]+".")
	}
	if o.HTTPTokens, err = choice("HttpTokens", "optional", "required"); err != nil {
		return o, given, err
	}
	if o.HTTPEndpoint, err = choice("HttpEndpoint", "enabled", "disabled"); err != nil {
		return o, given, err
	}
	if o.InstanceMetadataTags, err = choice("InstanceMetadataTags", "enabled", "disabled"); err != nil {
		return o, given, err
	}
	if o.HTTPProtocolIPv6, err = choice("HttpProtocolIpv6", "enabled", "disabled"); err != nil {
		return o, given, err
	}
	n, ok, err := p.Int("HttpPutResponseHopLimit")
	if err != nil {
		return o, given, err
	}
	if ok {
		given = true
		if n < 1 || n > 64 {
			return o, given, apierr.InvalidValue(p.Name("HttpPutResponseHopLimit"), strconv.Itoa(n), "It must be an integer from 1 to 64.")
		}
		o.HTTPPutResponseHopLimit = n
	}
	return o, given, nil
}

func (a *API) modifyInstanceMetadataOptions(ctx context.Context, r *ec2query.Request) (any, error) {
	id, err := r.Params.Required("InstanceId")
	if err != nil {
		return nil, err
	}
	change, given, err := parseMetadataOptions(r.Params)
	if err != nil {
		return nil, err
	}
	if !given {
		return nil, apierr.New(apierr.MissingParameter,
			"The request must contain at least one of HttpTokens, HttpEndpoint, HttpPutResponseHopLimit, InstanceMetadataTags and HttpProtocolIpv6.")
	}
	if _, err := a.Instances.Get(ctx, r.Account, id); err != nil {
		return nil, err
	}
	if err := r.CheckDryRun(); err != nil {
		return nil, err
	}
	var now instance.MetadataOptions
	err = a.Instances.Modify(ctx, r.Account, id, func(in *instance.Instance) error {
		if in.State == instance.Terminated || in.State == instance.ShuttingDown {
			return apierr.New("IncorrectInstanceState", "The instance '%s' is not in a state from which its metadata options can be modified.", id)
		}
		in.MetadataOptions = change.Over(in.MetadataOptions.Effective())
		now = in.MetadataOptions
		return nil
	})
	if err != nil {
		return nil, err
	}
	return struct {
		InstanceID              string              `xml:"instanceId"`
		InstanceMetadataOptions metadataOptionsItem `xml:"instanceMetadataOptions"`
	}{id, metadataOptionsOf(now)}, nil
}
