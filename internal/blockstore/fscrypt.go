package blockstore

import (
	"crypto/hkdf"
	"crypto/sha512"
	"errors"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// KeySize is the length of a volume key: fscrypt's AES-256-XTS takes 512 bits.
const KeySize = 64

// keyID is an fscrypt v2 key identifier: what a directory's policy names and
// what the filesystem's keyring holds a key under.
type keyID [unix.FSCRYPT_KEY_IDENTIFIER_SIZE]byte

// keyIdentifier derives the identifier the kernel computes for key
// (HKDF-SHA512, no salt, info "fscrypt\0" + context 1), so that a wrong key
// is refused before it ever reaches the kernel.
func keyIdentifier(key []byte) (keyID, error) {
	var id keyID
	b, err := hkdf.Key(sha512.New, key, nil, "fscrypt\x00\x01", len(id))
	if err != nil {
		return id, err
	}
	copy(id[:], b)
	return id, nil
}

func ioctl(f *os.File, req uint, arg unsafe.Pointer) error {
	conn, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var errno unix.Errno
	if err := conn.Control(func(fd uintptr) {
		_, _, errno = unix.Syscall(unix.SYS_IOCTL, fd, uintptr(req), uintptr(arg))
	}); err != nil {
		return err
	}
	if errno != 0 {
		return errno
	}
	return nil
}

// addKey adds key to the keyring of the filesystem that fs is on.
func addKey(fs *os.File, key []byte) (keyID, error) {
	var arg struct {
		unix.FscryptAddKeyArg
		raw [KeySize]byte // the struct's flexible array member
	}
	defer clear(arg.raw[:])
	arg.Key_spec.Type = unix.FSCRYPT_KEY_SPEC_TYPE_IDENTIFIER
	arg.Raw_size = uint32(copy(arg.raw[:], key))
	if err := ioctl(fs, unix.FS_IOC_ADD_ENCRYPTION_KEY, unsafe.Pointer(&arg)); err != nil {
		return keyID{}, fmt.Errorf("adding encryption key: %w", err)
	}
	var id keyID
	copy(id[:], arg.Key_spec.U[:])
	return id, nil
}

// removeKey removes a key from fs's keyring, which also evicts the plaintext
// the page cache holds for files under it. An absent key is fine. busy: files
// that use it are still open, and they keep working until closed.
func removeKey(fs *os.File, id keyID) (busy bool, err error) {
	var arg unix.FscryptRemoveKeyArg
	arg.Key_spec.Type = unix.FSCRYPT_KEY_SPEC_TYPE_IDENTIFIER
	copy(arg.Key_spec.U[:], id[:])
	err = ioctl(fs, unix.FS_IOC_REMOVE_ENCRYPTION_KEY, unsafe.Pointer(&arg))
	if errors.Is(err, unix.ENOKEY) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("removing encryption key: %w", err)
	}
	return arg.Removal_status_flags&unix.FSCRYPT_KEY_REMOVAL_STATUS_FLAG_FILES_BUSY != 0, nil
}

// keyPresent reports whether fs's keyring holds the key: a key removed while
// files still use it counts as absent (no new file can be opened with it).
func keyPresent(fs *os.File, id keyID) (bool, error) {
	var arg unix.FscryptGetKeyStatusArg
	arg.Key_spec.Type = unix.FSCRYPT_KEY_SPEC_TYPE_IDENTIFIER
	copy(arg.Key_spec.U[:], id[:])
	if err := ioctl(fs, unix.FS_IOC_GET_ENCRYPTION_KEY_STATUS, unsafe.Pointer(&arg)); err != nil {
		return false, fmt.Errorf("encryption key status: %w", err)
	}
	return arg.Status == unix.FSCRYPT_KEY_STATUS_PRESENT, nil
}

// setPolicy encrypts everything created under the empty directory dir with
// the key id: contents AES-256-XTS, names AES-256-CTS.
func setPolicy(dir *os.File, id keyID) error {
	p := unix.FscryptPolicyV2{
		Version:                   unix.FSCRYPT_POLICY_V2,
		Contents_encryption_mode:  unix.FSCRYPT_MODE_AES_256_XTS,
		Filenames_encryption_mode: unix.FSCRYPT_MODE_AES_256_CTS,
		Flags:                     unix.FSCRYPT_POLICY_FLAGS_PAD_32,
		Master_key_identifier:     id,
	}
	if err := ioctl(dir, unix.FS_IOC_SET_ENCRYPTION_POLICY, unsafe.Pointer(&p)); err != nil {
		return fmt.Errorf("setting encryption policy on %s: %w", dir.Name(), err)
	}
	return nil
}

// policyKey returns the key identifier of f's encryption policy; ok is false
// for a file that is not encrypted.
func policyKey(f *os.File) (id keyID, ok bool, err error) {
	var arg unix.FscryptGetPolicyExArg
	arg.Size = uint64(len(arg.Policy))
	err = ioctl(f, unix.FS_IOC_GET_ENCRYPTION_POLICY_EX, unsafe.Pointer(&arg))
	if errors.Is(err, unix.ENODATA) {
		return id, false, nil
	}
	if err != nil {
		return id, false, fmt.Errorf("reading encryption policy of %s: %w", f.Name(), err)
	}
	if arg.Policy[0] != unix.FSCRYPT_POLICY_V2 {
		return id, false, fmt.Errorf("%s has an fscrypt v%d policy, not v2", f.Name(), arg.Policy[0])
	}
	p := (*unix.FscryptPolicyV2)(unsafe.Pointer(&arg.Policy[0]))
	return p.Master_key_identifier, true, nil
}
