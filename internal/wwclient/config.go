// Package wwclient is the agent that runs on every node: it fetches the
// node's runtime overlay from warewulfd over a privileged source port, at a
// fixed interval, and applies it atomically to the running system. Each
// fetch also tells warewulfd that the node is alive.
package wwclient

import (
	"fmt"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// DefaultConfigFile is where the wwclient overlay renders the client's
// configuration on the node.
const DefaultConfigFile = "/warewulf/config"

// DefaultCAFile is the CA wwclient trusts for HTTPS, from its overlay.
const DefaultCAFile = "/warewulf/tls/ca.crt"

// Config is what wwclient needs to know about its controller and itself.
// The wwclient overlay renders it per node; the kernel command line may
// override single values (wwclient.controller=, wwclient.port=, wwid=).
type Config struct {
	Controller string `yaml:"controller"`
	Port       int    `yaml:"port"`
	Hwaddr     string `yaml:"hwaddr,omitempty"`
	// Interval is the update interval in seconds.
	Interval int `yaml:"update interval"`
	// Root is where the overlay is applied; "/" on a node.
	Root string `yaml:"root,omitempty"`
	// Source is the local address requests leave from; empty lets the
	// kernel choose by route.
	Source string `yaml:"source,omitempty"`
	// Secure says whether warewulfd checks the source port; when false
	// the client may use any port (for a node that is not root).
	Secure *bool `yaml:"secure,omitempty"`
	// TLS fetches over HTTPS from TLSPort, trusting only the CA in
	// CAFile (the wwclient overlay renders both from warewulf.conf).
	TLS     bool   `yaml:"tls,omitempty"`
	TLSPort int    `yaml:"tls port,omitempty"`
	CAFile  string `yaml:"ca,omitempty"`
	// Ignored lists the file's keys wwclient does not know, for a warning
	// ("asset key" among them: the key is read from the hardware now).
	Ignored []string `yaml:"-"`
}

var knownKeys = map[string]bool{"controller": true, "port": true, "hwaddr": true,
	"update interval": true, "root": true, "source": true, "secure": true, "tls": true, "tls port": true, "ca": true}

// LoadConfig reads the configuration file and then the kernel command line
// (cmdline, normally the contents of /proc/cmdline; "" to skip).
func LoadConfig(file, cmdline string) (*Config, error) {
	c := &Config{}
	data, err := os.ReadFile(file)
	if err != nil && !(os.IsNotExist(err) && cmdline != "") {
		return nil, fmt.Errorf("wwclient config: %w", err)
	}
	if err == nil {
		if err := yaml.Unmarshal(data, c); err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		var all map[string]any
		yaml.Unmarshal(data, &all)
		for k := range all {
			if !knownKeys[k] {
				c.Ignored = append(c.Ignored, k)
			}
		}
		sort.Strings(c.Ignored)
	}
	for _, f := range strings.Fields(cmdline) {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			continue
		}
		switch k {
		case "wwclient.controller":
			c.Controller = v
		case "wwclient.port":
			if p, err := strconv.Atoi(v); err == nil {
				c.Port = p
			}
		case "wwid":
			c.Hwaddr = v
		}
	}
	if c.Root == "" {
		c.Root = "/"
	}
	if c.Port == 0 {
		c.Port = 9873
	}
	if c.Interval == 0 {
		c.Interval = 60
	}
	if c.TLSPort == 0 {
		c.TLSPort = 9874
	}
	if c.CAFile == "" {
		c.CAFile = DefaultCAFile
	}
	return c, c.Validate()
}

// Validate reports the first bad value, naming it.
func (c *Config) Validate() error {
	if net.ParseIP(c.Controller) == nil {
		return fmt.Errorf("controller: %q is not an IP address", c.Controller)
	}
	if c.Port < 1 || c.Port > 65535 {
		return fmt.Errorf("port: %d is not a TCP port", c.Port)
	}
	if c.Interval < 1 {
		return fmt.Errorf("update interval: %d must be at least 1 second", c.Interval)
	}
	if c.Source != "" && net.ParseIP(c.Source) == nil {
		return fmt.Errorf("source: %q is not an IP address", c.Source)
	}
	if c.Hwaddr != "" {
		if _, err := net.ParseMAC(c.Hwaddr); err != nil {
			return fmt.Errorf("hwaddr: %q is not a MAC address", c.Hwaddr)
		}
	}
	return nil
}

// Every returns the update interval.
func (c *Config) Every() time.Duration { return time.Duration(c.Interval) * time.Second }
