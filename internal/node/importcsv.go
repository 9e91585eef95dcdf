package node

import (
	"encoding/csv"
	"fmt"
	"io"
	"strings"
)

// CSVColumns are the columns ReadCSV understands; the first row names them,
// in any order, and only "name" is required. A row's network columns go to
// the device named in its "netname" column, else "default".
var CSVColumns = []string{
	"name", "profiles", "image", "comment", "cluster", "kernelargs", "kernelversion",
	"netname", "netdev", "type", "hwaddr", "ipaddr", "netmask", "gateway", "mtu",
	"ipmiaddr", "ipmimask", "ipmigateway", "ipmiuser", "ipmipass", "assetkey",
}

// ReadCSV reads node definitions for a bulk import. It returns the nodes in
// file order; each Conf holds only the columns the row sets.
func ReadCSV(r io.Reader) ([]string, map[string]*Conf, error) {
	cr := csv.NewReader(r)
	cr.TrimLeadingSpace = true
	cr.Comment = '#'
	header, err := cr.Read()
	if err != nil {
		return nil, nil, fmt.Errorf("csv: reading header: %w", err)
	}
	col := map[string]int{}
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(h))
		if !contains(CSVColumns, h) {
			return nil, nil, fmt.Errorf("csv: unknown column %q (known: %s)", h, strings.Join(CSVColumns, ", "))
		}
		col[h] = i
	}
	if _, ok := col["name"]; !ok {
		return nil, nil, fmt.Errorf("csv: no %q column", "name")
	}
	var order []string
	nodes := map[string]*Conf{}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("csv: %w", err)
		}
		get := func(k string) string {
			if i, ok := col[k]; ok && i < len(rec) {
				return strings.TrimSpace(rec[i])
			}
			return ""
		}
		name := get("name")
		if err := ValidName(name); err != nil {
			line, _ := cr.FieldPos(col["name"])
			return nil, nil, fmt.Errorf("csv line %d: node %w", line, err)
		}
		if _, dup := nodes[name]; dup {
			return nil, nil, fmt.Errorf("csv: node %s appears twice", name)
		}
		c := &Conf{Comment: get("comment"), ClusterName: get("cluster"), ImageName: get("image"), AssetKey: get("assetkey")}
		if p := get("profiles"); p != "" {
			for _, s := range strings.FieldsFunc(p, func(r rune) bool { return r == ',' || r == ' ' || r == ';' }) {
				c.Profiles = append(c.Profiles, s)
			}
		}
		if a := get("kernelargs"); a != "" || get("kernelversion") != "" {
			c.Kernel = &Kernel{Version: get("kernelversion")}
			if a != "" {
				c.Kernel.Args = Args{a}
			}
		}
		d := &NetDev{Device: get("netdev"), Type: get("type"), Hwaddr: get("hwaddr"), Ipaddr: get("ipaddr"),
			Netmask: get("netmask"), Gateway: get("gateway"), MTU: get("mtu")}
		if d.Device+d.Type+d.Hwaddr+d.Ipaddr+d.Netmask+d.Gateway+d.MTU != "" {
			netname := get("netname")
			if netname == "" {
				netname = "default"
			}
			c.NetDevs = map[string]*NetDev{netname: d}
		}
		i := &Ipmi{Ipaddr: get("ipmiaddr"), Netmask: get("ipmimask"), Gateway: get("ipmigateway"),
			UserName: get("ipmiuser"), Password: get("ipmipass")}
		if i.Ipaddr+i.Netmask+i.Gateway+i.UserName+i.Password != "" {
			c.Ipmi = i
		}
		order = append(order, name)
		nodes[name] = c
	}
	return order, nodes, nil
}
