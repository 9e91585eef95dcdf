package bmc

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig/v3"
)

// templateData is what an `ipmi template` sees, with upstream's field names:
// the node's ipmi settings, .Cmd (PowerOn, PowerOff, PowerCycle, PowerReset,
// PowerSoft, PowerStatus, SDRList, SensorList, Console) and .ShowOnly.
type templateData struct {
	Ipaddr, Netmask, Gateway, Port string
	UserName, Password, Interface  string
	EscapeChar, Template           string
	Write                          writeFlag
	Tags                           map[string]string
	Cmd                            string
	ShowOnly                       bool
}

// writeFlag prints as true/false and has upstream's .Bool method.
type writeFlag bool

func (w writeFlag) Bool() bool     { return bool(w) }
func (w writeFlag) String() string { return fmt.Sprint(bool(w)) }

//go:embed ipmitool.tmpl
var ipmitoolTemplate string

// Command renders the shell command for cmd (a .Cmd name) from the node's
// site template, or, for the built-in driver, the ipmitool command that
// does the same, as upstream's stock template writes it (password
// included: --show is for the admin who can read nodes.conf anyway).
func Command(t Target, cmd string) (string, error) {
	if t.Interface == Redfish {
		return redfishShow(t, cmd), nil
	}
	text, name := ipmitoolTemplate, DefaultTemplate
	d := data(t, cmd)
	if t.TemplateFile != "" {
		b, err := os.ReadFile(t.TemplateFile)
		if err != nil {
			return "", fmt.Errorf("ipmi template %q: %w", t.Template, err)
		}
		text, name = string(b), t.TemplateFile
	}
	tmpl, err := template.New(name).Funcs(sprig.TxtFuncMap()).Option("missingkey=zero").Parse(text)
	if err != nil {
		return "", fmt.Errorf("ipmi template %q: %w", name, err)
	}
	var b bytes.Buffer
	if err := tmpl.Execute(&b, d); err != nil {
		return "", fmt.Errorf("ipmi template %q: %w", name, err)
	}
	return strings.TrimSpace(b.String()), nil
}

func data(t Target, cmd string) templateData {
	return templateData{
		Ipaddr: t.Ipaddr, Netmask: t.Netmask, Gateway: t.Gateway, Port: t.Port,
		UserName: t.UserName, Password: t.Password, Interface: t.Interface,
		EscapeChar: t.EscapeChar, Template: t.Template, Write: writeFlag(t.Write.Bool()),
		Tags: t.Tags, Cmd: cmd,
	}
}

// PowerCommand is Command for a power action.
func PowerCommand(t Target, a Action) (string, error) { return Command(t, powerCmd[a]) }

// SensorsCommand is Command for a sensor listing.
func SensorsCommand(t Target, full bool) (string, error) {
	if full {
		return Command(t, "SensorList")
	}
	return Command(t, "SDRList")
}

// runTemplate runs the site template's command for cmd with /bin/sh, as
// upstream does, and returns its output.
func runTemplate(ctx context.Context, t Target, cmd string) (string, error) {
	line, err := Command(t, cmd)
	if err != nil {
		return "", err
	}
	if line == "" {
		return "", fmt.Errorf("ipmi template %q renders no command for %s", t.Template, cmd)
	}
	out, err := exec.CommandContext(ctx, "/bin/sh", "-c", line).CombinedOutput()
	text := strings.TrimSpace(string(out))
	if err != nil {
		if text == "" {
			return "", fmt.Errorf("ipmi template %q: %w", t.Template, err)
		}
		return text, fmt.Errorf("ipmi template %q: %w: %s", t.Template, err, strings.Join(strings.Fields(text), " "))
	}
	return text, nil
}
