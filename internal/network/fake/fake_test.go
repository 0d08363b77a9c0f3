package fake_test

import (
	"context"
	"errors"
	"net/netip"
	"testing"

	"nubo/internal/network"
	"nubo/internal/network/fake"
	"nubo/internal/network/networktest"
)

func TestConformance(t *testing.T) {
	networktest.Run(t, func(t *testing.T) networktest.Harness {
		r := netip.MustParsePrefix("198.19.7.0/24")
		return networktest.Harness{Driver: fake.New(fake.Config{PublicRange: r}), PublicRange: r}
	})
}

func TestFail(t *testing.T) {
	d := fake.New(fake.Config{})
	boom := errors.New("boom")
	d.Fail(fake.OpEnsureHost, boom)
	if err := d.EnsureHost(context.Background()); !errors.Is(err, boom) {
		t.Fatalf("EnsureHost = %v, want boom", err)
	}
	d.Fail(fake.OpEnsureHost, nil)
	if err := d.EnsureHost(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := d.Calls(fake.OpEnsureHost); n != 2 {
		t.Errorf("Calls = %d, want 2", n)
	}
	var _ network.Driver = d
}
