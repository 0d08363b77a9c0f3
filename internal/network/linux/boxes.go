package linux

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"

	"nubo/internal/network"
)

// A security group's rules become elements of one nftables set whose key is
// "peer address . protocol . transport word 0 . transport word 1", every
// field a range (a pipapo set). The kernel refuses an element whose first
// or last key falls inside another element, and security group rules
// overlap all the time (0.0.0.0/0 port 22 next to 10.0.0.0/8 all ports),
// so the rules are first turned into disjoint boxes covering exactly their
// union. Since any match means "allow", the union is all that counts.
//
// The transport words are the first two 16-bit words of the transport
// header: for TCP and UDP the source port (always any) and the destination
// port; for ICMP type<<8|code and the checksum (any).

// span is an inclusive range of one field.
type span struct{ lo, hi uint32 }

// box is one element: address, protocol, word 0, word 1.
type box [4]span

var fieldMax = [4]uint32{1<<32 - 1, 255, 65535, 65535}

func anySpan(field int) span { return span{0, fieldMax[field]} }

// ruleBox is the box of one rule; ok is false for a rule that can match no
// IPv4 packet (ICMPv6).
func ruleBox(r network.FirewallRule) (b box, ok bool) {
	lo := u32(r.Peer.Masked().Addr())
	b[0] = span{lo, lo | (1<<(32-r.Peer.Bits()) - 1)}
	b[1], b[2], b[3] = anySpan(1), anySpan(2), anySpan(3)
	if r.Peer.Bits() == 0 {
		b[0] = anySpan(0)
	}
	switch r.Protocol {
	case -1:
	case 58:
		return b, false
	case 6, 17:
		b[1] = span{uint32(r.Protocol), uint32(r.Protocol)}
		b[3] = span{uint32(r.FromPort), uint32(r.ToPort)}
	case 1:
		b[1] = span{1, 1}
		switch {
		case r.FromPort == -1: // any type
		case r.ToPort == -1: // one type, any code
			t := uint32(r.FromPort) << 8
			b[2] = span{t, t | 255}
		default:
			w := uint32(r.FromPort)<<8 | uint32(r.ToPort)
			b[2] = span{w, w}
		}
	default:
		b[1] = span{uint32(r.Protocol), uint32(r.Protocol)}
	}
	return b, true
}

// disjoint returns boxes that do not overlap and cover exactly the union
// of in, in a canonical order (equal unions give equal results).
func disjoint(in []box) []box { return split(in, 0) }

// split decomposes along field dim, then recursively along the later ones,
// merging neighbouring slices whose decompositions are equal (so adjacent
// /32s of a group's members become one range).
func split(in []box, dim int) []box {
	if len(in) == 0 {
		return nil
	}
	if dim == len(box{}) {
		return []box{{}}
	}
	cuts := make([]uint64, 0, 2*len(in))
	for _, b := range in {
		cuts = append(cuts, uint64(b[dim].lo), uint64(b[dim].hi)+1)
	}
	slices.Sort(cuts)
	cuts = slices.Compact(cuts)
	order := slices.Clone(in)
	slices.SortFunc(order, func(a, b box) int { return int(int64(a[dim].lo) - int64(b[dim].lo)) })

	var out, prevSub []box
	var prev span
	flush := func() {
		for _, s := range prevSub {
			s[dim] = prev
			out = append(out, s)
		}
		prevSub = nil
	}
	var active []box
	next := 0
	for i := 0; i+1 < len(cuts); i++ {
		lo, hi := uint32(cuts[i]), uint32(cuts[i+1]-1)
		// Every box either covers [lo, hi] entirely or misses it.
		for next < len(order) && order[next][dim].lo <= lo {
			active = append(active, order[next])
			next++
		}
		active = slices.DeleteFunc(active, func(b box) bool { return b[dim].hi < lo })
		sub := split(active, dim+1)
		switch {
		case len(sub) == 0:
			flush()
		case prevSub != nil && prev.hi+1 == lo && slices.Equal(sub, prevSub):
			prev.hi = hi
		default:
			flush()
			prev, prevSub = span{lo, hi}, sub
		}
	}
	flush()
	return out
}

// elementKey renders a box as nft element fields.
func elementKey(b box) []string {
	k := make([]string, len(b))
	k[0] = addrSpan(b[0])
	for i := 1; i < len(b); i++ {
		if b[i].lo == b[i].hi {
			k[i] = strconv.FormatUint(uint64(b[i].lo), 10)
		} else {
			k[i] = fmt.Sprintf("%d-%d", b[i].lo, b[i].hi)
		}
	}
	return k
}

// addrSpan is an address, a prefix, or a range.
func addrSpan(s span) string {
	lo, hi := a4(s.lo), a4(s.hi)
	if s.lo == s.hi {
		return lo.String()
	}
	size := uint64(s.hi) - uint64(s.lo) + 1
	if size&(size-1) == 0 && uint64(s.lo)%size == 0 {
		bits := 32
		for n := size; n > 1; n >>= 1 {
			bits--
		}
		return netip.PrefixFrom(lo, bits).String()
	}
	return lo.String() + "-" + hi.String()
}

func u32(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func a4(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}
