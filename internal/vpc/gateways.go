package vpc

import (
	"context"

	"nubo/internal/apierr"
	"nubo/internal/resource"
	"nubo/internal/store"
)

// CreateInternetGateway makes a detached internet gateway.
func (s *Service) CreateInternetGateway(ctx context.Context, account string, tags []resource.Tag) (InternetGateway, error) {
	set, err := resource.Merge("", nil, tags)
	if err != nil {
		return InternetGateway{}, err
	}
	g := InternetGateway{Meta: resource.Meta{ID: resource.NewID(resource.InternetGateway), Tags: set, CreateTime: s.now()}, Owner: account}
	return g, s.Store.Apply(ctx, store.Op{Key: s.key(account, resource.InternetGateway, g.ID), Value: g})
}

// InternetGateways lists the account's internet gateways.
func (s *Service) InternetGateways(ctx context.Context, account string) ([]InternetGateway, error) {
	if _, err := s.DefaultVPC(ctx, account); err != nil && err != ErrNoDefaultVPC {
		return nil, err
	}
	return list[InternetGateway](ctx, s, account, resource.InternetGateway)
}

// AttachInternetGateway attaches a gateway to a VPC: one gateway per VPC,
// one VPC per gateway.
func (s *Service) AttachInternetGateway(ctx context.Context, account, igwID, vpcID string) error {
	if _, err := s.GetVPC(ctx, account, vpcID); err != nil {
		return err
	}
	all, err := s.InternetGateways(ctx, account)
	if err != nil {
		return err
	}
	for _, g := range all {
		if g.VPCID == vpcID && g.ID != igwID {
			return apierr.New("Resource.AlreadyAssociated", "VPC %s already has internet gateway %s attached.", vpcID, g.ID)
		}
	}
	if _, _, err := get[InternetGateway](ctx, s, account, resource.InternetGateway, igwID); err != nil {
		return err
	}
	_, err = store.Update(ctx, s.Store, s.key(account, resource.InternetGateway, igwID), func(g *InternetGateway) error {
		switch g.VPCID {
		case vpcID:
			return apierr.New("Resource.AlreadyAssociated", "resource %s is already attached to network %s", igwID, vpcID)
		case "":
			g.VPCID = vpcID
			return nil
		}
		return apierr.New("Resource.AlreadyAssociated", "resource %s is already attached to network %s", igwID, g.VPCID)
	})
	return err
}

// DetachInternetGateway detaches a gateway from its VPC.
func (s *Service) DetachInternetGateway(ctx context.Context, account, igwID, vpcID string) error {
	if _, _, err := get[InternetGateway](ctx, s, account, resource.InternetGateway, igwID); err != nil {
		return err
	}
	_, err := store.Update(ctx, s.Store, s.key(account, resource.InternetGateway, igwID), func(g *InternetGateway) error {
		if g.VPCID != vpcID {
			return apierr.New("Gateway.NotAttached", "resource %s is not attached to network %s", igwID, vpcID)
		}
		g.VPCID = ""
		return nil
	})
	return err
}

// DeleteInternetGateway removes a detached gateway.
func (s *Service) DeleteInternetGateway(ctx context.Context, account, igwID string) error {
	g, rev, err := get[InternetGateway](ctx, s, account, resource.InternetGateway, igwID)
	if err != nil {
		return err
	}
	if g.VPCID != "" {
		return apierr.New("DependencyViolation", "The internetGateway '%s' has dependencies and cannot be deleted: it is attached to %s.", igwID, g.VPCID)
	}
	err = s.Store.Apply(ctx, store.Op{Key: s.key(account, resource.InternetGateway, igwID), ModRev: rev, Delete: true})
	if err == store.ErrConflict {
		return apierr.New("IncorrectState", "The internet gateway '%s' changed while being deleted; retry.", igwID)
	}
	return err
}
