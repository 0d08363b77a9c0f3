package linux_test

import (
	"context"
	"testing"

	"nubo/internal/network/linux"
	"nubo/internal/network/networktest"
)

func TestConformance(t *testing.T) {
	networktest.RequireRoot(t)
	networktest.Run(t, func(t *testing.T) networktest.Harness {
		cfg, err := linux.EphemeralConfig()
		if err != nil {
			t.Fatal(err)
		}
		d, err := linux.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := d.Teardown(context.Background()); err != nil {
				t.Errorf("cleanup: Teardown: %v", err)
			}
		})
		return networktest.Harness{Driver: d, PublicRange: d.Config().PublicRange, Traffic: true}
	})
}
