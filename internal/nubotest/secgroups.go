package nubotest

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// OpenDefaultGroup lets TCP to ports, and ICMP, in from anywhere through
// the default security group of a VPC ("" for the default VPC): tests that
// reach instances from the host need what an EC2 user needs.
func OpenDefaultGroup(ctx context.Context, c *ec2.Client, vpcID string, ports ...int32) (string, error) {
	filters := []types.Filter{{Name: aws.String("group-name"), Values: []string{"default"}}}
	if vpcID != "" {
		filters = append(filters, types.Filter{Name: aws.String("vpc-id"), Values: []string{vpcID}})
	} else {
		vpcs, err := c.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{Filters: []types.Filter{{Name: aws.String("is-default"), Values: []string{"true"}}}})
		if err != nil || len(vpcs.Vpcs) != 1 {
			return "", fmt.Errorf("the default VPC: %d, %w", len(vpcs.Vpcs), err)
		}
		filters = append(filters, types.Filter{Name: aws.String("vpc-id"), Values: []string{aws.ToString(vpcs.Vpcs[0].VpcId)}})
	}
	out, err := c.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{Filters: filters})
	if err != nil || len(out.SecurityGroups) != 1 {
		return "", fmt.Errorf("the default security group: %d, %w", len(out.SecurityGroups), err)
	}
	id := out.SecurityGroups[0].GroupId
	anywhere := []types.IpRange{{CidrIp: aws.String("0.0.0.0/0")}}
	perms := []types.IpPermission{{IpProtocol: aws.String("icmp"), FromPort: aws.Int32(-1), ToPort: aws.Int32(-1), IpRanges: anywhere}}
	for _, p := range ports {
		perms = append(perms, types.IpPermission{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(p), ToPort: aws.Int32(p), IpRanges: anywhere})
	}
	_, err = c.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: id, IpPermissions: perms})
	return aws.ToString(id), err
}
