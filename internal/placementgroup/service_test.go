package placementgroup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"nubo/internal/apierr"
	"nubo/internal/resource"
	"nubo/internal/scheduler"
	"nubo/internal/store"
	"nubo/internal/store/storetest"
)

const acct = "123456789012"

func newService(t *testing.T) (*Service, context.Context) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return &Service{Store: storetest.New(t), Region: "us-east-1"}, ctx
}

func intp(n int) *int { return &n }

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	e, ok := apierr.As(err)
	if !ok || e.Code != code {
		t.Fatalf("error %v, want code %s", err, code)
	}
}

func TestPlacementGroupCreateDefaults(t *testing.T) {
	s, ctx := newService(t)
	for _, tc := range []struct {
		spec       Spec
		partitions int
		level      string
	}{
		{Spec{Name: "c", Strategy: scheduler.Cluster}, 0, ""},
		{Spec{Name: "s", Strategy: scheduler.Spread}, 0, scheduler.LevelRack},
		{Spec{Name: "sh", Strategy: scheduler.Spread, SpreadLevel: scheduler.LevelHost}, 0, scheduler.LevelHost},
		{Spec{Name: "p", Strategy: scheduler.Partition}, DefaultPartitions, ""},
		{Spec{Name: "p7", Strategy: scheduler.Partition, PartitionCount: intp(7)}, 7, ""},
	} {
		g, err := s.Create(ctx, acct, tc.spec)
		if err != nil {
			t.Fatalf("%s: %v", tc.spec.Name, err)
		}
		if !resource.ValidID(Kind, g.ID) || g.State != Available || g.PartitionCount != tc.partitions || g.SpreadLevel != tc.level {
			t.Errorf("%s: got %+v", tc.spec.Name, g)
		}
		if want := "arn:aws:ec2:us-east-1:" + acct + ":placement-group/" + tc.spec.Name; g.ARN() != want {
			t.Errorf("ARN %s, want %s", g.ARN(), want)
		}
		want := scheduler.Group{ID: g.ID, Name: g.Name, Strategy: g.Strategy, PartitionCount: tc.partitions, SpreadLevel: tc.level}
		if got := *g.Scheduling(); got != want {
			t.Errorf("Scheduling %+v, want %+v", got, want)
		}
		stored, err := s.Get(ctx, acct, g.ID)
		if err != nil || stored.Name != g.Name || !stored.CreateTime.Equal(g.CreateTime) {
			t.Errorf("Get %s: %+v, %v", g.ID, stored, err)
		}
	}
}

func TestPlacementGroupCreateValidation(t *testing.T) {
	s, ctx := newService(t)
	for _, tc := range []struct {
		name string
		spec Spec
		code string
	}{
		{"no name", Spec{Strategy: scheduler.Cluster}, apierr.MissingParameter},
		{"long name", Spec{Name: strings.Repeat("a", 256), Strategy: scheduler.Cluster}, apierr.InvalidParameterValue},
		{"non-ASCII name", Spec{Name: "grüppe", Strategy: scheduler.Cluster}, apierr.InvalidParameterValue},
		{"no strategy", Spec{Name: "x"}, apierr.MissingParameter},
		{"bad strategy", Spec{Name: "x", Strategy: "clump"}, apierr.InvalidParameterValue},
		{"partitions on cluster", Spec{Name: "x", Strategy: scheduler.Cluster, PartitionCount: intp(2)}, apierr.InvalidParameterCombination},
		{"partitions on spread", Spec{Name: "x", Strategy: scheduler.Spread, PartitionCount: intp(2)}, apierr.InvalidParameterCombination},
		{"zero partitions", Spec{Name: "x", Strategy: scheduler.Partition, PartitionCount: intp(0)}, apierr.InvalidParameterValue},
		{"eight partitions", Spec{Name: "x", Strategy: scheduler.Partition, PartitionCount: intp(8)}, apierr.InvalidParameterValue},
		{"level on cluster", Spec{Name: "x", Strategy: scheduler.Cluster, SpreadLevel: scheduler.LevelRack}, apierr.InvalidParameterCombination},
		{"level on partition", Spec{Name: "x", Strategy: scheduler.Partition, SpreadLevel: scheduler.LevelHost}, apierr.InvalidParameterCombination},
		{"bad level", Spec{Name: "x", Strategy: scheduler.Spread, SpreadLevel: "room"}, apierr.InvalidParameterValue},
		{"reserved tag", Spec{Name: "x", Strategy: scheduler.Spread, Tags: []resource.Tag{{Key: "aws:x"}}}, apierr.InvalidParameterValue},
	} {
		_, err := s.Create(ctx, acct, tc.spec)
		e, ok := apierr.As(err)
		if !ok || e.Code != tc.code {
			t.Errorf("%s: %v, want %s", tc.name, err, tc.code)
		}
	}
	if _, err := s.Create(ctx, acct, Spec{Name: strings.Repeat("a", 255), Strategy: scheduler.Cluster}); err != nil {
		t.Errorf("255-character name: %v", err)
	}
	if gs, _ := s.List(ctx, acct); len(gs) != 1 {
		t.Errorf("%d groups stored, want only the valid one", len(gs))
	}
}

