package ec2

import (
	"context"
	"sort"
	"strconv"

	"nubo/internal/api/ec2query"
	"nubo/internal/apierr"
	"nubo/internal/resource"
	"nubo/internal/secgroup"
)

// Requests: permissions.

// parsePermissions reads IpPermissions.N and, when legacy, the top-level
// CidrIp / IpProtocol / FromPort / ToPort / SourceSecurityGroup* form.
func parsePermissions(p ec2query.Params) ([]secgroup.Permission, error) {
	var out []secgroup.Permission
	for _, m := range p.Members("IpPermissions") {
		perm, err := parsePermission(m)
		if err != nil {
			return nil, err
		}
		out = append(out, perm)
	}
	legacy, err := legacyPermissions(p)
	return append(out, legacy...), err
}

func parsePorts(m ec2query.Params, perm *secgroup.Permission) error {
	from, ok, err := m.Int("FromPort")
	if err != nil {
		return err
	}
	if ok {
		perm.FromPort = &from
	}
	to, ok, err := m.Int("ToPort")
	if err != nil {
		return err
	}
	if ok {
		perm.ToPort = &to
	}
	return nil
}

func parsePermission(m ec2query.Params) (secgroup.Permission, error) {
	perm := secgroup.Permission{Protocol: m.String("IpProtocol")}
	if err := parsePorts(m, &perm); err != nil {
		return perm, err
	}
	for _, x := range m.Members("IpRanges") {
		perm.IPv4 = append(perm.IPv4, secgroup.Peer{Value: x.String("CidrIp"), Description: x.String("Description")})
	}
	for _, x := range m.Members("Ipv6Ranges") {
		perm.IPv6 = append(perm.IPv6, secgroup.Peer{Value: x.String("CidrIpv6"), Description: x.String("Description")})
	}
	for _, x := range m.Members("PrefixListIds") {
		perm.PrefixLists = append(perm.PrefixLists, secgroup.Peer{Value: x.String("PrefixListId"), Description: x.String("Description")})
	}
	// The wire name of UserIdGroupPairs is "Groups".
	for _, x := range m.Members("Groups") {
		perm.Groups = append(perm.Groups, secgroup.GroupPeer{GroupID: x.String("GroupId"), GroupName: x.String("GroupName"),
			UserID: x.String("UserId"), Description: x.String("Description")})
	}
	return perm, nil
}

// legacyPermissions reads the top-level rule parameters. A source group
// without a protocol grants all TCP, UDP and ICMP, as EC2 documents.
func legacyPermissions(p ec2query.Params) ([]secgroup.Permission, error) {
	src, cidr := p.String("SourceSecurityGroupName"), p.String("CidrIp")
	if src == "" && cidr == "" && !p.Has("IpProtocol") && !p.Has("FromPort") && !p.Has("ToPort") {
		return nil, nil
	}
	perm := secgroup.Permission{Protocol: p.String("IpProtocol")}
	if err := parsePorts(p, &perm); err != nil {
		return nil, err
	}
	switch {
	case src != "" && cidr != "":
		return nil, apierr.New(apierr.InvalidParameterCombination, "You can't specify a CIDR IP address range and a source security group in the same request.")
	case src != "":
		pair := []secgroup.GroupPeer{{GroupName: src, UserID: p.String("SourceSecurityGroupOwnerId")}}
		if perm.Protocol != "" {
			perm.Groups = pair
			return []secgroup.Permission{perm}, nil
		}
		all, icmp := 65535, -1
		zero := 0
		return []secgroup.Permission{
			{Protocol: "tcp", FromPort: &zero, ToPort: &all, Groups: pair},
			{Protocol: "udp", FromPort: &zero, ToPort: &all, Groups: pair},
			{Protocol: "icmp", FromPort: &icmp, ToPort: &icmp, Groups: pair},
		}, nil
	case perm.Protocol == "":
		return nil, apierr.Missing("IpProtocol")
	case cidr == "":
		return nil, apierr.Missing("CidrIp")
	}
	perm.IPv4 = []secgroup.Peer{{Value: cidr}}
	return []secgroup.Permission{perm}, nil
}

