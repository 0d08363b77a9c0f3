package scheduler

import (
	"container/heap"
	"sort"
)

// node is a host with what it holds, indexed for one Place call.
type node struct {
	Host
	rack                 *rack
	usedV, usedS         int
	usedM                int64
	members              int // instances of the request's group
	eligible             bool
	single, dedicatedFor string // see tenancy
}

type rack struct {
	zone    *zone
	name    string
	nodes   []*node // by name
	members int
	owner   int // partition owning the rack: 0 none, -1 several (corrupt, unused)
}

type zone struct {
	name      string
	racks     []*rack // by name
	nodes     []*node // by name
	instances int
	members   int
	parts     [MaxPartitions + 1]int // members by partition
}

// state is the snapshot indexed for one request; the request's own
// placements are added to it as they are decided.
type state struct {
	req   Request
	zones []*zone // by name
	byZ   map[string]*zone
}

func build(req Request, snap Snapshot) *state {
	hosts := make([]Host, len(snap.Hosts))
	copy(hosts, snap.Hosts)
	sort.Slice(hosts, func(i, j int) bool { return hosts[i].Name < hosts[j].Name })

	s := &state{req: req, byZ: map[string]*zone{}}
	byName := make(map[string]*node, len(hosts))
	racks := map[[2]string]*rack{}
	for _, h := range hosts {
		if byName[h.Name] != nil {
			continue // names are unique; a duplicate is ignored
		}
		z := s.byZ[h.Zone]
		if z == nil {
			z = &zone{name: h.Zone}
			s.byZ[h.Zone] = z
			s.zones = append(s.zones, z)
		}
		rn := h.Rack
		if rn == "" {
			rn = "host:" + h.Name
		}
		r := racks[[2]string{h.Zone, rn}]
		if r == nil {
			r = &rack{zone: z, name: rn}
			racks[[2]string{h.Zone, rn}] = r
			z.racks = append(z.racks, r)
		}
		n := &node{Host: h, rack: r}
		r.nodes = append(r.nodes, n)
		z.nodes = append(z.nodes, n)
		byName[h.Name] = n
	}
	sort.Slice(s.zones, func(i, j int) bool { return s.zones[i].name < s.zones[j].name })
	for _, z := range s.zones {
		sort.Slice(z.racks, func(i, j int) bool { return z.racks[i].name < z.racks[j].name })
	}

	gid := ""
	if req.Group != nil {
		gid = req.Group.ID
	}
	for _, in := range snap.Instances {
		n := byName[in.Host]
		if n == nil {
			continue // on no known host: it holds nothing we could place on
		}
		n.usedV += in.VCPUs
		n.usedM += in.MemoryMiB
		n.usedS++
		n.addTenant(in.Account, in.Dedicated)
		z := n.rack.zone
		z.instances++
		if gid == "" || in.Group != gid {
			continue
		}
		n.members++
		n.rack.members++
		z.members++
		if p := in.Partition; p >= 1 && p <= MaxPartitions {
			z.parts[p]++
			switch n.rack.owner {
			case 0:
				n.rack.owner = p
			case p, -1:
			default:
				n.rack.owner = -1
			}
		}
	}
	dedicated := req.Tenancy == TenancyDedicated
	for _, z := range s.zones {
		for _, n := range z.nodes {
			n.eligible = n.Live && n.tenancyOK(req.Account, dedicated)
		}
	}
	return s
}

// Tenancy: single is the one account holding the host ("" empty, "*"
// several), dedicatedFor the account whose dedicated instances hold it.
// A dedicated request needs a host of its account alone; a default one a
// host no other account holds as dedicated.
func (n *node) addTenant(acct string, dedicated bool) {
	switch n.single {
	case "":
		n.single = acct
	case acct:
	default:
		n.single = "*"
	}
	if dedicated {
		n.dedicatedFor = acct
	}
}