func TestPlacementGroupCreateDuplicate(t *testing.T) {
	s, ctx := newService(t)
	if _, err := s.Create(ctx, acct, Spec{Name: "web", Strategy: scheduler.Cluster}); err != nil {
		t.Fatal(err)
	}
	_, err := s.Create(ctx, acct, Spec{Name: "web", Strategy: scheduler.Spread})
	wantCode(t, err, CodeDuplicate)
	if e, _ := apierr.As(err); e.Message != "The placement group 'web' already exists." {
		t.Errorf("message %q", e.Message)
	}
	// Names are per account and per region.
	if _, err := s.Create(ctx, "210987654321", Spec{Name: "web", Strategy: scheduler.Cluster}); err != nil {
		t.Errorf("same name, other account: %v", err)
	}
	west := &Service{Store: s.Store, Region: "us-west-2"}
	if _, err := west.Create(ctx, acct, Spec{Name: "web", Strategy: scheduler.Cluster}); err != nil {
		t.Errorf("same name, other region: %v", err)
	}
}

func TestPlacementGroupCreateTags(t *testing.T) {
	s, ctx := newService(t)
	g, err := s.Create(ctx, acct, Spec{Name: "t", Strategy: scheduler.Cluster, Tags: []resource.Tag{{Key: "env", Value: "prod"}}})
	if err != nil {
		t.Fatal(err)
	}
	if g.Tags["env"] != "prod" {
		t.Errorf("tags %v", g.Tags)
	}
	// CreateTags and DescribeTags reach pg- IDs.
	tg := resource.Tagger{Store: s.Store}
	sc := resource.Scope{Account: acct, Region: "us-east-1"}
	if err := tg.Create(ctx, sc, []string{g.ID}, []resource.Tag{{Key: "team", Value: "a"}}); err != nil {
		t.Fatal(err)
	}
	all, err := tg.List(ctx, sc)
	if err != nil || len(all) != 2 || all[0].ResourceType != "placement-group" || all[1].Key != "team" {
		t.Errorf("DescribeTags: %+v, %v", all, err)
	}
	if g, _ = s.Get(ctx, acct, g.ID); g.Tags["team"] != "a" || g.Name != "t" {
		t.Errorf("after CreateTags: %+v", g)
	}
	err = tg.Create(ctx, sc, []string{"pg-0123456789abcdef0"}, []resource.Tag{{Key: "k"}})
	wantCode(t, err, CodeUnknown)
}

func TestPlacementGroupLimit(t *testing.T) {
	s, ctx := newService(t)
	sc := s.scope(acct)
	// Fill the quota but for two, then race five creates for them.
	for i := 0; i < MaxPerRegion-2; i++ {
		g := Group{Meta: resource.Meta{ID: resource.NewID(Kind)}, Name: fmt.Sprint("fill", i), Strategy: scheduler.Cluster}
		b, _ := json.Marshal(g)
		if _, err := s.Store.Client().Put(ctx, Key(sc, g.ID), string(b)); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, 5)
	for i := range errs {
		wg.Go(func() {
			_, errs[i] = s.Create(ctx, acct, Spec{Name: fmt.Sprint("race", i), Strategy: scheduler.Cluster})
		})
	}
	wg.Wait()
	made := 0
	for _, err := range errs {
		if err == nil {
			made++
			continue
		}
		wantCode(t, err, CodeLimitExceeded)
	}
	if made != 2 {
		t.Errorf("%d creates succeeded, want 2", made)
	}
	// Another account has its own quota.
	if _, err := s.Create(ctx, "210987654321", Spec{Name: "x", Strategy: scheduler.Cluster}); err != nil {
		t.Error(err)
	}
}