// groupRef reads GroupId, or GroupName where the action has it.
func groupRef(p ec2query.Params, byName bool) (secgroup.GroupRef, error) {
	ref := secgroup.GroupRef{ID: p.String("GroupId")}
	if byName {
		ref.Name = p.String("GroupName")
	}
	if ref.ID == "" && ref.Name == "" {
		if byName {
			return ref, apierr.New(apierr.MissingParameter, "The request must contain the parameter groupName or groupId")
		}
		return ref, apierr.Missing("GroupId")
	}
	return ref, nil
}

// Responses.

type ipRange struct {
	CidrIP      string `xml:"cidrIp"`
	Description string `xml:"description,omitempty"`
}

type ipv6Range struct {
	CidrIPv6    string `xml:"cidrIpv6"`
	Description string `xml:"description,omitempty"`
}

type groupPair struct {
	UserID      string `xml:"userId"`
	GroupID     string `xml:"groupId"`
	Description string `xml:"description,omitempty"`
}

type ipPermission struct {
	IPProtocol    string                   `xml:"ipProtocol"`
	FromPort      *int                     `xml:"fromPort,omitempty"`
	ToPort        *int                     `xml:"toPort,omitempty"`
	Groups        ec2query.List[groupPair] `xml:"groups"`
	IPRanges      ec2query.List[ipRange]   `xml:"ipRanges"`
	IPv6Ranges    ec2query.List[ipv6Range] `xml:"ipv6Ranges"`
	PrefixListIDs ec2query.List[struct{}]  `xml:"prefixListIds"`
}

// hasPorts: EC2 shows ports only for protocols that have them.
func hasPorts(proto string) bool {
	return proto == "tcp" || proto == "udp" || proto == "icmp" || proto == "icmpv6"
}

// permissionsOf groups rules as EC2 shows them: one permission per
// protocol and ports, listing its peers, in the order rules were added.
func permissionsOf(rules []secgroup.Rule) []ipPermission {
	var out []ipPermission
	index := map[[3]string]int{}
	for _, r := range rules {
		k := [3]string{r.Protocol, strconv.Itoa(r.FromPort), strconv.Itoa(r.ToPort)}
		i, ok := index[k]
		if !ok {
			p := ipPermission{IPProtocol: r.Protocol}
			if hasPorts(r.Protocol) {
				from, to := r.FromPort, r.ToPort
				p.FromPort, p.ToPort = &from, &to
			}
			i = len(out)
			index[k] = i
			out = append(out, p)
		}
		p := &out[i]
		switch {
		case r.CIDRv4 != "":
			p.IPRanges.Items = append(p.IPRanges.Items, ipRange{r.CIDRv4, r.Description})
		case r.CIDRv6 != "":
			p.IPv6Ranges.Items = append(p.IPv6Ranges.Items, ipv6Range{r.CIDRv6, r.Description})
		default:
			p.Groups.Items = append(p.Groups.Items, groupPair{r.GroupOwner, r.GroupID, r.Description})
		}
	}
	return out
}

func direction(rules []secgroup.Rule, egress bool) []secgroup.Rule {
	var out []secgroup.Rule
	for _, r := range rules {
		if r.Egress == egress {
			out = append(out, r)
		}
	}
	return out
}

type sgItem struct {
	OwnerID             string                       `xml:"ownerId"`
	GroupID             string                       `xml:"groupId"`
	GroupName           string                       `xml:"groupName"`
	GroupDescription    string                       `xml:"groupDescription"`
	VpcID               string                       `xml:"vpcId"`
	SecurityGroupArn    string                       `xml:"securityGroupArn"`
	IPPermissions       ec2query.List[ipPermission]  `xml:"ipPermissions"`
	IPPermissionsEgress ec2query.List[ipPermission]  `xml:"ipPermissionsEgress"`
	TagSet              *ec2query.List[ec2query.Tag] `xml:"tagSet"`
}

