package warewulfd

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
)

// Upstream's URL forms for a provisioning route, all accepted:
//
//	/STAGE/WWID    /STAGE?wwid=WWID    /STAGE (the node found by ARP)
//	/provision/WWID?stage=STAGE    /provision?wwid=WWID&stage=STAGE    /provision?stage=STAGE
//
// /provision without stage= is the iPXE script, and upstream's old stage
// names (container, overlay-system, overlay-runtime) still work.
var stageAliases = map[string]string{
	"provision":       "ipxe",
	"container":       "image",
	"overlay-system":  "system",
	"overlay-runtime": "runtime",
}

// identify finds the stage and the node's MAC a provisioning request asks
// for: from the path, else the wwid= query, else the ARP table.
func identify(r *http.Request, remote netip.AddrPort) (Stage, string, error) {
	if stage, mac, err := ParsePath(r.URL.Path); err == nil {
		return stage, mac, nil
	}
	name, hw, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	q := r.URL.Query()
	if name == "provision" && q.Get("stage") != "" {
		name = q.Get("stage")
	}
	if a, ok := stageAliases[name]; ok {
		name = a
	}
	stage := stageCount
	for s, n := range stageNames {
		if n == name {
			stage = Stage(s)
		}
	}
	switch stage {
	case stageCount:
		return 0, "", fmt.Errorf("path %q: unknown stage %q", r.URL.Path, name)
	case StageGrub, StageEFIBoot:
		// Their own routes (grub.go) name the file in the path.
		return 0, "", fmt.Errorf("path %q: %s wants /%s/...", r.URL.Path, name, name)
	}
	mac, err := requestMAC(hw, q.Get("wwid"), remote)
	return stage, mac, err
}

// requestMAC is the node a request names: in its path, else its wwid=,
// else by the ARP entry of its source address.
func requestMAC(inPath, wwid string, remote netip.AddrPort) (string, error) {
	switch {
	case inPath != "":
		return ParseMAC(inPath)
	case wwid != "":
		return ParseMAC(wwid)
	}
	if mac := arpLookup(remote.Addr()); mac != "" {
		return mac, nil
	}
	return "", errors.New("no hwaddr in the path, no wwid=, and no ARP entry for " + remote.Addr().Unmap().String())
}
