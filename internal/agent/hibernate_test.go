package agent

import (
	"context"
	"strings"
	"testing"

	"nubo/internal/instance"
	"nubo/internal/store"
)

// TestHibernateFailureShutsDown: when the instance's memory cannot be
// saved, it is shut down normally instead, Hibernate is cleared (its next
// start boots) and the reason says so: never left half-hibernated.
func TestHibernateFailureShutsDown(t *testing.T) {
	v := newEnv(t, 64)
	ctx := context.Background()
	id := v.run(t, instance.RunSpec{})[0]
	v.wait(t, id, instance.Running)
	// As StopInstances Hibernate=true records it. The fake environment's
	// root volume is no block volume: there is nowhere to save to.
	if _, err := store.Update(ctx, v.st, instance.Key(account, "us-east-1", id), func(in *instance.Instance) error {
		in.Hibernation, in.Hibernate = true, true
		in.Desired, in.State, in.StateReason = instance.Stopped, instance.Stopping, instance.ReasonUserHibernate
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	in := v.wait(t, id, instance.Stopped)
	if in.Hibernate {
		t.Fatal("Hibernate still set after a failed hibernation: the next start would try to resume")
	}
	if in.StateReason == nil || in.StateReason.Code != instance.ReasonUserStop.Code || !strings.Contains(in.StateReason.Message, "hibernation failed") {
		t.Fatalf("reason %+v, want a shutdown that says the hibernation failed", in.StateReason)
	}
	if _, err := v.rt.State(ctx, id); err == nil {
		t.Fatal("the instance still exists in the runtime")
	}
}
