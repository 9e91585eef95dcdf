package controller

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/warewulf-ng/warewulf/internal/config"
	"github.com/warewulf-ng/warewulf/internal/safefile"
	"github.com/warewulf-ng/warewulf/internal/sshkey"
)

// ClusterKeyFile is the controller's own key for logging in to nodes as
// root; the ssh.authorized_keys overlay authorizes ClusterKeyFile + ".pub".
// Nodes' host keys are made per node by the ssh.host_keys overlay.
func ClusterKeyFile(cfg *config.Config) string {
	return filepath.Join(cfg.KeyDir(), "cluster")
}

// EnsureSSHKeys creates the cluster login key (of the first of `ssh: key
// types`) if it is missing; an existing key is never replaced. It returns
// the files it created.
func EnsureSSHKeys(cfg *config.Config) ([]string, error) {
	if len(cfg.SSH.KeyTypes) == 0 {
		return nil, errors.New("ssh: key types: empty")
	}
	for _, t := range cfg.SSH.KeyTypes {
		if !sshkey.Valid(t) {
			return nil, fmt.Errorf("ssh: key types: %q cannot be made (OpenSSH dropped dsa); use ed25519, ecdsa or rsa", t)
		}
	}
	file := ClusterKeyFile(cfg)
	if _, err := os.Stat(file); err == nil {
		return nil, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	k, err := sshkey.New(cfg.SSH.KeyTypes[0], "root@"+filepath.Base(file))
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return nil, err
	}
	if err := safefile.WriteFile(file+".pub", []byte(k.Public), 0o644); err != nil {
		return nil, err
	}
	if err := safefile.WriteFile(file, []byte(k.Private), 0o600); err != nil {
		return nil, err
	}
	return []string{file, file + ".pub"}, nil
}
