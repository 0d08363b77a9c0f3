package ec2

import (
	"sort"

	"nubo/internal/api/ec2query"
	"nubo/internal/apierr"
	"nubo/internal/resource"
)

// describe is the common shape of a Describe call over records of kind k:
// "<idParam>.N" narrows to those IDs (each must exist), Filter.N filters,
// MaxResults/NextToken page. Items come back ordered by ID.
func describe[T any](r *ec2query.Request, k resource.Kind, idParam string, all []T, id func(T) string,
	filters map[string]ec2query.FilterFunc[T], tags func(T) ec2query.Tags) ([]T, string, error) {
	fs, err := ec2query.ParseFilters(r.Params)
	if err != nil {
		return nil, "", err
	}
	m, err := ec2query.Compile(fs, filters, tags)
	if err != nil {
		return nil, "", err
	}
	page, err := ec2query.ParsePage(r.Params, 5, 1000)
	if err != nil {
		return nil, "", err
	}
	sort.Slice(all, func(i, j int) bool { return id(all[i]) < id(all[j]) })
	if ids := r.Params.Strings(idParam); len(ids) > 0 {
		byID := map[string]T{}
		for _, x := range all {
			byID[id(x)] = x
		}
		var keep []T
		for _, want := range ids {
			x, ok := byID[want]
			if !ok {
				return nil, "", apierr.New(k.NotFoundCode, "The %s ID '%s' does not exist", k.Name, want)
			}
			keep = append(keep, x)
		}
		all = keep
	}
	return ec2query.Paginate(m.Apply(all), id, page)
}

func one(v string) []string { return []string{v} }

// onID is the shape of an action on one resource named by param: the
// resource must exist (exists), a dry run stops there, then do; it answers
// <return>true</return>.
func onID(r *ec2query.Request, param string, exists, do func(id string) error) (any, error) {
	id, err := r.Params.Required(param)
	if err != nil {
		return nil, err
	}
	if err := exists(id); err != nil {
		return nil, err
	}
	if err := r.CheckDryRun(); err != nil {
		return nil, err
	}
	if err := do(id); err != nil {
		return nil, err
	}
	return returnTrue{true}, nil
}