func (a *API) arn(account, kind, id string) string {
	return "arn:aws:ec2:" + a.Region.Name + ":" + account + ":" + kind + "/" + id
}

func (a *API) sgOf(g secgroup.Group) sgItem {
	return sgItem{OwnerID: g.Owner, GroupID: g.ID, GroupName: g.Name, GroupDescription: g.Description, VpcID: g.VPCID,
		SecurityGroupArn:    a.arn(g.Owner, resource.SecurityGroup.Name, g.ID),
		IPPermissions:       ec2query.ListOf(permissionsOf(direction(g.Rules, false))),
		IPPermissionsEgress: ec2query.ListOf(permissionsOf(direction(g.Rules, true))),
		TagSet:              ec2query.TagSet(g.Tags)}
}

type referencedGroup struct {
	GroupID string `xml:"groupId"`
	UserID  string `xml:"userId"`
}

type ruleItem struct {
	SecurityGroupRuleID  string                      `xml:"securityGroupRuleId"`
	GroupID              string                      `xml:"groupId"`
	GroupOwnerID         string                      `xml:"groupOwnerId"`
	IsEgress             bool                        `xml:"isEgress"`
	IPProtocol           string                      `xml:"ipProtocol"`
	FromPort             int                         `xml:"fromPort"`
	ToPort               int                         `xml:"toPort"`
	CidrIPv4             string                      `xml:"cidrIpv4,omitempty"`
	CidrIPv6             string                      `xml:"cidrIpv6,omitempty"`
	ReferencedGroupInfo  *referencedGroup            `xml:"referencedGroupInfo,omitempty"`
	Description          string                      `xml:"description,omitempty"`
	TagSet               ec2query.List[ec2query.Tag] `xml:"tagSet"`
	SecurityGroupRuleArn string                      `xml:"securityGroupRuleArn"`
}

// groupRule is a rule with the group that holds it.
type groupRule struct {
	secgroup.Rule
	Group, Owner string
}

func rulesOf(g secgroup.Group, rules []secgroup.Rule) []groupRule {
	out := make([]groupRule, len(rules))
	for i, r := range rules {
		out[i] = groupRule{r, g.ID, g.Owner}
	}
	return out
}

func (a *API) ruleOf(r groupRule) ruleItem {
	it := ruleItem{SecurityGroupRuleID: r.ID, GroupID: r.Group, GroupOwnerID: r.Owner, IsEgress: r.Egress,
		IPProtocol: r.Protocol, FromPort: r.FromPort, ToPort: r.ToPort, CidrIPv4: r.CIDRv4, CidrIPv6: r.CIDRv6,
		Description: r.Description, SecurityGroupRuleArn: a.arn(r.Owner, resource.SecurityGroupRule.Name, r.ID)}
	if r.Rule.GroupID != "" {
		it.ReferencedGroupInfo = &referencedGroup{r.Rule.GroupID, r.GroupOwner}
	}
	if ts := ec2query.TagSet(r.Tags); ts != nil {
		it.TagSet = *ts
	}
	return it
}

// Actions.

func (a *API) createSecurityGroup(ctx context.Context, r *ec2query.Request) (any, error) {
	name, desc := r.Params.String("GroupName"), r.Params.String("GroupDescription")
	if err := secgroup.ValidateGroup(name, desc); err != nil {
		return nil, err
	}
	tags, err := parseTagSpecs(r.Params, resource.SecurityGroup)
	if err != nil {
		return nil, err
	}
	if err := r.CheckDryRun(); err != nil {
		return nil, err
	}
	g, err := a.SecurityGroups.Create(ctx, a.scope(r), name, desc, r.Params.String("VpcId"), tags)
	if err != nil {
		return nil, err
	}
	return struct {
		GroupID          string                       `xml:"groupId"`
		TagSet           *ec2query.List[ec2query.Tag] `xml:"tagSet"`
		SecurityGroupArn string                       `xml:"securityGroupArn"`
	}{g.ID, ec2query.TagSet(g.Tags), a.arn(g.Owner, resource.SecurityGroup.Name, g.ID)}, nil
}

