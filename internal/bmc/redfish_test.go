package bmc

import (
	"context"
	"strings"
	"testing"

	"github.com/warewulf-ng/warewulf/internal/node"
	"github.com/warewulf-ng/warewulf/internal/testenv"
)

func TestRedfishPower(t *testing.T) {
	svc := testenv.StartRedfish(t, "root", "calvin")
	target := func(name, pass string, tags map[string]string) Target {
		tg, err := NewTarget(&node.Node{Name: name, Conf: node.Conf{Ipmi: &node.Ipmi{
			Ipaddr: svc.Host, Port: svc.Port, Interface: Redfish, UserName: "root", Password: pass, Tags: tags,
		}}}, "/x")
		if err != nil {
			t.Fatal(err)
		}
		return tg
	}
	good := target("n1", "calvin", map[string]string{"cacert": svc.CAFile})
	ctx := context.Background()
	if r, err := Power(ctx, good, Status); err != nil || r.Power != "off" {
		t.Fatalf("status: %+v %v", r, err)
	}
	for _, a := range []Action{On, Cycle, Reset, Soft, Off} {
		if _, err := Power(ctx, good, a); err != nil {
			t.Fatalf("%s: %v", a, err)
		}
	}
	if got := strings.Join(svc.Resets(), ","); got != "On,PowerCycle,ForceRestart,GracefulShutdown,ForceOff" {
		t.Errorf("reset types sent: %s", got)
	}
	svc.SetPower("On")
	if r, err := Power(ctx, good, Status); err != nil || r.Power != "on" {
		t.Errorf("status: %+v %v", r, err)
	}

	res := Each(ctx, []Target{
		target("n2", "wrong", map[string]string{"cacert": svc.CAFile}),
		target("n3", "calvin", nil), // the test CA is not among the system's roots
		target("n4", "calvin", map[string]string{"insecure": "true"}),
	}, 8, func(ctx context.Context, t Target) (Reply, error) { return Power(ctx, t, Status) })
	if !strings.Contains(res[0].Error, "wrong username or password") || strings.Contains(res[0].Error, "wrong\"") {
		t.Errorf("wrong password: %+v", res[0])
	}
	if res[1].Err == nil || !strings.Contains(res[1].Error, "certificate") {
		t.Errorf("unknown certificate: %+v", res[1])
	}
	if res[2].Err != nil || res[2].Power != "on" {
		t.Errorf("insecure: %+v", res[2])
	}
	if _, err := Sensors(ctx, good, false); err == nil {
		t.Error("sensors over redfish did not fail")
	}
	if line, _ := PowerCommand(good, On); !strings.Contains(line, `"ResetType":"On"`) || strings.Contains(line, "calvin") {
		t.Errorf("--show: %s", line)
	}
}
