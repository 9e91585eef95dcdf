package overlay

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/crypto/ssh"

	"github.com/warewulf-ng/warewulf/internal/config"
	"github.com/warewulf-ng/warewulf/internal/safefile"
)

// HostKey is one ssh host key of a node, in the files sshd reads.
type HostKey struct {
	Type    string // ed25519, ecdsa, rsa
	Private string // OpenSSH private key (ssh_host_TYPE_key)
	Public  string // authorized_keys line (ssh_host_TYPE_key.pub)
}

// keyStore makes each node's host keys once, under cfg.HostKeyDir(node),
// so they stay the same across builds and a node keeps its identity.
type keyStore struct{ cfg *config.Config }

func keyFiles(cfg *config.Config, nodeName, keyType string) (priv, pub string) {
	priv = filepath.Join(cfg.HostKeyDir(nodeName), "ssh_host_"+keyType+"_key")
	return priv, priv + ".pub"
}

// get returns node's key of keyType, making it if it does not exist, and
// the files it lives in.
func (k *keyStore) get(nodeName, keyType string) (*HostKey, []string, error) {
	privFile, pubFile := keyFiles(k.cfg, nodeName, keyType)
	files := []string{privFile, pubFile}
	priv, err1 := os.ReadFile(privFile)
	pub, err2 := os.ReadFile(pubFile)
	if err1 == nil && err2 == nil {
		return &HostKey{Type: keyType, Private: string(priv), Public: string(pub)}, files, nil
	}
	if !errors.Is(err1, fs.ErrNotExist) && err1 != nil {
		return nil, files, err1
	}
	hk, err := NewHostKey(keyType, "root@"+nodeName)
	if err != nil {
		return nil, files, err
	}
	if err := os.MkdirAll(filepath.Dir(privFile), 0o700); err != nil {
		return nil, files, err
	}
	if err := safefile.WriteFile(pubFile, []byte(hk.Public), 0o644); err != nil {
		return nil, files, err
	}
	if err := safefile.WriteFile(privFile, []byte(hk.Private), 0o600); err != nil {
		return nil, files, err
	}
	return hk, files, nil
}

// NewHostKey makes a key of type ed25519, ecdsa (P-256) or rsa (3072 bits).
func NewHostKey(keyType, comment string) (*HostKey, error) {
	var priv crypto.PrivateKey
	var pub crypto.PublicKey
	switch keyType {
	case "ed25519":
		p, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		priv, pub = k, p
	case "ecdsa":
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		priv, pub = k, &k.PublicKey
	case "rsa":
		k, err := rsa.GenerateKey(rand.Reader, 3072)
		if err != nil {
			return nil, err
		}
		priv, pub = k, &k.PublicKey
	default:
		return nil, fmt.Errorf("ssh host key type %q is not ed25519, ecdsa or rsa", keyType)
	}
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return nil, err
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil, err
	}
	line := ssh.MarshalAuthorizedKey(sp)
	line = append(line[:len(line)-1], " "+comment+"\n"...)
	return &HostKey{Type: keyType, Private: string(pem.EncodeToMemory(block)), Public: string(line)}, nil
}