func (a *API) deleteSecurityGroup(ctx context.Context, r *ec2query.Request) (any, error) {
	ref, err := groupRef(r.Params, true)
	if err != nil {
		return nil, err
	}
	id, err := a.SecurityGroups.Resolve(ctx, a.scope(r), ref)
	if err != nil {
		return nil, err
	}
	if err := r.CheckDryRun(); err != nil {
		return nil, err
	}
	if _, err := a.SecurityGroups.Delete(ctx, a.scope(r), secgroup.GroupRef{ID: id}); err != nil {
		return nil, err
	}
	return struct {
		Return  bool   `xml:"return"`
		GroupID string `xml:"groupId"`
	}{true, id}, nil
}

// ruleValues returns a filter's values over the rules of one direction.
func ruleValues(egress bool, get func(secgroup.Rule) []string) ec2query.FilterFunc[secgroup.Group] {
	return func(g secgroup.Group) []string {
		var out []string
		for _, r := range direction(g.Rules, egress) {
			out = append(out, get(r)...)
		}
		return out
	}
}

func protocolValues(r secgroup.Rule) []string {
	if n := r.ProtocolNumber(); n >= 0 && r.Protocol != strconv.Itoa(n) {
		return []string{r.Protocol, strconv.Itoa(n)} // "tcp" also matches 6
	}
	return one(r.Protocol)
}

// sgFilters are DescribeSecurityGroups' filters; names maps group IDs to
// names (for ip-permission.group-name).
func sgFilters(names map[string]string) map[string]ec2query.FilterFunc[secgroup.Group] {
	fs := map[string]ec2query.FilterFunc[secgroup.Group]{
		"description": func(g secgroup.Group) []string { return one(g.Description) },
		"group-id":    func(g secgroup.Group) []string { return one(g.ID) },
		"group-name":  func(g secgroup.Group) []string { return one(g.Name) },
		"owner-id":    func(g secgroup.Group) []string { return one(g.Owner) },
		"vpc-id":      func(g secgroup.Group) []string { return one(g.VPCID) },
	}
	for prefix, egress := range map[string]bool{"ip-permission.": false, "egress.ip-permission.": true} {
		for name, get := range map[string]func(secgroup.Rule) []string{
			"cidr":           func(r secgroup.Rule) []string { return nonEmpty(r.CIDRv4) },
			"ipv6-cidr":      func(r secgroup.Rule) []string { return nonEmpty(r.CIDRv6) },
			"from-port":      func(r secgroup.Rule) []string { return one(strconv.Itoa(r.FromPort)) },
			"to-port":        func(r secgroup.Rule) []string { return one(strconv.Itoa(r.ToPort)) },
			"protocol":       protocolValues,
			"group-id":       func(r secgroup.Rule) []string { return nonEmpty(r.GroupID) },
			"group-name":     func(r secgroup.Rule) []string { return nonEmpty(names[r.GroupID]) },
			"user-id":        func(r secgroup.Rule) []string { return nonEmpty(r.GroupOwner) },
			"prefix-list-id": func(r secgroup.Rule) []string { return nil },
		} {
			fs[prefix+name] = ruleValues(egress, get)
		}
	}
	return fs
}

