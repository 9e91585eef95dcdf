package warewulfd

import (
	"fmt"
	"net"
	"net/url"
	"strings"
)

// Stage is one step of a node's boot, named as in the URL.
type Stage int

// The stages, in boot order. stageCount bounds arrays indexed by Stage.
const (
	StageIpxe Stage = iota
	StageKernel
	StageImage
	StageKmods
	StageSystem
	StageRuntime
	StageStage1    // the two-stage boot's own initramfs (stage1.go)
	StageInitramfs // the image's dracut initramfs, for upstream's dracut template
	StageGrub      // grub.cfg, /grub/MAC
	StageEFIBoot   // shim, GRUB or grub.cfg, /efiboot/NAME
	stageCount
)

var stageNames = [stageCount]string{"ipxe", "kernel", "image", "kmods", "system", "runtime", "stage1", "initramfs", "grub", "efiboot"}

func (s Stage) String() string {
	if s >= 0 && s < stageCount {
		return stageNames[s]
	}
	return "unknown"
}

// ParseMAC accepts a MAC address in the forms iPXE sends (aa:bb:cc:dd:ee:ff
// from ${mac}, aa-bb-cc-dd-ee-ff from ${mac:hexhyp}), in either case, and
// returns it in lowercase colon form.
func ParseMAC(s string) (string, error) {
	if len(s) != 17 {
		return "", fmt.Errorf("%q is not a MAC address", s)
	}
	sep := s[2]
	if sep != ':' && sep != '-' {
		return "", fmt.Errorf("%q is not a MAC address", s)
	}
	var b [17]byte
	for i := 0; i < 17; i++ {
		c := s[i]
		if i%3 == 2 {
			if c != sep {
				return "", fmt.Errorf("%q is not a MAC address", s)
			}
			b[i] = ':'
			continue
		}
		switch {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'f':
		case c >= 'A' && c <= 'F':
			c += 'a' - 'A'
		default:
			return "", fmt.Errorf("%q is not a MAC address", s)
		}
		b[i] = c
	}
	return string(b[:]), nil
}

// ParsePath splits a provisioning URL path, /STAGE/MAC, into its stage and
// canonical MAC address.
func ParsePath(p string) (Stage, string, error) {
	rest, ok := strings.CutPrefix(p, "/")
	if !ok {
		return 0, "", fmt.Errorf("path %q does not start with /", p)
	}
	name, mac, ok := strings.Cut(rest, "/")
	if !ok {
		return 0, "", fmt.Errorf("path %q is not /STAGE/MAC", p)
	}
	for s, n := range stageNames {
		if n == name {
			hw, err := ParseMAC(mac)
			if err != nil {
				return 0, "", err
			}
			return Stage(s), hw, nil
		}
	}
	return 0, "", fmt.Errorf("path %q: unknown stage %q", p, name)
}

// ProvisionPath is upstream's route that names the stage in the query:
// /provision/MAC?stage=STAGE (no stage: ipxe).
const ProvisionPath = "/provision/"

// provisionAlias rewrites /provision/MAC?stage=STAGE to /STAGE/MAC.
func provisionAlias(u *url.URL) {
	mac, ok := strings.CutPrefix(u.Path, ProvisionPath)
	if !ok {
		return
	}
	stage := u.Query().Get("stage")
	if stage == "" {
		stage = "ipxe"
	}
	u.Path = "/" + stage + "/" + mac
}

// ipxeHost checks a Host header before it goes into a script: a host name
// or IP address and an optional port, nothing else.
func ipxeHost(h string) bool {
	if h == "" || len(h) > 255 {
		return false
	}
	host, port, err := net.SplitHostPort(h)
	if err != nil {
		host, port = h, ""
	}
	for _, c := range []byte(port) {
		if c < '0' || c > '9' {
			return false
		}
	}
	if ip := net.ParseIP(strings.Trim(host, "[]")); ip != nil {
		return true
	}
	for _, c := range []byte(host) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return host != ""
}
