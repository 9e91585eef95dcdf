// Package etc ships the project's default configuration files and the
// templates an admin may edit (iPXE scripts, grub.cfg), embedded
// so that `wwctl genconfig` can write them anywhere.
package etc

import "embed"

// FS holds warewulf.conf, nodes.conf and the template directories.
//
//go:embed warewulf.conf nodes.conf ipxe grub
var FS embed.FS