func (a *API) describeSecurityGroups(ctx context.Context, r *ec2query.Request) (any, error) {
	sc := a.scope(r)
	filters, err := ec2query.ParseFilters(r.Params)
	if err != nil {
		return nil, err
	}
	page, err := ec2query.ParsePage(r.Params, 5, 1000)
	if err != nil {
		return nil, err
	}
	ids, names := r.Params.Strings("GroupId"), r.Params.Strings("GroupName")
	if page.Max != 0 && len(ids)+len(names) > 0 {
		return nil, apierr.New(apierr.InvalidParameterCombination, "The parameter groupIds cannot be used with the parameter maxResults")
	}
	all, err := a.SecurityGroups.Groups(ctx, sc)
	if err != nil {
		return nil, err
	}
	byID, nameOf := map[string]secgroup.Group{}, map[string]string{}
	for _, g := range all {
		byID[g.ID], nameOf[g.ID] = g, g.Name
	}
	m, err := ec2query.Compile(filters, sgFilters(nameOf), func(g secgroup.Group) ec2query.Tags { return g.Tags })
	if err != nil {
		return nil, err
	}
	if len(ids)+len(names) > 0 {
		var keep []secgroup.Group
		for _, id := range ids {
			g, ok := byID[id]
			if !ok {
				if _, err := a.SecurityGroups.Get(ctx, sc, id); err != nil { // malformed or gone: EC2's error
					return nil, err
				}
				return nil, apierr.New(resource.SecurityGroup.NotFoundCode, "The security group '%s' does not exist", id)
			}
			keep = append(keep, g)
		}
		for _, n := range names {
			id, err := a.SecurityGroups.Resolve(ctx, sc, secgroup.GroupRef{Name: n})
			if err != nil {
				return nil, err
			}
			if g, ok := byID[id]; ok {
				keep = append(keep, g)
			}
		}
		all = keep
	}
	gs, next, err := ec2query.Paginate(m.Apply(all), func(g secgroup.Group) string { return g.ID }, page)
	if err != nil {
		return nil, err
	}
	items := make([]sgItem, len(gs))
	for i, g := range gs {
		items[i] = a.sgOf(g)
	}
	return struct {
		SecurityGroupInfo ec2query.List[sgItem] `xml:"securityGroupInfo"`
		NextToken         string                `xml:"nextToken,omitempty"`
	}{ec2query.ListOf(items), next}, nil
}

var ruleFilters = map[string]ec2query.FilterFunc[groupRule]{
	"group-id":               func(r groupRule) []string { return one(r.Group) },
	"security-group-rule-id": func(r groupRule) []string { return one(r.ID) },
}

func (a *API) describeSecurityGroupRules(ctx context.Context, r *ec2query.Request) (any, error) {
	filters, err := ec2query.ParseFilters(r.Params)
	if err != nil {
		return nil, err
	}
	m, err := ec2query.Compile(filters, ruleFilters, func(r groupRule) ec2query.Tags { return r.Tags })
	if err != nil {
		return nil, err
	}
	page, err := ec2query.ParsePage(r.Params, 5, 1000)
	if err != nil {
		return nil, err
	}
	gs, err := a.SecurityGroups.Groups(ctx, a.scope(r))
	if err != nil {
		return nil, err
	}
	var all []groupRule
	for _, g := range gs {
		all = append(all, rulesOf(g, g.Rules)...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].ID < all[j].ID })
	if ids := r.Params.Strings("SecurityGroupRuleId"); len(ids) > 0 {
		byID := map[string]groupRule{}
		for _, x := range all {
			byID[x.ID] = x
		}
		all = nil
		for _, id := range ids {
			x, ok := byID[id]
			if !ok {
				return nil, apierr.New(resource.SecurityGroupRule.NotFoundCode, "The security group rule ID '%s' does not exist", id)
			}
			all = append(all, x)
		}
	}
	rs, next, err := ec2query.Paginate(m.Apply(all), func(r groupRule) string { return r.ID }, page)
	if err != nil {
		return nil, err
	}
	items := make([]ruleItem, len(rs))
	for i, x := range rs {
		items[i] = a.ruleOf(x)
	}
	return struct {
		SecurityGroupRuleSet ec2query.List[ruleItem] `xml:"securityGroupRuleSet"`
		NextToken            string                  `xml:"nextToken,omitempty"`
	}{ec2query.ListOf(items), next}, nil
}

