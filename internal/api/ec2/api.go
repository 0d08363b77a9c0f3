// Package ec2 is the EC2 API's actions: each decodes its parameters, calls the
// service that owns the resource, and shapes EC2's XML response. The wire
// protocol itself (signing, XML envelope, errors) is package ec2query.
package ec2

import (
	"context"
	"time"

	"nubo/internal/ami"
	"nubo/internal/api/ec2query"
	"nubo/internal/eni"
	"nubo/internal/instance"
	"nubo/internal/keypair"
	"nubo/internal/placementgroup"
	"nubo/internal/resource"
	"nubo/internal/secgroup"
	"nubo/internal/snapshot"
	"nubo/internal/volume"
	"nubo/internal/vpc"
)

// API holds the services the actions call.
type API struct {
	Region   Region
	KeyPairs *keypair.Service
	Tags     resource.Tagger
	Images   *ami.Registry
	// AMIs makes images of instances and snapshots (nil: not offered).
	AMIs      *ami.Maker
	Instances *instance.Service
	VPCs      *vpc.Service
	// SecurityGroups keeps security groups and their rules.
	SecurityGroups *secgroup.Service
	// Volumes keeps EBS volumes (nil: the instance calls show root volumes only).
	Volumes *volume.Service
	// ENIs keeps network interfaces.
	ENIs *eni.Service
	// Snapshots keeps EBS snapshots.
	Snapshots *snapshot.Service
	// PlacementGroups keeps placement groups (nil: not offered).
	PlacementGroups *placementgroup.Service
	// Console returns an instance's console output and when it was taken.
	Console func(ctx context.Context, id string) ([]byte, time.Time, error)
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
		"DescribeImages":                a.describeImages,
		"DeregisterImage":               a.deregisterImage,
		"CreateImage":                   a.createImage,
		"RegisterImage":                 a.registerImage,
		"CopyImage":                     a.copyImage,
		"RunInstances":                  a.runInstances,
		"DescribeInstances":             a.describeInstances,
		"DescribeInstanceStatus":        a.describeInstanceStatus,
		"StopInstances":                 a.stopInstances,
		"StartInstances":                a.startInstances,
		"RebootInstances":               a.rebootInstances,
		"TerminateInstances":            a.terminateInstances,
		"GetConsoleOutput":              a.getConsoleOutput,
		"DescribeInstanceAttribute":     a.describeInstanceAttribute,
		"ModifyInstanceAttribute":       a.modifyInstanceAttribute,
		"ModifyInstancePlacement":       a.modifyInstancePlacement,
		"ModifyInstanceMetadataOptions": a.modifyInstanceMetadataOptions,
		"DescribeAccountAttributes":     a.describeAccountAttributes,
		"CreateVpc":                     a.createVpc,
		"DescribeVpcs":                  a.describeVpcs,
		"DeleteVpc":                     a.deleteVpc,
		"ModifyVpcAttribute":            a.modifyVpcAttribute,
		"DescribeVpcAttribute":          a.describeVpcAttribute,
		"CreateSubnet":                  a.createSubnet,
		"DescribeSubnets":               a.describeSubnets,
		"DeleteSubnet":                  a.deleteSubnet,
		"ModifySubnetAttribute":         a.modifySubnetAttribute,
		"CreateInternetGateway":         a.createInternetGateway,
		"DescribeInternetGateways":      a.describeInternetGateways,
		"AttachInternetGateway":         a.attachInternetGateway,
		"DetachInternetGateway":         a.detachInternetGateway,
		"DeleteInternetGateway":         a.deleteInternetGateway,
		"CreateRouteTable":              a.createRouteTable,
		"DescribeRouteTables":           a.describeRouteTables,
		"DeleteRouteTable":              a.deleteRouteTable,
		"CreateRoute":                   a.createRoute,
		"ReplaceRoute":                  a.replaceRoute,
		"DeleteRoute":                   a.deleteRoute,
		"AssociateRouteTable":           a.associateRouteTable,
		"DisassociateRouteTable":        a.disassociateRouteTable,
		"AllocateAddress":               a.allocateAddress,
		"DescribeAddresses":             a.describeAddresses,
		"AssociateAddress":              a.associateAddress,
		"DisassociateAddress":           a.disassociateAddress,
		"ReleaseAddress":                a.releaseAddress,

		"CreateSecurityGroup":                        a.createSecurityGroup,
		"DeleteSecurityGroup":                        a.deleteSecurityGroup,
		"DescribeSecurityGroups":                     a.describeSecurityGroups,
		"DescribeSecurityGroupRules":                 a.describeSecurityGroupRules,
		"AuthorizeSecurityGroupIngress":              a.authorizeSecurityGroupIngress,
		"AuthorizeSecurityGroupEgress":               a.authorizeSecurityGroupEgress,
		"RevokeSecurityGroupIngress":                 a.revokeSecurityGroupIngress,
		"RevokeSecurityGroupEgress":                  a.revokeSecurityGroupEgress,
		"ModifySecurityGroupRules":                   a.modifySecurityGroupRules,
		"UpdateSecurityGroupRuleDescriptionsIngress": a.updateSecurityGroupRuleDescriptionsIngress,
		"UpdateSecurityGroupRuleDescriptionsEgress":  a.updateSecurityGroupRuleDescriptionsEgress,

		"CreateNetworkInterface":            a.createNetworkInterface,
		"DescribeNetworkInterfaces":         a.describeNetworkInterfaces,
		"DeleteNetworkInterface":            a.deleteNetworkInterface,
		"AttachNetworkInterface":            a.attachNetworkInterface,
		"DetachNetworkInterface":            a.detachNetworkInterface,
		"ModifyNetworkInterfaceAttribute":   a.modifyNetworkInterfaceAttribute,
		"DescribeNetworkInterfaceAttribute": a.describeNetworkInterfaceAttribute,
		"ResetNetworkInterfaceAttribute":    a.resetNetworkInterfaceAttribute,
		"AssignPrivateIpAddresses":          a.assignPrivateIPAddresses,
		"UnassignPrivateIpAddresses":        a.unassignPrivateIPAddresses,
		"CreateVolume":                      a.createVolume,
		"DescribeVolumes":                   a.describeVolumes,
		"DeleteVolume":                      a.deleteVolume,
		"AttachVolume":                      a.attachVolume,
		"DetachVolume":                      a.detachVolume,
		"ModifyVolume":                      a.modifyVolume,
		"DescribeVolumesModifications":      a.describeVolumesModifications,
		"DescribeVolumeStatus":              a.describeVolumeStatus,
		"DescribeVolumeAttribute":           a.describeVolumeAttribute,
		"EnableEbsEncryptionByDefault":      a.enableEbsEncryptionByDefault,
		"DisableEbsEncryptionByDefault":     a.disableEbsEncryptionByDefault,
		"GetEbsEncryptionByDefault":         a.getEbsEncryptionByDefault,
		"GetEbsDefaultKmsKeyId":             a.getEbsDefaultKmsKeyID,

		"CreateSnapshot":            a.createSnapshot,
		"CreateSnapshots":           a.createSnapshots,
		"DescribeSnapshots":         a.describeSnapshots,
		"DeleteSnapshot":            a.deleteSnapshot,
		"CopySnapshot":              a.copySnapshot,
		"DescribeSnapshotAttribute": a.describeSnapshotAttribute,
		"ModifySnapshotAttribute":   a.modifySnapshotAttribute,
		"ResetSnapshotAttribute":    a.resetSnapshotAttribute,

		"CreatePlacementGroup":    a.withPlacementGroups(a.createPlacementGroup),
		"DescribePlacementGroups": a.withPlacementGroups(a.describePlacementGroups),
		"DeletePlacementGroup":    a.withPlacementGroups(a.deletePlacementGroup),
	}
}

func (a *API) scope(r *ec2query.Request) resource.Scope {
	return resource.Scope{Account: r.Account, Region: a.Region.Name}
}

// returnTrue is the body of actions that answer <return>true</return>.
type returnTrue struct {
	Return bool `xml:"return"`
}
