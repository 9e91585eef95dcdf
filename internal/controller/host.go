package controller

import (
	"errors"
	"fmt"
	"strings"

	"github.com/warewulf-ng/warewulf/internal/config"
	"github.com/warewulf-ng/warewulf/internal/node"
	"github.com/warewulf-ng/warewulf/internal/overlay"
)

// HostOverlay is upstream's overlay of the controller's own files
// (/etc/hosts, /etc/exports, the dhcpd and dnsmasq configs); a site
// overlay of that name shadows the shipped one. The controller's files are
// its templates rendered for the controller's host name, as `wwctl overlay
// show --render host host FILE` shows them.
const HostOverlay = "host"

// The host overlay's templates `wwctl configure` writes.
const (
	HostsTemplate   = "etc/hosts.ww"
	ExportsTemplate = "etc/exports.ww"
)

// ErrHostOverlayOff is returned when warewulf.conf has `warewulf: host
// overlay: false`: the site manages these files itself.
var ErrHostOverlayOff = errors.New("warewulf: host overlay is false: the host overlay is not applied to the controller")

// RenderHost renders one template of the host overlay for the controller.
// redirect maps a controller file the template reads to the file to read
// instead (overlay.Options.Redirect). A template that calls abort (such
// as etc/exports.ww while nfs is off) gives nil data and no error: there
// is nothing to write.
func RenderHost(cfg *config.Config, db *node.DB, tmpl string, redirect map[string]string) ([]byte, error) {
	if !cfg.Warewulf.HostOverlay {
		return nil, ErrHostOverlayOff
	}
	// "" is no node's name: the template is rendered for the controller.
	outs, err := overlay.NewBuilder(cfg, overlay.Options{Redirect: redirect}).Render(db, HostOverlay, tmpl, "")
	var aborted *overlay.AbortedError
	if errors.As(err, &aborted) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	want := strings.TrimSuffix(tmpl, overlay.TemplateSuffix)
	for _, o := range outs {
		if o.Path == want && o.Link == "" {
			return o.Data, nil
		}
	}
	return nil, fmt.Errorf("overlay %s, file %s writes no %s", HostOverlay, tmpl, want)
}

// RemoveBlock drops the marked block earlier versions wrote into a shared
// file (now the host overlay's template says what the file holds).
func RemoveBlock(data []byte) []byte {
	text := string(data)
	start := strings.Index(text, BeginMarker)
	if start < 0 {
		return data
	}
	rel := strings.Index(text[start:], EndMarker)
	if rel < 0 {
		return data
	}
	end := start + rel + len(EndMarker)
	if end < len(text) && text[end] == '\n' {
		end++
	}
	return []byte(text[:start] + text[end:])
}
