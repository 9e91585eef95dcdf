package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/warewulf-ng/warewulf/internal/node"
)

// upstreamStyleIpxe is a site's iPXE template written against upstream
// Warewulf's template variables (.Authority, .Fqdn, .Cluster, .NetDevs,
// .KernelArgs, ...) and its /provision/MAC?stage= route.
const upstreamStyleIpxe = `#!ipxe
echo Site template: {{.Fqdn}} ({{.Hwaddr}}) of {{.Cluster}}, image {{.ImageName}}
{{- if not .ImageName }}
echo No image for {{.Id}}
sleep 30
reboot
{{- end }}
set base http://{{.Authority}}
set params assetkey=${asset}&uuid=${uuid}
kernel --name kernel ${base}/provision/{{.Hwaddr}}?stage=kernel&${params} {{.KernelArgs}} wwid={{.Hwaddr}}{{range $devname, $netdev := .NetDevs}}{{if and $netdev.Hwaddr $netdev.Device}} ifname={{$netdev.Device}}:{{$netdev.Hwaddr}}{{end}}{{end}} initrd=image initrd=kmods initrd=system || goto failed
initrd --name image ${base}/provision/{{.Hwaddr}}?stage=image&compress=gz&${params} || goto failed
initrd --name kmods ${base}/provision/{{.Hwaddr}}?stage=kmods&compress=gz&${params} || goto failed
initrd --name system ${base}/provision/{{.Hwaddr}}?stage=system&compress=gz&${params} || goto failed
boot || goto failed
:failed
echo Boot failed for {{.Id}}
sleep 10
reboot
`

// TestBootUpstreamIpxe: a node whose iPXE template is a site's, written
// for upstream Warewulf, boots with it.
func TestBootUpstreamIpxe(t *testing.T) {
	e := getEnv(t)
	const (
		name = "ipxe1"
		mac  = "52:54:00:99:00:1a"
		ip   = prefix + "30"
	)
	if err := os.MkdirAll(e.cfg.IpxeTemplateDir(), 0o755); err != nil {
		t.Fatal(err)
	}
	tmpl := filepath.Join(e.cfg.IpxeTemplateDir(), "site-upstream.ipxe")
	if err := os.WriteFile(tmpl, []byte(upstreamStyleIpxe), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(tmpl) })
	err := node.Update(e.cfg.NodesConf(), func(db *node.DB) error {
		db.Nodes[name] = &node.Conf{
			Profiles:     node.List{"default"},
			ImageName:    "busybox",
			ClusterName:  "alpha",
			IpxeTemplate: "site-upstream",
			NetDevs:      map[string]*node.NetDev{"default": {Device: "eth0", Hwaddr: mac, Ipaddr: ip, Netmask: netmask}},
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		node.Update(e.cfg.NodesConf(), func(db *node.DB) error { delete(db.Nodes, name); return nil })
	})
	e.buildOverlays(t, name)
	url := "http://" + controllerIP + ":" + strconv.Itoa(e.cfg.Warewulf.Port) + "/provision/" + mac + "?stage=ipxe"
	var script string
	for i := 0; ; i++ {
		script, _ = runErr(nil, e.ns.exec("busybox", "wget", "-q", "-O", "-", url)...)
		if strings.Contains(script, "Site template: "+name) {
			break
		}
		if i == 30 {
			t.Fatalf("warewulfd does not hand %s its template after 30 s:\n%s", name, script)
		}
		time.Sleep(time.Second)
	}
	for _, want := range []string{"of alpha, image busybox", "set base http://" + controllerIP + ":" + strconv.Itoa(e.cfg.Warewulf.Port) + "\n", " ifname=eth0:" + mac + " "} {
		if !strings.Contains(script, want) {
			t.Errorf("the script lacks %q:\n%s", want, script)
		}
	}
	v := bootVM(t, e.ns, name, mac, vmOpts{})
	v.waitFor(t, reInit, busyboxBoot)
	for _, stage := range []string{"kernel", "image", "kmods", "system"} {
		e.daemonSaid(t, `hwaddr="`+mac+`" ip=`+regexp.QuoteMeta(ip)+` node=`+name+` stage=`+stage+` status=200`)
	}
}
