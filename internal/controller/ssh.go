package controller

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/warewulf-ng/warewulf/internal/config"
	"github.com/warewulf-ng/warewulf/internal/node"
	"github.com/warewulf-ng/warewulf/internal/overlay"
	"github.com/warewulf-ng/warewulf/internal/safefile"
	"github.com/warewulf-ng/warewulf/internal/sshkey"
)

// ClusterKeyFile is the controller's own key for logging in to nodes as
// root; the ssh.authorized_keys overlay authorizes ClusterKeyFile + ".pub".
// Nodes' host keys are made per node by the ssh.host_keys overlay; the
// controller learns them through KnownHostsBlock.
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

// KnownHostsFile is where `wwctl configure ssh` lists the nodes' host keys
// by default: the system-wide known_hosts of OpenSSH.
const KnownHostsFile = "/etc/ssh/ssh_known_hosts"

// KnownHostsOverlay and KnownHostsTemplate are the template every node's
// /etc/ssh/ssh_known_hosts comes from; the controller gets the same text
// (a site copy of the overlay included), so it trusts the keys the nodes
// present. Missing keys are made, as a build would make them.
const (
	KnownHostsOverlay  = "ssh.known_hosts"
	KnownHostsTemplate = "etc/ssh/ssh_known_hosts.ww"
)

// KnownHostsBlock is every node's host keys under each of its names and
// addresses, in known_hosts format.
func KnownHostsBlock(cfg *config.Config, db *node.DB) (string, error) {
	outs, err := overlay.NewBuilder(cfg, overlay.Options{}).RenderShared(db, KnownHostsOverlay, KnownHostsTemplate)
	if err != nil {
		return "", err
	}
	want := strings.TrimSuffix(KnownHostsTemplate, overlay.TemplateSuffix)
	for _, o := range outs {
		if o.Path == want && o.Link == "" {
			return string(o.Data), nil
		}
	}
	return "", fmt.Errorf("overlay %s writes no %s", KnownHostsOverlay, want)
}
