package linux

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"nubo/internal/network"
)

func rule(proto, from, to int, peer string) network.FirewallRule {
	return network.FirewallRule{Protocol: proto, FromPort: from, ToPort: to, Peer: netip.MustParsePrefix(peer)}
}

func keys(bs []box) []string {
	var out []string
	for _, b := range bs {
		out = append(out, strings.Join(elementKey(b), " . "))
	}
	return out
}

func boxesOf(t *testing.T, rs ...network.FirewallRule) []box {
	t.Helper()
	var bs []box
	for _, r := range rs {
		if b, ok := ruleBox(r); ok {
			bs = append(bs, b)
		}
	}
	return bs
}

func TestDisjoint(t *testing.T) {
	for _, c := range []struct {
		name  string
		rules []network.FirewallRule
		want  []string
	}{
		{"one", []network.FirewallRule{rule(6, 22, 22, "0.0.0.0/0")},
			[]string{"0.0.0.0/0 . 6 . 0-65535 . 22"}},
		{"all", []network.FirewallRule{rule(-1, -1, -1, "10.0.0.5/32")},
			[]string{"10.0.0.5 . 0-255 . 0-65535 . 0-65535"}},
		{"nested prefixes merge", []network.FirewallRule{rule(6, 22, 22, "10.0.0.0/8"), rule(6, 22, 22, "10.1.0.0/16")},
			[]string{"10.0.0.0/8 . 6 . 0-65535 . 22"}},
		{"adjacent members merge", []network.FirewallRule{rule(-1, 0, 0, "10.0.0.5/32"), rule(-1, 0, 0, "10.0.0.6/32"), rule(-1, 0, 0, "10.0.0.7/32")},
			[]string{"10.0.0.5-10.0.0.7 . 0-255 . 0-65535 . 0-65535"}},
		{"overlapping ports", []network.FirewallRule{rule(6, 20, 30, "10.0.0.0/8"), rule(6, 25, 40, "10.1.0.0/16")},
			[]string{"10.0.0.0/16 . 6 . 0-65535 . 20-30", "10.1.0.0/16 . 6 . 0-65535 . 20-40", "10.2.0.0-10.255.255.255 . 6 . 0-65535 . 20-30"}},
		{"icmp", []network.FirewallRule{rule(1, 8, -1, "0.0.0.0/0"), rule(1, 3, 4, "0.0.0.0/0")},
			[]string{"0.0.0.0/0 . 1 . 772 . 0-65535", "0.0.0.0/0 . 1 . 2048-2303 . 0-65535"}},
		{"icmpv6 matches no IPv4", []network.FirewallRule{rule(58, -1, -1, "0.0.0.0/0")}, nil},
		{"other protocol", []network.FirewallRule{rule(47, -1, -1, "192.0.2.0/24")},
			[]string{"192.0.2.0/24 . 47 . 0-65535 . 0-65535"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := keys(disjoint(boxesOf(t, c.rules...))); !slices.Equal(got, c.want) {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(c.want, "\n"))
			}
		})
	}
}

// TestDisjointRandom checks on random rule sets that the boxes are
// disjoint and match exactly the packets the rules match.
func TestDisjointRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	protos := []int{-1, 6, 17, 1, 47}
	for iter := range 300 {
		var rules []network.FirewallRule
		for range 1 + rng.IntN(8) {
			p := protos[rng.IntN(len(protos))]
			from := rng.IntN(40)
			to := from + rng.IntN(40)
			if p == 1 {
				from, to = rng.IntN(4)-1, rng.IntN(4)-1
				if from == -1 {
					to = -1
				}
			}
			bits := 24 + rng.IntN(9)
			peer := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(rng.IntN(16))}), bits).Masked()
			rules = append(rules, network.FirewallRule{Protocol: p, FromPort: from, ToPort: to, Peer: peer})
		}
		bs := disjoint(boxesOf(t, rules...))
		for i := range bs {
			for j := i + 1; j < len(bs); j++ {
				if overlap(bs[i], bs[j]) {
					t.Fatalf("iter %d: %v overlaps %v", iter, elementKey(bs[i]), elementKey(bs[j]))
				}
			}
		}
		for range 400 {
			pkt := [4]uint32{u32(netip.AddrFrom4([4]byte{10, 0, 0, byte(rng.IntN(20))})), uint32(protos[1+rng.IntN(4)]), uint32(rng.IntN(5)<<8 | rng.IntN(4)), uint32(rng.IntN(90))}
			want := false
			for _, r := range rules {
				b, ok := ruleBox(r)
				want = want || ok && in(b, pkt)
			}
			got := false
			for _, b := range bs {
				got = got || in(b, pkt)
			}
			if got != want {
				t.Fatalf("iter %d: packet %v: boxes say %v, rules %v", iter, pkt, got, want)
			}
		}
	}
}

func in(b box, p [4]uint32) bool {
	for i := range b {
		if p[i] < b[i].lo || p[i] > b[i].hi {
			return false
		}
	}
	return true
}

func overlap(a, b box) bool {
	for i := range a {
		if a[i].hi < b[i].lo || b[i].hi < a[i].lo {
			return false
		}
	}
	return true
}