func (n *node) tenancyOK(acct string, dedicated bool) bool {
	if dedicated {
		return n.usedS == 0 || n.single == acct
	}
	return n.dedicatedFor == "" || n.dedicatedFor == acct
}

// fits reports whether one more requested instance fits on n.
func (s *state) fits(n *node) bool {
	return n.eligible &&
		n.usedV+s.req.VCPUs <= n.VCPUs &&
		n.usedM+s.req.MemoryMiB <= n.MemoryMiB &&
		(n.Slots <= 0 || n.usedS < n.Slots)
}

// room is how many requested instances fit on n, at most max.
func (s *state) room(n *node, max int) int {
	if !n.eligible {
		return 0
	}
	k := max
	if n.Slots > 0 {
		k = min(k, n.Slots-n.usedS)
	}
	if v := s.req.VCPUs; v > 0 {
		k = min(k, (n.VCPUs-n.usedV)/v)
	}
	if m := s.req.MemoryMiB; m > 0 {
		k = min(k, int((n.MemoryMiB-n.usedM)/m))
	}
	return max0(k)
}

func max0(k int) int {
	if k < 0 {
		return 0
	}
	return k
}

// load is the fullest of n's resources, 0..1.
func (n *node) load() float64 {
	l := 0.0
	if n.VCPUs > 0 {
		l = float64(n.usedV) / float64(n.VCPUs)
	}
	if n.MemoryMiB > 0 {
		l = max(l, float64(n.usedM)/float64(n.MemoryMiB))
	}
	if n.Slots > 0 {
		l = max(l, float64(n.usedS)/float64(n.Slots))
	}
	return l
}

func lighter(a, b *node) bool {
	la, lb := a.load(), b.load()
	if la != lb {
		return la < lb
	}
	return a.Name < b.Name
}

// take places one requested instance on n.
func (s *state) take(n *node, partition int) Placement {
	n.usedV += s.req.VCPUs
	n.usedM += s.req.MemoryMiB
	n.usedS++
	n.addTenant(s.req.Account, s.req.Tenancy == TenancyDedicated)
	n.members++
	n.rack.members++
	z := n.rack.zone
	z.instances++
	z.members++
	if partition > 0 {
		z.parts[partition]++
	}
	return Placement{Host: n.Name, Zone: n.Zone, Rack: n.Rack, Partition: partition}
}

// pool is a least-loaded-first heap of hosts. Requested instances are all
// alike, so a host that cannot take one now cannot later in the same call:
// it is dropped for good instead of rescanned.
type pool []*node

func (p pool) Len() int           { return len(p) }
func (p pool) Less(i, j int) bool { return lighter(p[i], p[j]) }
func (p pool) Swap(i, j int)      { p[i], p[j] = p[j], p[i] }
func (p *pool) Push(x any)        { *p = append(*p, x.(*node)) }
func (p *pool) Pop() any {
	old := *p
	n := old[len(old)-1]
	*p = old[:len(old)-1]
	return n
}

// newPool heaps the fitting hosts of nodes.
func (s *state) newPool(nodes ...[]*node) *pool {
	p := pool{}
	for _, ns := range nodes {
		for _, n := range ns {
			if s.fits(n) {
				p = append(p, n)
			}
		}
	}
	heap.Init(&p)
	return &p
}

func (s *state) add(p *pool, ns []*node) {
	for _, n := range ns {
		if s.fits(n) {
			heap.Push(p, n)
		}
	}
}

// best is the least-loaded fitting host of p, or nil.
func (s *state) best(p *pool) *node {
	for p.Len() > 0 {
		if n := (*p)[0]; s.fits(n) {
			return n
		}
		heap.Pop(p)
	}
	return nil
}

// fill places up to k instances from p, least loaded first.
func (s *state) fill(p *pool, k, partition int, out []Placement) []Placement {
	for ; k > 0; k-- {
		n := s.best(p)
		if n == nil {
			break
		}
		out = append(out, s.take(n, partition))
		heap.Fix(p, 0)
	}
	return out
}
