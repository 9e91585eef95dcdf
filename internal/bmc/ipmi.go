package bmc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/bougou/go-ipmi/pkg/client"
	"github.com/bougou/go-ipmi/pkg/command/chassis"
	"github.com/bougou/go-ipmi/pkg/types"
)

// cipherSuites are tried in this order: 17 (SHA-256, AES) where the BMC has
// it, then 3 (SHA-1, AES), which older BMCs and OpenIPMI's ipmi_sim speak
// alone. Asking the BMC for its list first (Get Channel Cipher Suites)
// costs a timeout on BMCs that do not answer it; an Open Session with a
// suite the BMC lacks is refused at once.
var cipherSuites = []types.CipherSuiteID{types.CipherSuiteID17, types.CipherSuiteID3}

// lastSuite is the cipher suite the last BMC agreed to. A cluster's BMCs
// are mostly alike, so the next one is offered it first: against BMCs
// that speak suite 3 only, that saves two round trips per BMC.
var lastSuite atomic.Int32

func suiteOrder() []types.CipherSuiteID {
	first := types.CipherSuiteID(lastSuite.Load())
	out := []types.CipherSuiteID{}
	if first != 0 {
		out = append(out, first)
	}
	for _, s := range cipherSuites {
		if s != first {
			out = append(out, s)
		}
	}
	return out
}

// ipmiTimeout and ipmiRetries are per UDP exchange: ipmitool's lanplus
// defaults (1 s, 4 retries).
var (
	ipmiTimeout = time.Second
	ipmiRetries = 4
)

// udpDialer makes the UDP socket of a session (go-ipmi's proxy.Dialer).
type udpDialer interface {
	Dial(network, addr string) (net.Conn, error)
}

// connect opens an authenticated IPMI session to the target's BMC; dial,
// when not nil, makes its socket.
func connect(ctx context.Context, t Target, dial udpDialer) (*client.Client, error) {
	if len(t.UserName) > 16 {
		return nil, fmt.Errorf("ipmi username %q is longer than 16 characters", t.UserName)
	}
	suites := suiteOrder()
	if t.Interface == "lan" {
		suites = suites[:1] // no cipher suites in IPMI v1.5
	}
	var errs []string
	for _, suite := range suites {
		c, err := client.NewClient(t.Ipaddr, t.port(), t.UserName, t.Password)
		if err != nil {
			return nil, err
		}
		c.WithTimeout(ipmiTimeout).WithRetry(ipmiRetries)
		if dial != nil {
			c.WithUDPProxy(dial)
		}
		if t.Interface == "lan" {
			c.WithInterface(client.InterfaceLan)
		} else {
			c.WithCipherSuiteID(suite)
		}
		err = c.Connect(ctx)
		if err == nil {
			if t.Interface != "lan" {
				lastSuite.Store(int32(suite))
			}
			return c, nil
		}
		switch {
		case ctx.Err() != nil:
			return nil, fmt.Errorf("bmc %s: no answer within %s", t.Addr(), Timeout)
		case isTimeout(err):
			return nil, fmt.Errorf("bmc %s: no answer after %d tries of %s", t.Addr(), ipmiRetries+1, ipmiTimeout)
		case errors.Is(err, syscall.ECONNREFUSED) || strings.Contains(err.Error(), "connection refused"):
			return nil, fmt.Errorf("bmc %s: connection refused (no BMC listens there)", t.Addr())
		case errors.Is(err, client.ErrRAKPAuthentication) || strings.Contains(err.Error(), client.ErrRAKPAuthentication.Error()):
			// The suite is fine; the credentials are not. Trying more
			// suites would only count more failures against the account.
			return nil, fmt.Errorf("bmc %s: wrong ipmi username or password (user %q)", t.Addr(), t.UserName)
		case strings.Contains(err.Error(), "Get Channel Authentication Capabilities"):
			return nil, fmt.Errorf("bmc %s: %s", t.Addr(), OneLine(err))
		}
		errs = append(errs, fmt.Sprintf("cipher suite %d: %s", suite, OneLine(err)))
	}
	if t.Interface == "lan" {
		return nil, fmt.Errorf("bmc %s: %s", t.Addr(), strings.Join(errs, "; "))
	}
	return nil, fmt.Errorf("bmc %s: no common cipher suite (%s)", t.Addr(), strings.Join(errs, "; "))
}

