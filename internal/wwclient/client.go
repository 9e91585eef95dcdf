package wwclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
)

// retryAfterError is how soon a failed fetch is retried when the update
// interval is longer.
const retryAfterError = 5 * time.Second

// Client fetches and applies one node's runtime overlay.
type Client struct {
	cfg   *Config
	http  *http.Client
	uuid  string
	asset string
	log   logrus.FieldLogger
}

// New prepares a client. In secure mode (the default) every request leaves
// from a privileged port.
func New(cfg *Config, log logrus.FieldLogger) *Client {
	tr := &http.Transport{
		DisableKeepAlives:     true, // each fetch is its own privileged connection
		DisableCompression:    true,
		ResponseHeaderTimeout: 30 * time.Second,
	}
	src := net.ParseIP(cfg.Source)
	if cfg.Secure == nil || *cfg.Secure {
		tr.DialContext = (&PrivilegedDialer{LocalIP: src}).DialContext
	} else if src != nil {
		tr.DialContext = (&net.Dialer{LocalAddr: &net.TCPAddr{IP: src}}).DialContext
	}
	if cfg.TLS {
		// A CA that cannot be read leaves the pool empty: every fetch then
		// fails with the reason, and nothing is sent in clear.
		pool := x509.NewCertPool()
		if pem, err := os.ReadFile(cfg.CAFile); err != nil {
			log.Errorf("wwclient: tls: %v", err)
		} else if !pool.AppendCertsFromPEM(pem) {
			log.Errorf("wwclient: tls: %s holds no certificate", cfg.CAFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &Client{
		cfg:   cfg,
		http:  &http.Client{Transport: tr, Timeout: 2 * time.Minute},
		uuid:  readUUID(),
		asset: ReadAssetTag(AssetTagFile),
		log:   log,
	}
}

// URL is the runtime overlay's address for this node.
func (c *Client) URL(hwaddr string) string {
	q := url.Values{}
	if c.asset != "" {
		q.Set("assetkey", c.asset)
	}
	if c.uuid != "" {
		q.Set("uuid", c.uuid)
	}
	q.Set("compress", "gz")
	scheme, port := "http", c.cfg.Port
	if c.cfg.TLS {
		scheme, port = "https", c.cfg.TLSPort
	}
	host := net.JoinHostPort(c.cfg.Controller, strconv.Itoa(port))
	return scheme + "://" + host + "/runtime/" + url.PathEscape(hwaddr) + "?" + q.Encode()
}

// Update fetches the runtime overlay once and applies it, returning the
// paths it changed. A failed fetch or a broken archive changes nothing.
func (c *Client) Update(ctx context.Context) ([]string, error) {
	hwaddr := c.cfg.Hwaddr
	if hwaddr == "" {
		var err error
		if hwaddr, err = hwaddrTowards(c.cfg.Controller); err != nil {
			return nil, err
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL(hwaddr), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", "wwclient")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("%s: %s %s", req.URL.Path, resp.Status, strings.TrimSpace(string(msg)))
	}
	entries, err := Decode(resp.Body)
	if err != nil {
		return nil, err
	}
	return Apply(c.cfg.Root, entries)
}

// Run updates at once and then every interval until ctx is cancelled.
func (c *Client) Run(ctx context.Context) error {
	first := true
	for {
		start := time.Now()
		wait := c.cfg.Every()
		changed, err := c.Update(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			c.log.Warnf("runtime overlay not applied, keeping the current files: %v", err)
			// At boot the network may not be up yet: retry sooner.
			wait = min(wait, retryAfterError)
		case first || len(changed) > 0:
			c.log.Infof("runtime overlay applied in %v, %s", time.Since(start).Round(time.Millisecond), Summary(changed))
			first = false
		default:
			c.log.Debugf("runtime overlay unchanged")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Until(start.Add(wait))):
		}
	}
}

// hwaddrTowards finds the MAC of the interface the kernel would use to reach
// the controller (connecting a UDP socket sends nothing).
func hwaddrTowards(controller string) (string, error) {
	conn, err := net.Dial("udp", net.JoinHostPort(controller, "9"))
	if err != nil {
		return "", fmt.Errorf("no route to controller %s: %w", controller, err)
	}
	local := conn.LocalAddr().(*net.UDPAddr).IP
	conn.Close()
	ifaces, err := net.Interfaces()
	if err != nil {
		return "", err
	}
	for _, ifc := range ifaces {
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.Equal(local) && len(ifc.HardwareAddr) > 0 {
				return ifc.HardwareAddr.String(), nil
			}
		}
	}
	return "", fmt.Errorf("no interface with address %s has a MAC address", local)
}

// AssetTagFile is where Linux shows the SMBIOS chassis asset tag, the
// node's asset key. It is read from the hardware, never from an overlay:
// anything in an overlay a stranger could fetch too.
var AssetTagFile = "/sys/class/dmi/id/chassis_asset_tag"

// ReadAssetTag reads the asset tag ("" when the machine has none).
func ReadAssetTag(file string) string {
	b, err := os.ReadFile(file)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// readUUID is the node's SMBIOS UUID, which warewulfd may check.
func readUUID() string {
	b, err := os.ReadFile("/sys/class/dmi/id/product_uuid")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// Summary says what an update changed, for the log.
func Summary(changed []string) string {
	if len(changed) == 0 {
		return "nothing changed"
	}
	return fmt.Sprintf("%d changed: %s", len(changed), strings.Join(changed, " "))
}
