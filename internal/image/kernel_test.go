package image

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// kernelRoot makes a rootfs holding the given (empty) files.
func kernelRoot(t *testing.T, files ...string) string {
	t.Helper()
	root := t.TempDir()
	for _, f := range files {
		p := filepath.Join(root, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// TestDefaultKernel: upstream's kernel cases (internal/pkg/kernel): the
// default is the newest kernel that is neither a +debug nor a rescue one.
func TestDefaultKernel(t *testing.T) {
	for name, c := range map[string]struct {
		files []string
		want  string // the default's image path, "" none
		short string
	}{
		"el9": {[]string{"/boot/vmlinuz-5.14.0-427.18.1.el9_4.x86_64", "/boot/vmlinuz-5.14.0-427.24.1.el9_4.x86_64",
			"/boot/vmlinuz-4.14.0-427.18.1.el8_4.x86_64"}, "/boot/vmlinuz-5.14.0-427.24.1.el9_4.x86_64", "5.14.0-427.24.1"},
		"generic": {[]string{"/boot/vmlinuz-5.15.0-119-generic", "/boot/vmlinuz-5.14.0-427.24.1.el9_4.x86_64",
			"/boot/vmlinuz-6.15.0-119-generic"}, "/boot/vmlinuz-6.15.0-119-generic", "6.15.0-119"},
		"modules": {[]string{"/lib/modules/5.14.0-427.18.1.el9_4.x86_64/vmlinuz", "/lib/modules/5.14.0-427.24.1.el9_4.x86_64/vmlinuz"},
			"/lib/modules/5.14.0-427.24.1.el9_4.x86_64/vmlinuz", "5.14.0-427.24.1"},
		"ignore rescue and debug kernels": {[]string{
			"/boot/vmlinuz-0-rescue-eb46964329b146e39518c625feab3ea0",
			"/boot/vmlinuz-5.14.0-362.24.1.el9_3.aarch64",
			"/boot/vmlinuz-5.14.0-427.31.1.el9_4.aarch64+debug",
			"/boot/vmlinuz-5.14.0-284.30.1.el9_2.aarch64",
			"/boot/vmlinuz-5.14.0-427.31.1.el9_4.aarch64",
		}, "/boot/vmlinuz-5.14.0-427.31.1.el9_4.aarch64", "5.14.0-427.31.1"},
		"SUSE aarch64 Image": {[]string{"/boot/Image-6.4.0-150600.23.7-default"}, "/boot/Image-6.4.0-150600.23.7-default", "6.4.0-150600.23.7"},
		"only debug":         {[]string{"/boot/vmlinuz-5.14.0-427.31.1.el9_4.aarch64+debug"}, "", ""},
		"no kernels":         {nil, "", ""},
	} {
		t.Run(name, func(t *testing.T) {
			ks, err := FindKernels(kernelRoot(t, c.files...))
			if err != nil {
				t.Fatal(err)
			}
			k, ok := DefaultKernel(ks)
			if ok != (c.want != "") || k.Rel != c.want || k.ShortVersion() != c.short {
				t.Fatalf("default %q (%q, ok %v), want %q (%q)", k.Rel, k.ShortVersion(), ok, c.want, c.short)
			}
		})
	}
}

// TestListKernelsRescue: rescue kernels are listed (upstream shows them)
// but never built or booted by default.
func TestListKernelsRescue(t *testing.T) {
	root := kernelRoot(t, "/boot/vmlinuz-0-rescue-eb46964329b146e39518c625feab3ea0", "/boot/vmlinuz-6.1.0-9-amd64")
	all, _ := ListKernels(root)
	built, _ := FindKernels(root)
	if len(all) != 2 || len(built) != 1 || built[0].Version != "6.1.0-9-amd64" {
		t.Fatalf("ListKernels %+v, FindKernels %+v", all, built)
	}
	for _, k := range all {
		if k.Rescue != strings.Contains(k.Rel, "rescue") {
			t.Fatalf("%s: Rescue %v", k.Rel, k.Rescue)
		}
		if k.Rescue && k.ShortVersion() != "" {
			t.Fatalf("rescue kernel has version %q", k.ShortVersion())
		}
	}
}

// TestChooseKernel: what a node's `kernel version` may name, as upstream:
// a path in the image, or the start of the short version; and ours, the
// full version.
func TestChooseKernel(t *testing.T) {
	root := kernelRoot(t,
		"/boot/vmlinuz-5.14.0-427.18.1.el9_4.x86_64",
		"/boot/vmlinuz-5.14.0-427.24.1.el9_4.x86_64",
		"/boot/vmlinuz-5.14.0-427.24.1.el9_4.x86_64+debug",
		"/lib/modules/4.14.0-427.18.1.el8_4.x86_64/vmlinuz")
	ks, _ := FindKernels(root)
	for want, got := range map[string]string{
		"":                                   "5.14.0-427.24.1.el9_4.x86_64",
		"5.14.0-427.18.1.el9_4.x86_64":       "5.14.0-427.18.1.el9_4.x86_64",
		"5.14.0-427.24.1.el9_4.x86_64+debug": "5.14.0-427.24.1.el9_4.x86_64+debug",
		"/boot/vmlinuz-5.14.0-427.18.1.el9_4.x86_64":        "5.14.0-427.18.1.el9_4.x86_64",
		"/lib/modules/4.14.0-427.18.1.el8_4.x86_64/vmlinuz": "4.14.0-427.18.1.el8_4.x86_64",
		"4.14.0-427.18.1": "4.14.0-427.18.1.el8_4.x86_64",
		"5.14":            "5.14.0-427.24.1.el9_4.x86_64",
		"5.14.0-427.18":   "5.14.0-427.18.1.el9_4.x86_64",
		"/boot/vmlinuz-9": "",
		"7.0":             "",
	} {
		k, ok := ChooseKernel(ks, want)
		if ok != (got != "") || k.Version != got {
			t.Errorf("ChooseKernel(%q) = %q (ok %v), want %q", want, k.Version, ok, got)
		}
	}
}
