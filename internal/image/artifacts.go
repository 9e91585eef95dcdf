// Package image imports node operating system images (OCI registries and
// archives, chroot directories, tarballs) into the image store, builds them
// into bootable compressed cpio archives, and finds their kernels.
package image

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/warewulf-ng/warewulf/internal/archive"
	"github.com/warewulf-ng/warewulf/internal/config"
)

// Artifacts are the built files warewulfd serves for one image and kernel.
type Artifacts struct {
	Kernel        string              // the kernel binary (vmlinuz)
	Image         string              // the image's compressed cpio archive
	Kmods         string              // the kernel-modules compressed cpio archive
	KernelVersion string              // the version Kernel and Kmods are
	Compression   archive.Compression // of Image and Kmods
}

// BuiltArtifacts returns the built files of image name for a node's kernel
// version ("" for the image's default: the newest kernel that is not a
// debug one; see ChooseKernel for what else it may be). It fails if the
// image has not been built, has no kernel, or lacks that version. Node
// images are complete only with the kmods archive: the image archive
// leaves the kernels' modules and the firmware to it.
func BuiltArtifacts(cfg *config.Config, name, kernelVersion string) (*Artifacts, error) {
	bi, err := ReadBuildInfo(cfg, name)
	if err != nil {
		return nil, err
	}
	if len(bi.Kernels) == 0 {
		return nil, fmt.Errorf("image %q has no kernel (no /boot/vmlinuz-* or /lib/modules/*/vmlinuz)", name)
	}
	dir := cfg.ImageProvisionDir(name)
	k, ok := bi.ChooseKernel(kernelVersion)
	if !ok {
		var have []string
		for _, c := range bi.Kernels {
			have = append(have, c.Version)
		}
		if kernelVersion == "" {
			return nil, fmt.Errorf("image %q has only debug kernels (%s): set the node's kernel version to one", name, strings.Join(have, ", "))
		}
		return nil, fmt.Errorf("image %q has no kernel version %q (it has %s)", name, kernelVersion, strings.Join(have, ", "))
	}
	return &Artifacts{
		Kernel:        filepath.Join(dir, k.Kernel),
		Image:         filepath.Join(dir, bi.Image),
		Kmods:         filepath.Join(dir, k.Kmods),
		KernelVersion: k.Version,
		Compression:   bi.Compression,
	}, nil
}
