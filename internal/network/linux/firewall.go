package linux

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"slices"
	"strings"

	"sigs.k8s.io/knftables"

	"nubo/internal/network"
)

// Security groups in a VPC router's table (see nft.go for the rest):
//
//	set in-<sg>, out-<sg>   a group's ingress / egress rules as disjoint
//	                        boxes "peer . protocol . word0 . word1" (boxes.go)
//	chain in-<port>         ip saddr . meta l4proto . th sport . th dport
//	                        looked up in each of the port's groups' in- sets:
//	                        accept on a match, else drop
//	chain out-<port>        the same with ip daddr and out- sets: return (on
//	                        to the ingress check) on a match, else drop
//	map in_ports, out_ports port name → goto its chain
//
// A packet between two instances passes the sender's egress and the
// receiver's ingress; from or to the gateway, one of them. Per packet that
// is one hash lookup per direction and one set lookup per group (at most
// five), whatever the number of rules; replies skip both (ct direction).
//
// Rules are looked up for a flow's first packet and again once after every
// change: the verdict is remembered in the flow's conntrack mark as the
// generation of the router's state it passed (chain fw_check_done sets it,
// chain fw_checked, the forward chain's first rule, accepts a flow carrying
// the current one). Every transaction on a router — rules, public IPs,
// subnets made public or private — starts a new generation (nftRun), so a
// flow that a revoked rule allowed is stopped at its next packet, and one
// still allowed goes on. An established flow costs one comparison per
// packet, whatever the rules.
//
// The driver remembers what it last wrote to each router and sends only the
// difference, in one nft transaction, so a rule change costs a few element
// updates. After a restart (nothing remembered) the first SetFirewall
// rewrites the router's groups in full, still in one transaction: packets
// see the old firewall or the new one, never a gap.

// fwState is what this process last wrote to a router's firewall.
type fwState struct {
	sets  map[string]map[string][]string // set name → element key → fields
	sums  map[string][32]byte            // set name → digest of the rules it was made from
	ports map[string][]string            // port name → the groups it looks up
	// read: learnt from the kernel after a restart, names only (nil
	// contents): everything is rewritten.
	read bool
}

const (
	inPrefix  = "in-"
	outPrefix = "out-"
	setKey    = "ipv4_addr . inet_proto . inet_service . inet_service"
)

// SetFirewall implements network.Driver.
func (d *Driver) SetFirewall(ctx context.Context, vpcID string, fw network.Firewall) error {
	if err := fw.Validate(); err != nil {
		return err
	}
	defer d.begin("vpc/" + vpcID)()
	path, rh, _, err := d.router(vpcID)
	if err != nil {
		return err
	}
	rh.Close()
	d.fwMu.Lock()
	have := d.fw[vpcID]
	d.fwMu.Unlock()
	tx, err := d.nftTx()
	if err != nil {
		return err
	}
	if have == nil {
		if have, err = d.readFirewall(ctx, path); err != nil {
			return err
		}
	}
	want := desiredFirewall(fw, have)
	firewallDiff(tx, have, want)
	if err := d.nftRun(ctx, path, tx); err != nil {
		d.forgetFirewall(vpcID) // unknown now: the next call rewrites it all
		return err
	}
	d.fwMu.Lock()
	if d.fw == nil {
		d.fw = map[string]*fwState{}
	}
	d.fw[vpcID] = want
	d.fwMu.Unlock()
	return nil
}

func (d *Driver) forgetFirewall(vpcID string) {
	d.fwMu.Lock()
	delete(d.fw, vpcID)
	d.fwMu.Unlock()
}

// desiredFirewall is the sets and port chains fw needs: a set for each
// group some port uses. A set whose rules are those it was made from last
// time is taken over as it is: a change to one group costs that group's
// work only.
func desiredFirewall(fw network.Firewall, have *fwState) *fwState {
	st := &fwState{sets: map[string]map[string][]string{}, sums: map[string][32]byte{}, ports: map[string][]string{}}
	used := map[string]bool{}
	for _, p := range fw.Ports {
		st.ports[portName(p.InstanceID, p.Device)] = slices.Clone(p.Groups)
		for _, g := range p.Groups {
			used[g] = true
		}
	}
	for _, g := range fw.Groups {
		if !used[g.ID] {
			continue
		}
		for name, rules := range map[string][]network.FirewallRule{inPrefix + g.ID: g.Ingress, outPrefix + g.ID: g.Egress} {
			sum := rulesSum(rules)
			if cur := have.sets[name]; cur != nil && have.sums[name] == sum {
				st.sets[name] = cur
			} else {
				st.sets[name] = elements(rules)
			}
			st.sums[name] = sum
		}
	}
	return st
}

// rulesSum is a digest of rules, to tell whether a set needs remaking.
func rulesSum(rules []network.FirewallRule) [32]byte {
	b := make([]byte, 0, len(rules)*16)
	for _, r := range rules {
		a := r.Peer.Addr().As4()
		b = binary.BigEndian.AppendUint32(b, uint32(int32(r.Protocol)))
		b = binary.BigEndian.AppendUint32(b, uint32(int32(r.FromPort)))
		b = binary.BigEndian.AppendUint32(b, uint32(int32(r.ToPort)))
		b = append(b, a[:]...)
		b = append(b, byte(r.Peer.Bits()))
	}
	return sha256.Sum256(b)
}

