package eic

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"nubo/internal/store"
)

// KeyLifetime is how long a pushed key can be used, as in AWS.
const KeyLifetime = 60 * time.Second

// leaseTTL outlives KeyLifetime so that a key is never gone from the store
// while its expiry (which readers check) is still ahead; the lease only
// cleans up.
const leaseTTL = KeyLifetime + 10*time.Second

// Record is the stored value of one pushed key, at
// Prefix(account, region, instance, user) + <random id>.
type Record struct {
	PublicKey string `json:"publicKey"` // one authorized_keys line
	Expires   string `json:"expires"`   // RFC 3339, UTC
}

// Prefix is where the keys pushed for one user of one instance live.
func Prefix(account, region, instanceID, user string) string {
	return store.Root + "eic/" + account + "/" + region + "/" + instanceID + "/" + user + "/"
}

// putKey stores key for KeyLifetime from now, on a lease that deletes it soon
// after it expires.
func putKey(ctx context.Context, st *store.Store, account, region, instanceID, user, key string, now time.Time) error {
	var id [8]byte
	_, _ = rand.Read(id[:])
	k := Prefix(account, region, instanceID, user) + hex.EncodeToString(id[:])
	// Rounded up to the second so the key lives at least KeyLifetime.
	expires := now.Add(KeyLifetime + time.Second - 1).Truncate(time.Second)
	b, err := json.Marshal(Record{PublicKey: key, Expires: expires.UTC().Format(time.RFC3339)})
	if err != nil {
		return fmt.Errorf("encoding %s: %w", k, err)
	}
	cli := st.Client()
	lease, err := cli.Grant(ctx, int64(leaseTTL/time.Second))
	if err != nil {
		return fmt.Errorf("granting a lease for %s: %w", k, err)
	}
	if _, err := cli.Put(ctx, k, string(b), clientv3.WithLease(lease.ID)); err != nil {
		_, _ = cli.Revoke(context.WithoutCancel(ctx), lease.ID)
		return fmt.Errorf("writing %s: %w", k, err)
	}
	return nil
}

// ActiveKeys returns the keys pushed for user on the instance that have not
// expired at now, oldest first, each once.
func ActiveKeys(ctx context.Context, st *store.Store, account, region, instanceID, user string, now time.Time) ([]string, error) {
	if !validUser(user) {
		return nil, nil // nobody could have pushed a key for it
	}
	kvs, err := st.List(ctx, Prefix(account, region, instanceID, user))
	if err != nil {
		return nil, err
	}
	type active struct {
		key     string
		expires time.Time
	}
	var keys []active
	for _, kv := range kvs {
		var r Record
		if err := json.Unmarshal(kv.Value, &r); err != nil {
			return nil, fmt.Errorf("decoding %s: %w", kv.Key, err)
		}
		exp, err := time.Parse(time.RFC3339, r.Expires)
		if err != nil {
			return nil, fmt.Errorf("decoding %s: expires: %w", kv.Key, err)
		}
		if now.Before(exp) {
			keys = append(keys, active{r.PublicKey, exp})
		}
	}
	slices.SortStableFunc(keys, func(a, b active) int { return a.expires.Compare(b.expires) })
	var out []string
	for _, k := range keys {
		if !slices.Contains(out, k.key) {
			out = append(out, k.key)
		}
	}
	return out, nil
}
