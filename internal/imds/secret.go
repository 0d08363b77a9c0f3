package imds

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"

	"nubo/internal/store"
)

// SecretKey is where the deployment's token secret lives: every server
// signs and checks IMDSv2 tokens with it, so tokens outlive a restart.
const SecretKey = store.Root + "imds/token-secret"

// LoadSecret reads the token secret, making it on first use (racing
// servers agree on the first one stored).
func LoadSecret(ctx context.Context, st *store.Store) ([]byte, error) {
	var secret []byte // JSON: base64
	_, err := st.Get(ctx, SecretKey, &secret)
	if errors.Is(err, store.ErrNotFound) {
		secret = make([]byte, 32)
		_, _ = rand.Read(secret)
		err = st.Create(ctx, map[string]any{SecretKey: secret})
		if errors.Is(err, store.ErrExists) {
			_, err = st.Get(ctx, SecretKey, &secret)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("metadata token secret: %w", err)
	}
	if len(secret) < 16 {
		return nil, fmt.Errorf("metadata token secret at %s: %d bytes, too short", SecretKey, len(secret))
	}
	return secret, nil
}
