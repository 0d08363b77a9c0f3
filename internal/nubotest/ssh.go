package nubotest

import (
	"encoding/base64"
	"errors"
	"net"
	"time"

	"golang.org/x/crypto/ssh"
)

// SSHHostKey is the ed25519 host key (base64, as in a .pub file) that
// addr:22 presents, found within timeout; it tells which instance answers an
// address. The whole exchange is bounded: ssh's own Timeout covers only the
// TCP connect, and a handshake caught by an address move would hang.
func SSHHostKey(addr string, timeout time.Duration) (string, error) {
	var got string
	cfg := &ssh.ClientConfig{
		User:              "probe",
		HostKeyAlgorithms: []string{ssh.KeyAlgoED25519},
		HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error {
			got = base64.StdEncoding.EncodeToString(key.Marshal())
			return errSeen // no need to log in
		},
	}
	conn, err := net.DialTimeout("tcp", net.JoinHostPort(addr, "22"), timeout)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(timeout))
	_, _, _, err = ssh.NewClientConn(conn, addr, cfg)
	if got != "" {
		return got, nil
	}
	return "", err
}

var errSeen = errors.New("host key seen")
