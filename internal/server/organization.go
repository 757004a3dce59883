package server

import (
	"context"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/tranche-ledger/tranche/api/tranche/v1"
	"github.com/tranche-ledger/tranche/internal/org"
)

type organizationService struct {
	pb.UnimplementedOrganizationServiceServer
	orgs *org.Store
}

// orgToProto answers an organisation.
func orgToProto(o org.Organization) *pb.Organization {
	return &pb.Organization{Id: o.ID, Name: o.Name, Kind: o.Kind, IatiRef: o.IATIRef, FtsOrgId: o.FTSOrgID, Country: o.Country,
		CreateTime: timestamppb.New(o.CreatedAt)}
}

func (s *organizationService) CreateOrganization(ctx context.Context, req *pb.CreateOrganizationRequest) (*pb.CreateOrganizationResponse, error) {
	in := req.GetOrganization()
	o, err := s.orgs.Create(ctx, org.Organization{Name: in.GetName(), Kind: in.GetKind(), IATIRef: in.GetIatiRef(), FTSOrgID: in.GetFtsOrgId(),
		Country: in.GetCountry()}, req.GetRequestId())
	if err != nil {
		return nil, err
	}
	return &pb.CreateOrganizationResponse{Organization: orgToProto(o)}, nil
}

func (s *organizationService) GetOrganization(ctx context.Context, req *pb.GetOrganizationRequest) (*pb.GetOrganizationResponse, error) {
	o, err := s.orgs.Get(ctx, req.GetId())
	if err != nil {
		return nil, err
	}
	return &pb.GetOrganizationResponse{Organization: orgToProto(o)}, nil
}

func (s *organizationService) ListOrganizations(ctx context.Context, req *pb.ListOrganizationsRequest) (*pb.ListOrganizationsResponse, error) {
	list, next, err := s.orgs.List(ctx, req.GetKind(), int(req.GetPageSize()), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	resp := &pb.ListOrganizationsResponse{NextPageToken: next}
	for _, o := range list {
		resp.Organizations = append(resp.Organizations, orgToProto(o))
	}
	return resp, nil
}
