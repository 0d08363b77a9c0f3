package store

import "go.uber.org/zap"

// nopLogger silences the etcd client's zap logging; nubo logs with slog.
func nopLogger() *zap.Logger { return zap.NewNop() }
