// Package ec2 is the EC2 API's actions: each decodes its parameters, calls the
// service that owns the resource, and shapes EC2's XML response. The wire
// protocol itself (signing, XML envelope, errors) is package ec2query.
package ec2

import (
	"nubo/internal/api/ec2query"
	"nubo/internal/keypair"
	"nubo/internal/resource"
)

// API holds the services the actions call.
type API struct {
	Region   Region
	KeyPairs *keypair.Service
	Tags     resource.Tagger
}

// Actions is the action table served at the EC2 endpoint.
func (a *API) Actions() map[string]ec2query.Handler {
	return map[string]ec2query.Handler{
		"DescribeRegions":               a.describeRegions,
		"DescribeAvailabilityZones":     a.describeAvailabilityZones,
		"DescribeInstanceTypes":         a.describeInstanceTypes,
		"DescribeInstanceTypeOfferings": a.describeInstanceTypeOfferings,
		"CreateKeyPair":                 a.createKeyPair,
		"ImportKeyPair":                 a.importKeyPair,
		"DescribeKeyPairs":              a.describeKeyPairs,
		"DeleteKeyPair":                 a.deleteKeyPair,
		"CreateTags":                    a.createTags,
		"DeleteTags":                    a.deleteTags,
		"DescribeTags":                  a.describeTags,
	}
}

func (a *API) scope(r *ec2query.Request) resource.Scope {
	return resource.Scope{Account: r.Account, Region: a.Region.Name}
}

// returnTrue is the body of actions that answer <return>true</return>.
type returnTrue struct {
	Return bool `xml:"return"`
}
