// Package image imports node operating system images (OCI registries and
// archives, chroot directories, tarballs) into the image store, builds them
// into bootable compressed cpio archives, and finds their kernels.
package image

import (
	"errors"

	"github.com/warewulf-ng/warewulf/internal/config"
)

// Artifacts are the built files warewulfd serves for one image and kernel.
type Artifacts struct {
	Kernel string // the kernel binary (vmlinuz)
	Image  string // the image's compressed cpio archive
	Kmods  string // the kernel-modules compressed cpio archive
}

// BuiltArtifacts returns the built files of image name for a kernel version
// ("" for the image's default, the newest kernel). It fails if the image
// has not been built.
func BuiltArtifacts(cfg *config.Config, name, kernelVersion string) (*Artifacts, error) {
	return nil, errors.New("image: not implemented yet")
}
