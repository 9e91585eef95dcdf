package bmc

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/warewulf-ng/warewulf/internal/node"
	"github.com/warewulf-ng/warewulf/internal/testenv"
)

func freeUDPPort(t testing.TB) int {
	t.Helper()
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

func simTarget(t testing.TB, b *testenv.BMC, password string) Target {
	t.Helper()
	n := &node.Node{Name: "n1", Conf: node.Conf{Ipmi: &node.Ipmi{
		Ipaddr: b.Addr, Port: itoa(b.Port), UserName: b.User, Password: password, Interface: "lanplus",
	}}}
	tg, err := NewTarget(n, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return tg
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestPowerOverIPMI(t *testing.T) {
	b := testenv.StartBMC(t, testenv.BMCOptions{Addr: "127.0.0.1", Port: freeUDPPort(t), User: "admin", Password: "s3cret"})
	tg := simTarget(t, b, "s3cret")
	ctx := context.Background()
	r, err := Power(ctx, tg, Status)
	if err != nil || r.Power != "off" {
		t.Fatalf("status of a fresh BMC: %+v %v, want off", r, err)
	}
	if _, err := Power(ctx, tg, On); err != nil {
		t.Fatal(err)
	}
	if b.Power() != "on" {
		t.Fatalf("after power on the BMC's chassis is %s", b.Power())
	}
	if r, err := Power(ctx, tg, Status); err != nil || r.Power != "on" {
		t.Fatalf("status after on: %+v %v", r, err)
	}
	if _, err := Power(ctx, tg, Off); err != nil {
		t.Fatal(err)
	}
	if b.Power() != "off" {
		t.Fatalf("after power off the BMC's chassis is %s", b.Power())
	}
	// IPMI v1.5 (ipmi interface: lan) against the same BMC.
	lan := tg
	lan.Interface = "lan"
	if r, err := Power(ctx, lan, Status); err != nil || r.Power != "off" {
		t.Errorf("status over lan (IPMI v1.5): %+v %v", r, err)
	}
	for _, a := range []Action{Cycle, Reset, Soft} {
		if r, err := Power(ctx, tg, a); err != nil || r.Output != string(a)+" requested" {
			t.Errorf("%s: %+v %v", a, r, err)
		}
	}
}

func TestPowerErrorsPerNode(t *testing.T) {
	b := testenv.StartBMC(t, testenv.BMCOptions{Addr: "127.0.0.1", Port: freeUDPPort(t), User: "admin", Password: "s3cret"})
	good := simTarget(t, b, "s3cret")
	wrong := simTarget(t, b, "nope")
	wrong.Node = "n2"
	refused := good
	refused.Node, refused.Port = "n3", itoa(freeUDPPort(t)) // nothing listens there
	// A BMC that takes packets and never answers.
	quiet, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer quiet.Close()
	silent := good
	silent.Node, silent.Port = "n4", itoa(quiet.LocalAddr().(*net.UDPAddr).Port)
	old := ipmiRetries
	ipmiRetries = 1
	defer func() { ipmiRetries = old }()
	start := time.Now()
	res := Each(context.Background(), []Target{good, wrong, refused, silent}, 50, func(ctx context.Context, t Target) (Reply, error) {
		return Power(ctx, t, Status)
	})
	if res[0].Err != nil || res[0].Power != "off" {
		t.Errorf("good node: %+v", res[0])
	}
	if res[1].Err == nil || !strings.Contains(res[1].Error, "wrong ipmi username or password") {
		t.Errorf("wrong password: %+v", res[1])
	}
	if res[2].Err == nil || !strings.Contains(res[2].Error, "connection refused") {
		t.Errorf("no BMC: %+v", res[2])
	}
	if res[3].Err == nil || !strings.Contains(res[3].Error, "no answer") {
		t.Errorf("silent BMC: %+v", res[3])
	}
	for _, r := range res {
		if strings.Contains(r.Error, "\n") || strings.Contains(r.Error, "s3cret") || strings.Contains(r.Error, "nope") {
			t.Errorf("%s: error is not one line without the password: %q", r.Node, r.Error)
		}
	}
	t.Logf("four nodes, one silent, in %s", time.Since(start))
}

func TestSensorsOverIPMI(t *testing.T) {
	b := testenv.StartBMC(t, testenv.BMCOptions{Addr: "127.0.0.1", Port: freeUDPPort(t), User: "admin", Password: "s3cret", Sensors: true})
	r, err := Sensors(context.Background(), simTarget(t, b, "s3cret"), true)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Sensor{}
	for _, s := range r.Sensors {
		got[s.Name] = s
	}
	if s := got["CPU Temp"]; s.Reading != "42.000" || s.Unit != "degrees C" || s.Status != "ok" || s.Type != "Temperature" {
		t.Errorf("CPU Temp: %+v", s)
	}
	if s := got["Fan 1"]; s.Reading != "3000.000" || s.Unit != "RPM" {
		t.Errorf("Fan 1: %+v", s)
	}
	if len(got) != 2 {
		t.Errorf("sensors: %+v", r.Sensors)
	}
}

func TestSiteTemplate(t *testing.T) {
	dir := t.TempDir()
	tmpl := `{{ if eq .Cmd "PowerStatus" }}echo {{ .Ipaddr }} {{ .UserName }} {{ .Tags.rack }} is on{{ else }}echo {{ .Cmd }} {{ .Write }}; exit 3{{ end }}`
	if err := os.WriteFile(filepath.Join(dir, "site.tmpl"), []byte(tmpl), 0o644); err != nil {
		t.Fatal(err)
	}
	yes := true
	n := &node.Node{Name: "n1", Conf: node.Conf{Ipmi: &node.Ipmi{Ipaddr: "10.9.9.9", UserName: "root", Template: "site.tmpl", Write: node.WWbool(strconv.FormatBool(yes)), Tags: map[string]string{"rack": "r7"}}}}
	tg, err := NewTarget(n, dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Power(context.Background(), tg, Status)
	if err != nil || r.Output != "10.9.9.9 root r7 is on" {
		t.Errorf("status through the site template: %+v %v", r, err)
	}
	_, err = Power(context.Background(), tg, On)
	if err == nil || !strings.Contains(err.Error(), "PowerOn true") {
		t.Errorf("failing template command: %v", err)
	}
	if line, _ := PowerCommand(tg, Status); line != "echo 10.9.9.9 root r7 is on" {
		t.Errorf("--show: %q", line)
	}
}

func TestShowDefault(t *testing.T) {
	n := &node.Node{Name: "n1", Conf: node.Conf{Ipmi: &node.Ipmi{Ipaddr: "10.0.0.5", UserName: "admin", Password: "pw", Port: "6230", EscapeChar: "&", Template: DefaultTemplate}}}
	tg, err := NewTarget(n, "/nowhere")
	if err != nil {
		t.Fatal(err)
	}
	line, err := PowerCommand(tg, Status)
	want := `ipmitool -e "&" -p 6230 -H 10.0.0.5 -U "admin" -P "pw" chassis power status`
	if err != nil || line != want {
		t.Errorf("got  %q\nwant %q (%v)", line, want, err)
	}
}

func TestNewTargetErrors(t *testing.T) {
	for _, c := range []struct {
		ipmi *node.Ipmi
		want string
	}{
		{nil, "no ipmi ipaddr"},
		{&node.Ipmi{Ipaddr: "10.0.0.1", Port: "70000"}, `ipmi port "70000"`},
		{&node.Ipmi{Ipaddr: "10.0.0.1", Interface: "serial"}, `ipmi interface "serial"`},
	} {
		_, err := NewTarget(&node.Node{Name: "n1", Conf: node.Conf{Ipmi: c.ipmi}}, "/x")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.ipmi, err, c.want)
		}
	}
}

// TestShowAsUpstream: --show for the stock template prints what upstream's
// ipmitool.tmpl renders.
func TestShowAsUpstream(t *testing.T) {
	n := &node.Node{Name: "n01", Conf: node.Conf{Ipmi: &node.Ipmi{Ipaddr: "10.10.10.10", UserName: "admin", Password: "admin", Template: DefaultTemplate}}}
	tg, err := NewTarget(n, "/nowhere")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		got  func() (string, error)
		want string
	}{
		{func() (string, error) { return PowerCommand(tg, On) }, `ipmitool -H 10.10.10.10 -U "admin" -P "admin" chassis power on`},
		{func() (string, error) { return PowerCommand(tg, Soft) }, `ipmitool -H 10.10.10.10 -U "admin" -P "admin" chassis power soft`},
		{func() (string, error) { return SensorsCommand(tg, false) }, `ipmitool -H 10.10.10.10 -U "admin" -P "admin" sdr list`},
		{func() (string, error) { return SensorsCommand(tg, true) }, `ipmitool -H 10.10.10.10 -U "admin" -P "admin" sensor list`},
		{func() (string, error) { return Command(tg, "Console") }, `ipmitool -H 10.10.10.10 -U "admin" -P "admin" sol activate`},
	} {
		if got, err := c.got(); err != nil || got != c.want {
			t.Errorf("got %q (%v), want %q", got, err, c.want)
		}
	}
}
