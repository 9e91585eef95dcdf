// Package sshkey makes OpenSSH key pairs: per-node host keys for the
// ssh.host_keys overlay and the controller's cluster login key.
package sshkey

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"fmt"

	"golang.org/x/crypto/ssh"
)

// Pair is a key in OpenSSH's file formats.
type Pair struct {
	Type    string
	Private string // PEM "OPENSSH PRIVATE KEY", as in ssh_host_TYPE_key
	Public  string // one authorized_keys line ending in the comment
}

// New makes a key of type ed25519, ecdsa (P-256) or rsa (3072 bits).
func New(keyType, comment string) (*Pair, error) {
	var priv crypto.Signer
	var err error
	switch keyType {
	case "ed25519":
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	case "ecdsa":
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "rsa":
		priv, err = rsa.GenerateKey(rand.Reader, 3072)
	default:
		return nil, fmt.Errorf("ssh key type %q cannot be made here (OpenSSH dropped dsa); use ed25519, ecdsa or rsa", keyType)
	}
	if err != nil {
		return nil, err
	}
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return nil, err
	}
	pub, err := ssh.NewPublicKey(priv.Public())
	if err != nil {
		return nil, err
	}
	line := ssh.MarshalAuthorizedKey(pub)
	line = append(line[:len(line)-1], " "+comment+"\n"...)
	return &Pair{Type: keyType, Private: string(pem.EncodeToMemory(block)), Public: string(line)}, nil
}

// Valid reports whether New can make keys of this type.
func Valid(keyType string) bool {
	switch keyType {
	case "ed25519", "ecdsa", "rsa":
		return true
	}
	return false
}