func elements(rules []network.FirewallRule) map[string][]string {
	var bs []box
	for _, r := range rules {
		if b, ok := ruleBox(r); ok {
			bs = append(bs, b)
		}
	}
	m := map[string][]string{}
	for _, b := range disjoint(bs) {
		k := elementKey(b)
		m[strings.Join(k, " . ")] = k
	}
	return m
}

// readFirewall learns which firewall sets and port chains a router has
// (after a restart) without their contents: every set found is rewritten
// in full by the diff, since its elements are unknown.
func (d *Driver) readFirewall(ctx context.Context, path string) (*fwState, error) {
	st := &fwState{sets: map[string]map[string][]string{}, ports: map[string][]string{}, read: true}
	var sets, chains []string
	err := d.nftDo(ctx, path, func(nft knftables.Interface) (err error) {
		if sets, err = nft.List(ctx, "sets"); err != nil {
			return err
		}
		chains, err = nft.List(ctx, "chains")
		return err
	})
	if err != nil {
		return nil, err
	}
	for _, s := range sets {
		if strings.HasPrefix(s, inPrefix) || strings.HasPrefix(s, outPrefix) {
			st.sets[s] = nil // nil: contents unknown
		}
	}
	for _, c := range chains {
		if port, ok := strings.CutPrefix(c, inPrefix); ok {
			st.ports[port] = nil // nil: rules unknown
		}
	}
	return st, nil
}

// firewallDiff adds to tx what turns have into want. Order matters within
// the transaction: sets exist before chains look them up, chains before
// the port maps point at them, and references go before what they
// reference is deleted.
func firewallDiff(tx *knftables.Transaction, have, want *fwState) {
	for name, elems := range want.sets {
		cur, known := have.sets[name]
		if cur != nil && have.sums[name] == want.sums[name] {
			continue // taken over as it is
		}
		if !known {
			tx.Add(&knftables.Set{Name: name, Type: setKey, Flags: []knftables.SetFlag{knftables.IntervalFlag}})
		}
		if known && cur == nil {
			tx.Flush(&knftables.Set{Name: name})
		}
		for k, fields := range cur {
			if _, ok := elems[k]; !ok {
				tx.Delete(&knftables.Element{Set: name, Key: fields})
			}
		}
		for k, fields := range elems {
			if _, ok := cur[k]; !ok {
				tx.Add(&knftables.Element{Set: name, Key: fields})
			}
		}
	}
	if have.read {
		tx.Flush(&knftables.Map{Name: mapInPorts})
		tx.Flush(&knftables.Map{Name: mapOutPorts})
	}
	for port, groups := range want.ports {
		cur, known := have.ports[port]
		if known && !have.read && slices.Equal(cur, groups) {
			continue
		}
		for _, dir := range []string{inPrefix, outPrefix} {
			chain := dir + port
			tx.Add(&knftables.Chain{Name: chain})
			tx.Flush(&knftables.Chain{Name: chain})
			for _, g := range groups {
				tx.Add(&knftables.Rule{Chain: chain, Rule: portRule(dir, g)})
			}
			tx.Add(&knftables.Rule{Chain: chain, Rule: "drop"})
		}
		if !known || have.read {
			tx.Add(portElem(mapInPorts, port, "goto "+inPrefix+port))
			tx.Add(portElem(mapOutPorts, port, "goto "+outPrefix+port))
		}
	}
	for port := range have.ports {
		if _, ok := want.ports[port]; ok {
			continue
		}
		if !have.read { // else the maps were flushed above
			tx.Delete(portElem(mapInPorts, port, ""))
			tx.Delete(portElem(mapOutPorts, port, ""))
		}
		for _, dir := range []string{inPrefix, outPrefix} {
			tx.Flush(&knftables.Chain{Name: dir + port})
			tx.Delete(&knftables.Chain{Name: dir + port})
		}
	}
	for name := range have.sets {
		if _, ok := want.sets[name]; !ok {
			tx.Delete(&knftables.Set{Name: name})
		}
	}
}

func portElem(m, port, verdict string) *knftables.Element {
	e := &knftables.Element{Map: m, Key: []string{`"` + port + `"`}}
	if verdict != "" {
		e.Value = []string{verdict}
	}
	return e
}

// portRule is a port chain's lookup in one group's set.
func portRule(dir, group string) string {
	if dir == inPrefix {
		return "ip saddr . meta l4proto . th sport . th dport @" + inPrefix + group + " accept"
	}
	return "ip daddr . meta l4proto . th sport . th dport @" + outPrefix + group + " return"
}

// firewallPorts lists the ports a router's firewall names, for tests.
func (d *Driver) firewallPorts(vpcID string) []string {
	d.fwMu.Lock()
	defer d.fwMu.Unlock()
	var out []string
	if st := d.fw[vpcID]; st != nil {
		for p := range st.ports {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}