func TestPlacementGroupLookups(t *testing.T) {
	s, ctx := newService(t)
	g, err := s.Create(ctx, acct, Spec{Name: "db", Strategy: scheduler.Partition, PartitionCount: intp(3)})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.ByName(ctx, acct, "db"); err != nil || got.ID != g.ID {
		t.Errorf("ByName: %+v, %v", got, err)
	}
	got, rev, err := s.Resolve(ctx, acct, "", g.ID)
	if err != nil || got.Name != "db" {
		t.Fatalf("Resolve: %+v, %v", got, err)
	}
	var raw Group
	if stored, _ := s.Store.Get(ctx, Key(s.scope(acct), g.ID), &raw); stored != rev {
		t.Errorf("Resolve revision %d, stored %d", rev, stored)
	}
	_, err = s.ByName(ctx, acct, "nope")
	wantCode(t, err, CodeUnknown)
	if e, _ := apierr.As(err); e.Message != "The Placement Group 'nope' is unknown." {
		t.Errorf("message %q", e.Message)
	}
	_, err = s.Get(ctx, acct, "pg-0123456789abcdef0")
	wantCode(t, err, CodeUnknown)
	_, err = s.Get(ctx, acct, "pg-nothex")
	wantCode(t, err, CodeMalformed)
	_, err = s.Get(ctx, "210987654321", g.ID)
	wantCode(t, err, CodeUnknown)
	_, _, err = s.Resolve(ctx, acct, "db", g.ID)
	wantCode(t, err, apierr.InvalidParameterCombination)
	_, _, err = s.Resolve(ctx, acct, "", "")
	wantCode(t, err, apierr.MissingParameter)
}

func TestPlacementGroupList(t *testing.T) {
	s, ctx := newService(t)
	for _, n := range []string{"a", "b", "c"} {
		if _, err := s.Create(ctx, acct, Spec{Name: n, Strategy: scheduler.Cluster}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Create(ctx, "210987654321", Spec{Name: "other", Strategy: scheduler.Cluster}); err != nil {
		t.Fatal(err)
	}
	gs, err := s.List(ctx, acct)
	if err != nil || len(gs) != 3 {
		t.Fatalf("List: %d groups, %v", len(gs), err)
	}
	for i := 1; i < len(gs); i++ {
		if gs[i-1].ID >= gs[i].ID {
			t.Errorf("not ordered by ID: %s, %s", gs[i-1].ID, gs[i].ID)
		}
	}
}

func TestPlacementGroupDelete(t *testing.T) {
	s, ctx := newService(t)
	busy := map[string]bool{}
	s.InUse = func(_ context.Context, account, id string) (bool, error) { return busy[id], nil }
	a, _ := s.Create(ctx, acct, Spec{Name: "a", Strategy: scheduler.Cluster})
	b, _ := s.Create(ctx, acct, Spec{Name: "b", Strategy: scheduler.Spread})

	busy[a.ID] = true
	err := s.Delete(ctx, acct, "a", "")
	wantCode(t, err, CodeInUse)
	if e, _ := apierr.As(err); e.Message != "The placement group 'a' is in use and may not be deleted." {
		t.Errorf("message %q", e.Message)
	}
	if _, err := s.Get(ctx, acct, a.ID); err != nil {
		t.Errorf("in-use group gone: %v", err)
	}
	busy[a.ID] = false
	if err := s.Delete(ctx, acct, "a", ""); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, acct, "", b.ID); err != nil {
		t.Fatal(err)
	}
	wantCode(t, s.Delete(ctx, acct, "a", ""), CodeUnknown)
	wantCode(t, s.Delete(ctx, acct, "", b.ID), CodeUnknown)
	if gs, _ := s.List(ctx, acct); len(gs) != 0 {
		t.Errorf("left: %+v", gs)
	}
	// The name is free again.
	if _, err := s.Create(ctx, acct, Spec{Name: "a", Strategy: scheduler.Cluster}); err != nil {
		t.Errorf("re-create: %v", err)
	}

	s.InUse = func(context.Context, string, string) (bool, error) { return false, errors.New("store down") }
	if err := s.Delete(ctx, acct, "a", ""); err == nil || !strings.Contains(err.Error(), "store down") {
		t.Errorf("InUse failing: %v", err)
	}
}

// A launch that puts the record back between Delete's look and its write
// makes Delete ask InUse again, and see the new member.
func TestPlacementGroupDeleteRacesLaunch(t *testing.T) {
	for _, memberAfter := range []bool{true, false} {
		t.Run(fmt.Sprint("member=", memberAfter), func(t *testing.T) {
			s, ctx := newService(t)
			g, _ := s.Create(ctx, acct, Spec{Name: "g", Strategy: scheduler.Cluster})
			calls := 0
			s.InUse = func(ctx context.Context, _, id string) (bool, error) {
				calls++
				if calls == 1 {
					// The launch: the record rewritten unchanged under its revision.
					got, rev, err := s.Resolve(ctx, acct, "", id)
					if err != nil {
						return false, err
					}
					return false, s.Store.Apply(ctx, store.Op{Key: Key(s.scope(acct), id), Value: got, ModRev: rev})
				}
				return memberAfter, nil
			}
			err := s.Delete(ctx, acct, "g", "")
			if calls != 2 {
				t.Errorf("InUse asked %d times, want 2", calls)
			}
			if memberAfter {
				wantCode(t, err, CodeInUse)
				if _, err := s.Get(ctx, acct, g.ID); err != nil {
					t.Errorf("group gone: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			_, err = s.ByName(ctx, acct, "g")
			wantCode(t, err, CodeUnknown)
		})
	}
}