// ruleCall reads what every rule-changing action starts with: the group
// (by name too where the action has GroupName) and IpPermissions, which are
// checked, and the group resolved, before a dry run stops there.
func (a *API) ruleCall(ctx context.Context, r *ec2query.Request, byName bool) (string, []secgroup.Permission, error) {
	ref, err := groupRef(r.Params, byName)
	if err != nil {
		return "", nil, err
	}
	perms, err := parsePermissions(r.Params)
	if err != nil {
		return "", nil, err
	}
	if len(perms) > 0 {
		if err := secgroup.Validate(perms); err != nil {
			return "", nil, err
		}
	}
	id, err := a.SecurityGroups.Resolve(ctx, a.scope(r), ref)
	if err != nil {
		return "", nil, err
	}
	return id, perms, nil
}

func (a *API) authorize(ctx context.Context, r *ec2query.Request, egress bool) (any, error) {
	id, perms, err := a.ruleCall(ctx, r, !egress)
	if err != nil {
		return nil, err
	}
	if len(perms) == 0 {
		return nil, apierr.Missing("IpPermissions")
	}
	tags, err := parseTagSpecs(r.Params, resource.SecurityGroupRule)
	if err != nil {
		return nil, err
	}
	if err := r.CheckDryRun(); err != nil {
		return nil, err
	}
	rules, err := a.SecurityGroups.Authorize(ctx, a.scope(r), secgroup.GroupRef{ID: id}, egress, perms, tags)
	if err != nil {
		return nil, err
	}
	items := make([]ruleItem, len(rules))
	for i, x := range rules {
		items[i] = a.ruleOf(groupRule{x, id, r.Account})
	}
	return struct {
		Return               bool                    `xml:"return"`
		SecurityGroupRuleSet ec2query.List[ruleItem] `xml:"securityGroupRuleSet"`
	}{true, ec2query.ListOf(items)}, nil
}

func (a *API) authorizeSecurityGroupIngress(ctx context.Context, r *ec2query.Request) (any, error) {
	return a.authorize(ctx, r, false)
}

func (a *API) authorizeSecurityGroupEgress(ctx context.Context, r *ec2query.Request) (any, error) {
	return a.authorize(ctx, r, true)
}

type revokedRule struct {
	SecurityGroupRuleID string `xml:"securityGroupRuleId"`
	GroupID             string `xml:"groupId"`
	IsEgress            bool   `xml:"isEgress"`
	IPProtocol          string `xml:"ipProtocol"`
	FromPort            int    `xml:"fromPort"`
	ToPort              int    `xml:"toPort"`
	CidrIPv4            string `xml:"cidrIpv4,omitempty"`
	CidrIPv6            string `xml:"cidrIpv6,omitempty"`
	ReferencedGroupID   string `xml:"referencedGroupId,omitempty"`
	Description         string `xml:"description,omitempty"`
}

func (a *API) revoke(ctx context.Context, r *ec2query.Request, egress bool) (any, error) {
	id, perms, err := a.ruleCall(ctx, r, !egress)
	if err != nil {
		return nil, err
	}
	ruleIDs := r.Params.Strings("SecurityGroupRuleId")
	if len(perms) == 0 && len(ruleIDs) == 0 {
		return nil, apierr.New(apierr.MissingParameter, "The request must contain the parameter IpPermissions or SecurityGroupRuleId")
	}
	if err := r.CheckDryRun(); err != nil {
		return nil, err
	}
	revoked, unknown, err := a.SecurityGroups.Revoke(ctx, a.scope(r), secgroup.GroupRef{ID: id}, egress, perms, ruleIDs)
	if err != nil {
		return nil, err
	}
	items := make([]revokedRule, len(revoked))
	for i, x := range revoked {
		items[i] = revokedRule{x.ID, id, x.Egress, x.Protocol, x.FromPort, x.ToPort, x.CIDRv4, x.CIDRv6, x.GroupID, x.Description}
	}
	out := struct {
		Return                      bool                         `xml:"return"`
		UnknownIPPermissionSet      *ec2query.List[ipPermission] `xml:"unknownIpPermissionSet"`
		RevokedSecurityGroupRuleSet ec2query.List[revokedRule]   `xml:"revokedSecurityGroupRuleSet"`
	}{Return: len(unknown) == 0, RevokedSecurityGroupRuleSet: ec2query.ListOf(items)}
	if len(unknown) > 0 {
		l := ec2query.ListOf(permissionsOf(unknown))
		out.UnknownIPPermissionSet = &l
	}
	return out, nil
}

