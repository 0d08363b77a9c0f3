package ec2

import (
	"context"

	"nubo/internal/api/ec2query"
)

func (a *API) describeInstanceTypes(ctx context.Context, r *ec2query.Request) (any, error) {
	return nil, nil
}

func (a *API) describeInstanceTypeOfferings(ctx context.Context, r *ec2query.Request) (any, error) {
	return nil, nil
}