func isTimeout(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	return errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "i/o timeout") || strings.Contains(err.Error(), "before deadline")
}

// session runs fn in an IPMI session and closes the session whatever fn did.
func session(ctx context.Context, t Target, fn func(*client.Client) error) error {
	return sessionVia(ctx, t, nil, fn)
}

// sessionVia is session over a socket dial makes (nil: the usual one).
func sessionVia(ctx context.Context, t Target, dial udpDialer, fn func(*client.Client) error) error {
	c, err := connect(ctx, t, dial)
	if err != nil {
		return err
	}
	defer func() {
		// Close sends Close Session; give it its own short deadline so a
		// BMC that went quiet does not hold the slot.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_ = c.Close(cctx)
	}()
	if err := fn(c); err != nil {
		return fmt.Errorf("bmc %s: %s", t.Addr(), OneLine(err))
	}
	return nil
}

var chassisControl = map[Action]chassis.ChassisControl{
	On:    chassis.ChassisControlPowerUp,
	Off:   chassis.ChassisControlPowerDown,
	Cycle: chassis.ChassisControlPowerCycle,
	Reset: chassis.ChassisControlHardReset,
	Soft:  chassis.ChassisControlSoftShutdown,
}

func ipmiPower(ctx context.Context, t Target, a Action) (Reply, error) {
	var r Reply
	err := session(ctx, t, func(c *client.Client) error {
		if a == Status {
			st, err := c.GetChassisStatus(ctx)
			if err != nil {
				return err
			}
			r.Power = onOff(st.PowerIsOn)
			return nil
		}
		ctl, ok := chassisControl[a]
		if !ok {
			return fmt.Errorf("power action %q is not one of on, off, cycle, reset, soft, status", a)
		}
		if _, err := c.ChassisControl(ctx, ctl); err != nil {
			return err
		}
		r.Output = string(a) + " requested"
		return nil
	})
	return r, err
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

func ipmiSensors(ctx context.Context, t Target, full bool) (Reply, error) {
	var r Reply
	err := session(ctx, t, func(c *client.Client) error {
		list, err := c.GetSensors(ctx)
		if err != nil {
			return err
		}
		for _, s := range list {
			if s == nil {
				continue
			}
			out := Sensor{Name: s.Name, Reading: reading(s), Status: s.Status()}
			if s.IsThreshold() {
				out.Unit = s.SensorUnit.String()
			}
			if full {
				out.Type = s.SensorType.String()
				if s.IsThreshold() {
					out.Thresholds = map[string]string{}
					for name, th := range map[string]types.SensorThresholdType{
						"lnr": types.SensorThresholdType_LNR, "lcr": types.SensorThresholdType_LCR,
						"lnc": types.SensorThresholdType_LNC, "unc": types.SensorThresholdType_UNC,
						"ucr": types.SensorThresholdType_UCR, "unr": types.SensorThresholdType_UNR,
					} {
						out.Thresholds[name] = s.ThresholdStr(th)
					}
				}
			}
			r.Sensors = append(r.Sensors, out)
		}
		return nil
	})
	return r, err
}

// reading is the sensor's value as `ipmitool sdr list` prints it.
func reading(s *types.Sensor) string {
	switch {
	case s.NotPresent:
		return "no reading (not present)"
	case s.ScanningDisabled:
		return "no reading (scanning disabled)"
	case !s.IsReadingValid():
		return "na"
	case s.IsThreshold():
		return fmt.Sprintf("%.3f", s.Value)
	default:
		return fmt.Sprintf("0x%02x", s.Raw)
	}
}
