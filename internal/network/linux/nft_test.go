package linux

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"sigs.k8s.io/knftables"
)

const wantRuleset = `add table ip nubo { comment "nubo VPC router vpc-1" ; }
add chain ip nubo egress
add chain ip nubo forward { type filter hook forward priority 0 ; policy drop ; }
add chain ip nubo fw_check_done
add chain ip nubo fw_checked
add chain ip nubo ingress
add chain ip nubo input { type filter hook input priority 0 ; policy accept ; }
add chain ip nubo postrouting { type filter hook postrouting priority 100 ; policy accept ; }
add chain ip nubo prerouting { type filter hook prerouting priority -300 ; policy accept ; }
add chain ip nubo refuse { type filter hook prerouting priority 0 ; policy accept ; }
add set ip nubo natted { type ipv4_addr ; }
add set ip nubo public_subnets { type ipv4_addr ; flags interval ; }
add set ip nubo subnets { type ipv4_addr ; flags interval ; }
add map ip nubo in_ports { type ifname : verdict ; }
add map ip nubo out_ports { type ifname : verdict ; }
add map ip nubo to_private { type ipv4_addr : ipv4_addr ; }
add map ip nubo to_public { type ipv4_addr : ipv4_addr ; }
add rule ip nubo egress iifname vmap @out_ports
add rule ip nubo egress drop
add rule ip nubo forward jump fw_checked
add rule ip nubo forward oifname "gw0" ip saddr != @public_subnets drop
add rule ip nubo forward oifname "gw0" ip saddr != @natted drop
add rule ip nubo forward iifname "gw0" ip daddr != @public_subnets drop
add rule ip nubo forward iifname "gw0" ip daddr != @natted drop
add rule ip nubo forward ct direction reply accept
add rule ip nubo forward ct state related accept
add rule ip nubo forward iifname != "gw0" jump egress
add rule ip nubo forward oifname != "gw0" jump ingress
add rule ip nubo forward jump fw_check_done
add rule ip nubo forward accept
add rule ip nubo ingress oifname vmap @in_ports
add rule ip nubo ingress drop
add rule ip nubo input iifname "gw0" drop
add rule ip nubo postrouting oifname "gw0" ip saddr set ip saddr map @to_public
add rule ip nubo prerouting iifname "gw0" ip daddr set ip daddr map @to_private
add rule ip nubo refuse tcp flags & (syn | ack) == syn fib daddr type != local fib daddr oif missing reject with tcp reset
`

// The router's ruleset, and that applying it again replaces the rules but
// keeps the elements (subnets, public IPs).
func TestRouterRuleset(t *testing.T) {
	ctx := context.Background()
	fake := knftables.NewFake(knftables.IPv4Family, nftTable)
	apply := func() {
		t.Helper()
		tx := fake.NewTransaction()
		routerRuleset(tx, "vpc-1")
		if err := fake.Run(ctx, tx); err != nil {
			t.Fatal(err)
		}
	}
	apply()
	if got := fake.Dump(); got != wantRuleset {
		t.Errorf("ruleset:\n%s\nwant:\n%s", got, wantRuleset)
	}
	tx := fake.NewTransaction()
	for _, e := range natElems(netip.MustParseAddr("198.18.0.9"), netip.MustParseAddr("10.0.1.5")) {
		tx.Add(e)
	}
	if err := fake.Run(ctx, tx); err != nil {
		t.Fatal(err)
	}
	apply()
	got := fake.Dump()
	for _, want := range []string{
		"add element ip nubo natted { 10.0.1.5 }",
		"add element ip nubo to_private { 198.18.0.9 : 10.0.1.5 }",
		"add element ip nubo to_public { 10.0.1.5 : 198.18.0.9 }",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("after applying the ruleset again, missing %q in\n%s", want, got)
		}
	}
	if n := strings.Count(got, "add rule"); n != 19 {
		t.Errorf("%d rules after applying twice, want 19", n)
	}
}
