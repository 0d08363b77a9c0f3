package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"nubo/internal/daemon"
	"nubo/internal/topology"
)

// topologyCmd is `nubo topology`: print the topology, or fail or repair
// hosts (nubo topology fail --rack us-east-1a/r03).
func topologyCmd(args []string) error {
	verb := ""
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		verb, args = args[0], args[1:]
	}
	if verb != "" && verb != "fail" && verb != "repair" {
		return fmt.Errorf("topology: unknown command %q (want fail or repair)", verb)
	}
	fl := flag.NewFlagSet("topology", flag.ExitOnError)
	dataDir := fl.String("data-dir", defaultDataDir, "the data dir of the nubo server")
	etcd := fl.String("etcd-endpoints", "", "comma-separated etcd endpoints; empty: the data dir's embedded etcd")
	host := fl.String("host", "", "fail/repair: one host, by ID (h-...)")
	rack := fl.String("rack", "", "fail/repair: every host of a rack, as ZONE/RACK (us-east-1a/r03)")
	zone := fl.String("zone", "", "fail/repair: every host of a zone")
	reason := fl.String("reason", "", "fail: why, shown in the instances' StateReason")
	_ = fl.Parse(args)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if verb == "" {
		return daemon.PrintTopology(ctx, *dataDir, splitList(*etcd), os.Stdout)
	}
	sel := topology.Selector{Host: *host, Zone: *zone}
	if *rack != "" {
		z, r, ok := strings.Cut(*rack, "/")
		if !ok || z == "" || r == "" {
			return fmt.Errorf("--rack %q: want ZONE/RACK, e.g. us-east-1a/r03", *rack)
		}
		sel.Zone, sel.Rack = z, r
	}
	if n := btoi(*host != "") + btoi(*rack != "") + btoi(*zone != "" && *rack == ""); n != 1 {
		return fmt.Errorf("topology %s: give exactly one of --host, --rack, --zone", verb)
	}
	hosts, stopped, err := daemon.FailHosts(ctx, *dataDir, splitList(*etcd), sel, *reason, verb == "repair")
	done := "failed"
	if verb == "repair" {
		done = "repaired"
	}
	for _, h := range hosts {
		fmt.Printf("%s %s/%s/%s\n", done, h.Zone, h.Rack, h.ID)
	}
	for _, id := range stopped {
		fmt.Printf("stopped %s\n", id)
	}
	return err
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
