package bmc

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
)

// Redfish power: the first (or only) ComputerSystem of the service, its
// PowerState, and its ComputerSystem.Reset action. HTTP basic
// authentication, so every request stands alone and nothing is left to log
// out of. The BMC's certificate is checked against the system's roots, or
// the CA file in the `cacert` ipmi tag; the `insecure` tag set to true skips
// the check (the password then goes to whoever answers at the address).

var resetType = map[Action]string{
	On: "On", Off: "ForceOff", Cycle: "PowerCycle", Reset: "ForceRestart", Soft: "GracefulShutdown",
}

type redfishClient struct {
	t    Target
	base string
	http *http.Client
}

func newRedfish(t Target) (*redfishClient, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if ca := t.Tags["cacert"]; ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, fmt.Errorf("ipmi tag cacert: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ipmi tag cacert %q holds no PEM certificate", ca)
		}
		tc.RootCAs = pool
	}
	if strings.EqualFold(t.Tags["insecure"], "true") {
		tc.InsecureSkipVerify = true
	}
	tr := &http.Transport{TLSClientConfig: tc, Proxy: nil}
	return &redfishClient{t: t, base: "https://" + t.Addr(), http: &http.Client{Transport: tr}}, nil
}

func (c *redfishClient) do(ctx context.Context, method, path string, body, into any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	req.SetBasicAuth(c.t.UserName, c.t.Password)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("redfish %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("redfish %s %s: %w", method, path, err)
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		return fmt.Errorf("redfish %s: wrong username or password (user %q)", c.t.Addr(), c.t.UserName)
	case resp.StatusCode >= 300:
		var e struct {
			Error struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		_ = json.Unmarshal(data, &e)
		return fmt.Errorf("redfish %s %s: %s %s", method, path, resp.Status, e.Error.Message)
	}
	if into == nil || len(data) == 0 {
		return nil
	}
	if err := json.Unmarshal(data, into); err != nil {
		return fmt.Errorf("redfish %s %s: %w", method, path, err)
	}
	return nil
}

type odataID struct {
	ID string `json:"@odata.id"`
}

// system finds the computer system's path.
func (c *redfishClient) system(ctx context.Context) (string, error) {
	var coll struct{ Members []odataID }
	if err := c.do(ctx, http.MethodGet, "/redfish/v1/Systems", nil, &coll); err != nil {
		return "", err
	}
	if len(coll.Members) == 0 || !strings.HasPrefix(coll.Members[0].ID, "/redfish/v1/") {
		return "", fmt.Errorf("redfish %s: no computer system listed", c.t.Addr())
	}
	return coll.Members[0].ID, nil
}

func redfishPower(ctx context.Context, t Target, a Action) (Reply, error) {
	c, err := newRedfish(t)
	if err != nil {
		return Reply{}, err
	}
	sys, err := c.system(ctx)
	if err != nil {
		return Reply{}, err
	}
	if a == Status {
		var s struct{ PowerState string }
		if err := c.do(ctx, http.MethodGet, sys, nil, &s); err != nil {
			return Reply{}, err
		}
		if s.PowerState == "" {
			return Reply{}, fmt.Errorf("redfish %s: %s has no PowerState", t.Addr(), sys)
		}
		return Reply{Power: strings.ToLower(s.PowerState)}, nil
	}
	rt, ok := resetType[a]
	if !ok {
		return Reply{}, errors.New("power action " + string(a) + " is not one of on, off, cycle, reset, soft, status")
	}
	// The reset target is named in the system resource; the standard path
	// is the fallback.
	var s struct {
		Actions map[string]struct {
			Target string `json:"target"`
		}
	}
	if err := c.do(ctx, http.MethodGet, sys, nil, &s); err != nil {
		return Reply{}, err
	}
	target := sys + "/Actions/ComputerSystem.Reset"
	if act, ok := s.Actions["#ComputerSystem.Reset"]; ok && strings.HasPrefix(act.Target, "/redfish/v1/") {
		target = act.Target
	}
	if err := c.do(ctx, http.MethodPost, target, map[string]string{"ResetType": rt}, nil); err != nil {
		return Reply{}, err
	}
	return Reply{Output: string(a) + " requested"}, nil
}

// redfishShow describes the request --show stands for.
func redfishShow(t Target, cmd string) string {
	for a, name := range powerCmd {
		if name == cmd {
			if a == Status {
				return fmt.Sprintf("GET https://%s/redfish/v1/Systems/<first member> (PowerState), user %q", t.Addr(), t.UserName)
			}
			return fmt.Sprintf("POST https://%s/redfish/v1/Systems/<first member>/Actions/ComputerSystem.Reset {\"ResetType\":%q}, user %q", t.Addr(), resetType[a], t.UserName)
		}
	}
	return fmt.Sprintf("%s is not available over redfish", cmd)
}
