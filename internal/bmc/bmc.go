// Package bmc drives the baseboard management controllers of nodes: power
// control and status, sensors and the serial-over-LAN console. IPMI v2.0
// (lanplus, or v1.5 lan) is spoken from Go, so a thousand BMCs cost a
// thousand UDP sessions rather than a thousand ipmitool processes. Redfish
// (`ipmi interface: redfish`) covers power over HTTPS. A node whose `ipmi
// template` names a site's own template gets upstream Warewulf's behaviour:
// the template renders a shell command, which runs.
package bmc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/warewulf-ng/warewulf/internal/node"
)

// Action is what `wwctl power` asks of a BMC.
type Action string

// The power actions, named as the `wwctl power` subcommands.
const (
	On     Action = "on"
	Off    Action = "off"
	Cycle  Action = "cycle"
	Reset  Action = "reset"
	Soft   Action = "soft"
	Status Action = "status"
)

// Actions lists the power actions in the order help shows them.
var Actions = []Action{On, Off, Cycle, Reset, Soft, Status}

// DefaultTemplate is the template nodes.conf names for upstream's stock
// ipmitool commands. This package speaks those commands itself.
const DefaultTemplate = "ipmitool.tmpl"

// Redfish is the `ipmi interface` value that selects Redfish.
const Redfish = "redfish"

// Target is one node's BMC, as its merged nodes.conf record describes it.
type Target struct {
	Node string
	node.Ipmi
	// TemplateFile is the site template to run, resolved to a path; empty
	// for the built-in IPMI and Redfish drivers.
	TemplateFile string
}

// NewTarget describes the BMC of a merged node. templateDir is where
// relative `ipmi template` names are found. It fails, naming the value,
// when the node has no BMC address or a bad setting.
func NewTarget(n *node.Node, templateDir string) (Target, error) {
	t := Target{Node: n.Name}
	if n.Ipmi != nil {
		t.Ipmi = *n.Ipmi
	}
	if t.Ipaddr == "" {
		return t, errors.New("no ipmi ipaddr")
	}
	if t.Port != "" {
		if p, err := strconv.Atoi(t.Port); err != nil || p < 1 || p > 65535 {
			return t, fmt.Errorf("ipmi port %q is not a port number", t.Port)
		}
	}
	switch t.Interface {
	case "", "lan", "lanplus", Redfish:
	default:
		if t.Template == "" || t.Template == DefaultTemplate {
			return t, fmt.Errorf("ipmi interface %q is not lan, lanplus or %s", t.Interface, Redfish)
		}
	}
	if t.Template != "" && t.Template != DefaultTemplate && t.Interface != Redfish {
		t.TemplateFile = t.Template
		if !filepath.IsAbs(t.TemplateFile) {
			t.TemplateFile = filepath.Join(templateDir, t.Template)
		}
	}
	return t, nil
}

// Addr is the BMC's host:port for the driver in use.
func (t Target) Addr() string {
	return net.JoinHostPort(t.Ipaddr, strconv.Itoa(t.port()))
}

func (t Target) port() int {
	if p, err := strconv.Atoi(t.Port); err == nil {
		return p
	}
	if t.Interface == Redfish {
		return 443
	}
	return 623
}

// Reply is what a BMC answered.
type Reply struct {
	// Power is "on" or "off" after a status query, else empty.
	Power string `json:"power,omitempty"`
	// Sensors after a sensors query.
	Sensors []Sensor `json:"sensors,omitempty"`
	// Output is what a site template's command printed, or a note on the
	// action taken.
	Output string `json:"output,omitempty"`
}

// Sensor is one sensor reading.
type Sensor struct {
	Name    string `json:"name"`
	Reading string `json:"reading"`
	Unit    string `json:"unit,omitempty"`
	Status  string `json:"status"`
	// With --full: the sensor type and its thresholds.
	Type       string            `json:"type,omitempty"`
	Thresholds map[string]string `json:"thresholds,omitempty"`
}

// Timeout bounds one node's whole exchange with its BMC, so a node that
// never answers costs its own slot in the fanout and no more.
var Timeout = 30 * time.Second

// Power runs a power action on one BMC.
func Power(ctx context.Context, t Target, a Action) (Reply, error) {
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	switch {
	case t.TemplateFile != "":
		out, err := runTemplate(ctx, t, powerCmd[a])
		return Reply{Output: out}, err
	case t.Interface == Redfish:
		return redfishPower(ctx, t, a)
	default:
		return ipmiPower(ctx, t, a)
	}
}

// Sensors reads one BMC's sensors; full adds types and thresholds.
func Sensors(ctx context.Context, t Target, full bool) (Reply, error) {
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	switch {
	case t.TemplateFile != "":
		cmd := "SDRList"
		if full {
			cmd = "SensorList"
		}
		out, err := runTemplate(ctx, t, cmd)
		return Reply{Output: out}, err
	case t.Interface == Redfish:
		return Reply{}, errors.New("sensors are not read over redfish; use lanplus")
	default:
		return ipmiSensors(ctx, t, full)
	}
}

// powerCmd names each action as upstream's templates see it in .Cmd.
var powerCmd = map[Action]string{
	On: "PowerOn", Off: "PowerOff", Cycle: "PowerCycle",
	Reset: "PowerReset", Soft: "PowerSoft", Status: "PowerStatus",
}

// Result is one node's outcome in a fanout.
type Result struct {
	Node  string `json:"node"`
	Reply        // inline in JSON
	Err   error  `json:"-"`
	Error string `json:"error,omitempty"`
}

// Each runs fn for every target, at most fanout at a time, and returns the
// results in target order. A failing node fails alone.
func Each(ctx context.Context, targets []Target, fanout int, fn func(context.Context, Target) (Reply, error)) []Result {
	if fanout < 1 {
		fanout = 1
	}
	out := make([]Result, len(targets))
	sem := make(chan struct{}, fanout)
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			r, err := fn(ctx, t)
			out[i] = Result{Node: t.Node, Reply: r, Err: err}
			if err != nil {
				out[i].Error = OneLine(err)
			}
		}()
	}
	wg.Wait()
	return out
}

// OneLine squeezes an error (libraries return some over several lines)
// into one line.
func OneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}
