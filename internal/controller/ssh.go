package controller

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
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/warewulf-ng/warewulf/internal/config"
	"github.com/warewulf-ng/warewulf/internal/safefile"
)

// HostKeyFile is the cluster-wide ssh host key of one type that the
// ssh.host_keys overlay installs on every node; its public half is
// HostKeyFile + ".pub".
func HostKeyFile(cfg *config.Config, keyType string) string {
	return filepath.Join(cfg.KeyDir(), "ssh_host_"+keyType+"_key")
}

// ClusterKeyFile is the controller's own key for logging in to nodes as
// root; the ssh.authorized_keys overlay authorizes ClusterKeyFile + ".pub".
func ClusterKeyFile(cfg *config.Config) string {
	return filepath.Join(cfg.KeyDir(), "cluster")
}

// EnsureSSHKeys creates whichever cluster keys are missing: a host key for
// each of `ssh: key types` and the cluster login key (of the first type).
// Existing keys are never replaced. It returns the files it created.
func EnsureSSHKeys(cfg *config.Config) ([]string, error) {
	if len(cfg.SSH.KeyTypes) == 0 {
		return nil, errors.New("ssh: key types: empty")
	}
	for _, t := range cfg.SSH.KeyTypes {
		if _, err := newKey(t, true); err != nil {
			return nil, err
		}
	}
	var created []string
	want := map[string]string{ClusterKeyFile(cfg): cfg.SSH.KeyTypes[0]}
	for _, t := range cfg.SSH.KeyTypes {
		want[HostKeyFile(cfg, t)] = t
	}
	for _, file := range append([]string{ClusterKeyFile(cfg)}, hostFiles(cfg)...) {
		if _, err := os.Stat(file); err == nil {
			continue
		} else if !errors.Is(err, fs.ErrNotExist) {
			return created, err
		}
		if err := writeKey(file, want[file]); err != nil {
			return created, err
		}
		created = append(created, file, file+".pub")
	}
	return created, nil
}

func hostFiles(cfg *config.Config) []string {
	var out []string
	for _, t := range cfg.SSH.KeyTypes {
		out = append(out, HostKeyFile(cfg, t))
	}
	return out
}

// newKey makes a private key of an ssh key type; dryRun only checks the
// type is one this build can make.
func newKey(keyType string, dryRun bool) (crypto.Signer, error) {
	switch keyType {
	case "ed25519":
		if dryRun {
			return nil, nil
		}
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	case "ecdsa":
		if dryRun {
			return nil, nil
		}
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "rsa":
		if dryRun {
			return nil, nil
		}
		return rsa.GenerateKey(rand.Reader, 3072)
	default:
		return nil, fmt.Errorf("ssh: key types: %q cannot be generated (OpenSSH dropped dsa); use ed25519, ecdsa or rsa", keyType)
	}
}

// writeKey writes an OpenSSH private key (0600) and its public half.
func writeKey(file, keyType string) error {
	k, err := newKey(keyType, false)
	if err != nil {
		return err
	}
	block, err := ssh.MarshalPrivateKey(k, "warewulf "+filepath.Base(file))
	if err != nil {
		return err
	}
	pub, err := ssh.NewPublicKey(k.Public())
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return err
	}
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub))) + " warewulf@" + filepath.Base(file) + "\n"
	if err := safefile.WriteFile(file+".pub", []byte(line), 0o644); err != nil {
		return err
	}
	return safefile.WriteFile(file, pem.EncodeToMemory(block), 0o600)
}