func (a *API) revokeSecurityGroupIngress(ctx context.Context, r *ec2query.Request) (any, error) {
	return a.revoke(ctx, r, false)
}

func (a *API) revokeSecurityGroupEgress(ctx context.Context, r *ec2query.Request) (any, error) {
	return a.revoke(ctx, r, true)
}

func (a *API) modifySecurityGroupRules(ctx context.Context, r *ec2query.Request) (any, error) {
	id, err := r.Params.Required("GroupId")
	if err != nil {
		return nil, err
	}
	var updates []secgroup.RuleUpdate
	for _, m := range r.Params.Members("SecurityGroupRule") {
		x := m.Member("SecurityGroupRule")
		spec := secgroup.RuleSpec{Protocol: x.String("IpProtocol"), CIDRv4: x.String("CidrIpv4"), CIDRv6: x.String("CidrIpv6"),
			PrefixListID: x.String("PrefixListId"), ReferencedGroupID: x.String("ReferencedGroupId"), Description: x.String("Description")}
		var ports secgroup.Permission
		if err := parsePorts(x, &ports); err != nil {
			return nil, err
		}
		spec.FromPort, spec.ToPort = ports.FromPort, ports.ToPort
		updates = append(updates, secgroup.RuleUpdate{RuleID: m.String("SecurityGroupRuleId"), Rule: spec})
	}
	if err := secgroup.ValidateSpecs(updates); err != nil {
		return nil, err
	}
	if _, err := a.SecurityGroups.Get(ctx, a.scope(r), id); err != nil {
		return nil, err
	}
	if err := r.CheckDryRun(); err != nil {
		return nil, err
	}
	if err := a.SecurityGroups.Modify(ctx, a.scope(r), id, updates); err != nil {
		return nil, err
	}
	return returnTrue{true}, nil
}

func (a *API) updateDescriptions(ctx context.Context, r *ec2query.Request, egress bool) (any, error) {
	id, perms, err := a.ruleCall(ctx, r, true)
	if err != nil {
		return nil, err
	}
	var descs []secgroup.RuleDescription
	for _, m := range r.Params.Members("SecurityGroupRuleDescription") {
		descs = append(descs, secgroup.RuleDescription{RuleID: m.String("SecurityGroupRuleId"), Description: m.String("Description")})
	}
	if len(perms) == 0 && len(descs) == 0 {
		return nil, apierr.New(apierr.MissingParameter, "The request must contain the parameter IpPermissions or SecurityGroupRuleDescription")
	}
	if err := r.CheckDryRun(); err != nil {
		return nil, err
	}
	if err := a.SecurityGroups.UpdateDescriptions(ctx, a.scope(r), secgroup.GroupRef{ID: id}, egress, perms, descs); err != nil {
		return nil, err
	}
	return returnTrue{true}, nil
}

func (a *API) updateSecurityGroupRuleDescriptionsIngress(ctx context.Context, r *ec2query.Request) (any, error) {
	return a.updateDescriptions(ctx, r, false)
}

func (a *API) updateSecurityGroupRuleDescriptionsEgress(ctx context.Context, r *ec2query.Request) (any, error) {
	return a.updateDescriptions(ctx, r, true)
}
