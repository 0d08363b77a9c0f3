package daemon

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"time"

	"nubo/internal/imds"
	"nubo/internal/store"
)

// IdentityCert returns the PEM certificate that region's instance identity
// documents are signed with (made now if no server has made it yet). The
// store is etcd at endpoints, else the data dir's embedded etcd: reached
// through the running server's socket, or started for the moment when no
// server runs.
func IdentityCert(ctx context.Context, dataDir string, endpoints []string, region string) ([]byte, error) {
	st, closeStore, err := openStore(ctx, dataDir, endpoints)
	if err != nil {
		return nil, err
	}
	defer closeStore()
	id, err := imds.LoadIdentity(ctx, st, region)
	if err != nil {
		return nil, err
	}
	return id.CertPEM, nil
}

func openStore(ctx context.Context, dataDir string, endpoints []string) (*store.Store, func(), error) {
	if len(endpoints) > 0 {
		st, err := store.Connect(ctx, endpoints)
		if err != nil {
			return nil, nil, err
		}
		return st, func() { st.Close() }, nil
	}
	dir := filepath.Join(dataDir, "etcd")
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("no nubo server has run with data dir %s (there is no %s)", dataDir, dir)
	} else if err != nil {
		return nil, nil, err
	}
	sock := filepath.Join(dir, "client.sock")
	if c, err := net.DialTimeout("unix", sock, time.Second); err == nil { // a server is running
		c.Close()
		st, err := store.Connect(ctx, []string{"unix://" + sock})
		if err != nil {
			return nil, nil, err
		}
		return st, func() { st.Close() }, nil
	}
	emb, err := store.StartEmbedded(ctx, dir)
	if err != nil {
		return nil, nil, err
	}
	st, err := store.Connect(ctx, []string{emb.Endpoint})
	if err != nil {
		emb.Close()
		return nil, nil, err
	}
	return st, func() { st.Close(); emb.Close() }, nil
}
