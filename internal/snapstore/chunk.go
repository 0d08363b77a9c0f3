package snapstore

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
)

// Addr is a chunk's address: SHA-256 of its plaintext in an unencrypted
// lineage, HMAC-SHA-256 under the lineage's key in an encrypted one.
type Addr [32]byte

func (a Addr) String() string { return hex.EncodeToString(a[:]) }

// MarshalText writes the address in hex, as manifests hold it.
func (a Addr) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// UnmarshalText reads a hex address.
func (a *Addr) UnmarshalText(b []byte) error {
	if len(b) != 2*len(a) {
		return fmt.Errorf("chunk address %q: %w", b, ErrInvalid)
	}
	_, err := hex.Decode(a[:], b)
	return err
}

// A chunk file is one format byte, then the chunk: as it is (plain), or
// sealed with AES-256-GCM (its tag last). The nonce is the address's first
// 12 bytes and the address is the additional data: the ciphertext is a
// function of the plaintext (as the address is already), and a chunk put
// under another address fails to open.
const (
	formatPlain  = 'P'
	formatSealed = 'G'
	gcmOverhead  = 16
)

// sealer addresses, seals and opens the chunks of one lineage. Not safe
// for concurrent use (its HMAC): one per worker.
type sealer struct {
	aead cipher.AEAD // nil: unencrypted
	mac  hash.Hash
}

func newSealer(key []byte) (*sealer, error) {
	if key == nil {
		return &sealer{mac: sha256.New()}, nil
	}
	if len(key) != KeySize {
		return nil, fmt.Errorf("lineage key of %d bytes, want %d: %w", len(key), KeySize, ErrInvalid)
	}
	block, err := aes.NewCipher(key[:32])
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead, mac: hmac.New(sha256.New, key[32:])}, nil
}

func (s *sealer) encrypted() bool { return s.aead != nil }

func (s *sealer) address(p []byte) Addr {
	s.mac.Reset()
	s.mac.Write(p)
	var a Addr
	s.mac.Sum(a[:0])
	return a
}

// fileSize is the size of a chunk file: what dedup checks before trusting
// a chunk that is there already.
func (s *sealer) fileSize() int64 {
	if s.encrypted() {
		return 1 + ChunkSize + gcmOverhead
	}
	return 1 + ChunkSize
}

// seal appends chunk p's file content to dst[:0].
func (s *sealer) seal(dst []byte, a Addr, p []byte) []byte {
	if !s.encrypted() {
		return append(append(dst[:0], formatPlain), p...)
	}
	return s.aead.Seal(append(dst[:0], formatSealed), a[:12], p, a[:])
}

// open returns the chunk a file holds (in dst, ChunkSize bytes), checked
// against its address.
func (s *sealer) open(dst []byte, a Addr, file []byte) error {
	if len(file) == 0 {
		return fmt.Errorf("chunk %s is empty: %w", a, ErrCorrupt)
	}
	switch {
	case file[0] == formatPlain && !s.encrypted():
		if len(file) != 1+ChunkSize {
			return fmt.Errorf("chunk %s: %d bytes: %w", a, len(file), ErrCorrupt)
		}
		if sha256.Sum256(file[1:]) != a {
			return fmt.Errorf("chunk %s does not match its address: %w", a, ErrCorrupt)
		}
		copy(dst, file[1:])
		return nil
	case file[0] == formatSealed && s.encrypted():
		if _, err := s.aead.Open(dst[:0], a[:12], file[1:], a[:]); err != nil {
			return fmt.Errorf("chunk %s does not open with the lineage's key: %w", a, ErrCorrupt)
		}
		return nil
	}
	return fmt.Errorf("chunk %s has format %q, the lineage is encrypted=%v: %w", a, file[0], s.encrypted(), ErrCorrupt)
}

func (s *Store) chunkPath(lineage string, a Addr) string {
	h := a.String()
	return filepath.Join(s.chunkDir(lineage), h[:2], h)
}

// haveChunk reports whether the chunk is stored whole. A file of another
// size is what a crash after its rename but before its data reached the
// disk can leave: it is written again.
func (s *Store) haveChunk(lineage string, a Addr, size int64) bool {
	fi, err := os.Stat(s.chunkPath(lineage, a))
	return err == nil && fi.Size() == size
}

// writeChunk stores a chunk file under a temporary name and renames it to
// its address. No fsync: the caller syncs the filesystem once before a
// manifest names it.
func (s *Store) writeChunk(lineage string, a Addr, data []byte) error {
	path := s.chunkPath(lineage, a)
	dir := filepath.Dir(path)
	var rnd [8]byte
	rand.Read(rnd[:])
	tmp := filepath.Join(dir, ".tmp-"+hex.EncodeToString(rnd[:]))
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if errors.Is(err, fs.ErrNotExist) {
		if err = os.MkdirAll(dir, 0o700); err == nil {
			f, err = os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		}
	}
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing chunk %s: %w", a, err)
	}
	return nil
}

// readChunk reads a chunk file into buf (grown as needed) and returns it.
func (s *Store) readChunk(lineage string, a Addr, buf []byte) ([]byte, error) {
	f, err := os.Open(s.chunkPath(lineage, a))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("chunk %s of lineage %s is missing: %w", a, lineage, ErrCorrupt)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if n := fi.Size(); n > 1+ChunkSize+gcmOverhead {
		return nil, fmt.Errorf("chunk %s: %d bytes: %w", a, n, ErrCorrupt)
	}
	buf = slices.Grow(buf[:0], int(fi.Size()))[:fi.Size()]
	if _, err := io.ReadFull(f, buf); err != nil {
		return nil, fmt.Errorf("reading chunk %s: %w", a, err)
	}
	return buf, nil
}

var zeroChunk = make([]byte, ChunkSize)

func isZero(p []byte) bool { return bytes.Equal(p, zeroChunk[:len(p)]) }
