package linux

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"

	"github.com/vishvananda/netlink"
	"sigs.k8s.io/knftables"

	"nubo/internal/network/netns"
)

// Egress beyond the machine (Config.Egress, off by default) is the one
// place nubo changes the host's forwarding: with it, the gateway routes
// everything that is not a public IP to the host, and the host masquerades
// the public range out of any link but nubo's and forwards IPv4:
//
//	gateway:  default via HostIP dev host0 onlink
//	host:     net.ipv4.ip_forward = 1
//	          table ip nubo-egress-<prefix> { postrouting: ip saddr
//	          <PublicRange> oifname != <HostLink> masquerade }
//
// Only instances with a public IP in a public subnet get out, as their
// security groups' egress rules allow (the VPC router's checks). The VPC
// resolvers then ask the host's DNS servers for names beyond the VPC. The
// table's comment records ip_forward as it was; Teardown (or EnsureHost
// with egress off) puts it back unless another nubo's egress table still
// needs it. A host firewall that drops forwarded packets is left alone:
// the operator opens it.

const ipForward = "net/ipv4/ip_forward"

func (d *Driver) egressTable() string { return "nubo-egress-" + d.cfg.Prefix }

// ensureEgress sets or removes the gateway's default route and the host's
// masquerade table as Config.Egress says.
func (d *Driver) ensureEgress(ctx context.Context, gh *netlink.Handle, peer netlink.Link) error {
	if !d.cfg.Egress {
		if err := deleteRoutes(gh, netip.PrefixFrom(netip.IPv4Unspecified(), 0)); err != nil {
			return fmt.Errorf("gateway namespace: %w", err)
		}
		return d.removeEgress(ctx)
	}
	nft, err := knftables.New(knftables.IPv4Family, d.egressTable())
	if err != nil {
		return fmt.Errorf("nftables (Debian package nftables): %w", err)
	}
	was, err := d.egressWas(ctx)
	if err != nil {
		return err
	}
	if was == "" {
		if was, err = readSysctl(ipForward); err != nil {
			return err
		}
	}
	tx := nft.NewTransaction()
	tx.Add(&knftables.Table{Comment: knftables.PtrTo("nubo egress; ip_forward was " + was)})
	t, h, p := knftables.NATType, knftables.PostroutingHook, knftables.SNATPriority
	tx.Add(&knftables.Chain{Name: "postrouting", Type: &t, Hook: &h, Priority: &p})
	tx.Flush(&knftables.Chain{Name: "postrouting"})
	tx.Add(&knftables.Rule{Chain: "postrouting", Rule: knftables.Concat(
		"ip saddr", d.cfg.PublicRange.String(), "oifname !=", `"`+d.cfg.HostLink+`"`, "masquerade")})
	if err := nft.Run(ctx, tx); err != nil {
		return fmt.Errorf("host egress table: %w", err)
	}
	if err := netns.WriteSysctls(netns.Sysctl{Key: ipForward, Value: "1"}); err != nil {
		return err
	}
	return ensureRoute(gh, netlink.Route{LinkIndex: peer.Attrs().Index, Gw: d.public.HostIP().AsSlice(), Flags: int(netlink.FLAG_ONLINK)})
}

// egressWas reads ip_forward's earlier value from the table's comment; ""
// when there is no table.
func (d *Driver) egressWas(ctx context.Context) (string, error) {
	tables, err := d.egressTables(ctx)
	if err != nil {
		return "", err
	}
	for name, comment := range tables {
		if name == d.egressTable() {
			_, was, _ := strings.Cut(comment, "ip_forward was ")
			return strings.TrimSpace(was), nil
		}
	}
	return "", nil
}

// egressTables lists every nubo egress table on the host (any prefix) with
// its comment.
func (d *Driver) egressTables(ctx context.Context) (map[string]string, error) {
	// knftables lists the objects of its own table only: tables, and
	// their comments, are read with nft itself.
	out := map[string]string{}
	b, err := runNFT(ctx, "list", "tables", "ip")
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(b, "\n") {
		name, ok := strings.CutPrefix(strings.TrimSpace(line), "table ip ")
		if !ok || !strings.HasPrefix(name, "nubo-egress-") {
			continue
		}
		c, err := runNFT(ctx, "list", "table", "ip", name)
		if err != nil {
			return nil, err
		}
		_, comment, _ := strings.Cut(c, `comment "`)
		comment, _, _ = strings.Cut(comment, `"`)
		out[name] = comment
	}
	return out, nil
}

// removeEgress deletes this driver's egress table and puts ip_forward back
// as it was, unless another nubo's egress table remains.
func (d *Driver) removeEgress(ctx context.Context) error {
	tables, err := d.egressTables(ctx)
	if err != nil {
		return err
	}
	comment, ok := tables[d.egressTable()]
	if !ok {
		return nil
	}
	if _, err := runNFT(ctx, "delete", "table", "ip", d.egressTable()); err != nil {
		return err
	}
	_, was, _ := strings.Cut(comment, "ip_forward was ")
	if was = strings.TrimSpace(was); was == "" || len(tables) > 1 {
		return nil
	}
	return netns.WriteSysctls(netns.Sysctl{Key: ipForward, Value: was})
}

// runNFT runs nft in this process's network namespace (the host's).
func runNFT(ctx context.Context, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, "nft", args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("nft %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

func readSysctl(key string) (string, error) {
	b, err := os.ReadFile("/proc/sys/" + key)
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", key, err)
	}
	return strings.TrimSpace(string(b)), nil
}
