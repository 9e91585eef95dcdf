package warewulfd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"reflect"
	"slices"
	"strings"
	"syscall"

	"github.com/warewulf-ng/warewulf/internal/config"
)

// apply brings the sockets and services Run started in line with cfg,
// touching only what changed, and logs one line per component it moves,
// starts, stops or restarts. Called with reloadMu held; before Run serves
// (and after it shuts down) it does nothing.
func (s *Server) apply(cfg *config.Config) error {
	if s.runCtx == nil {
		return nil
	}
	err := errors.Join(s.moveHTTP(cfg), s.moveTFTP(cfg))
	s.restart("dhcp", &s.dhcp, cfg, s.wantsDHCP(cfg), dhcpSettings, s.runDHCP)
	s.restart("router solicitation answers", &s.ndp, cfg, s.wantsNDP(cfg), ndpSettings, s.runNDP)
	s.applied = cfg
	return err
}

// moveHTTP listens on the new address before it lets go of the old one, so
// a failure leaves HTTP where it was. The old listener is closed; the
// connections it accepted stay with the shared http.Server and finish
// their requests and keep-alive exchanges there.
func (s *Server) moveHTTP(cfg *config.Config) error {
	addr := s.httpListenAddr(cfg)
	if addr == s.httpAddr {
		return nil
	}
	old := s.httpLn
	ln, err := listenTCP(addr)
	if err != nil {
		err = fmt.Errorf("http: cannot listen on %s, still serving on %s: %w%s", addr, old.Addr(), err, portHint(err, old.Addr(), addr))
		s.log.Errorf("warewulfd: %v", err)
		return err
	}
	s.httpLn, s.httpAddr = ln, addr
	s.serveHTTP(ln)
	old.Close()
	s.log.Infof("warewulfd: http moved from %s to %s; connections already open on %s finish there", old.Addr(), ln.Addr(), old.Addr())
	return nil
}

// moveTFTP starts, stops or moves the TFTP server. A transfer runs on a
// socket of its own, so one in flight finishes after its server stopped.
func (s *Server) moveTFTP(cfg *config.Config) error {
	addr := s.tftpListenAddr(cfg)
	if addr == s.tftpAddr {
		return nil
	}
	var oldAddr net.Addr
	if s.tftpConn != nil {
		oldAddr = s.tftpConn.LocalAddr()
	}
	var pc net.PacketConn
	if addr != "" {
		var err error
		if pc, err = net.ListenPacket("udp", addr); err != nil {
			still := "TFTP stays off"
			if oldAddr != nil {
				still = "still serving on " + oldAddr.String()
			}
			err = fmt.Errorf("tftp: cannot listen on %s, %s: %w%s", addr, still, err, portHint(err, oldAddr, addr))
			s.log.Errorf("warewulfd: %v", err)
			return err
		}
	}
	if old := s.tftpSrv; old != nil {
		s.tftpConn.Close() // free the address now; Shutdown waits for the transfers
		s.draining.Add(1)
		go func() {
			defer s.draining.Done()
			old.Shutdown()
		}()
	}
	s.tftpSrv, s.tftpConn, s.tftpAddr = nil, pc, addr
	switch {
	case pc == nil:
		s.log.Infof("warewulfd: tftp stopped on %s (tftp: enabled: false); transfers in flight finish", oldAddr)
	case oldAddr == nil:
		s.serveTFTP()
		s.log.Infof("warewulfd: tftp started on %s serving %s (tftp: enabled: true)", pc.LocalAddr(), cfg.IpxeSourceDir())
	default:
		s.serveTFTP()
		s.log.Infof("warewulfd: tftp moved from %s to %s; transfers in flight finish", oldAddr, pc.LocalAddr())
	}
	return nil
}

// portHint explains the one bind failure that moving to another address
// on the same port can cause: the socket being replaced holds the port on
// the wildcard address (or the new address is the wildcard).
func portHint(err error, old net.Addr, addr string) string {
	if old == nil || !errors.Is(err, syscall.EADDRINUSE) {
		return ""
	}
	_, oldPort, _ := net.SplitHostPort(old.String())
	if _, port, _ := net.SplitHostPort(addr); port != oldPort {
		return ""
	}
	return " (the current socket holds that port; restart warewulfd to move to another address on the same port)"
}

// service is a background server (DHCP, NDP) that a reload can restart.
type service struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func (s *Server) startService(cfg *config.Config, run func(context.Context, *config.Config)) *service {
	ctx, cancel := context.WithCancel(s.runCtx)
	sv := &service{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(sv.done)
		run(ctx, cfg)
	}()
	return sv
}

// stop cancels the service and waits until it has returned, its sockets
// closed, so that a new one can bind the same ports.
func (sv *service) stop() {
	if sv != nil {
		sv.cancel()
		<-sv.done
	}
}

// ended reports whether the service has returned on its own (an error,
// logged): an interface missing when it started, for example.
func (sv *service) ended() bool {
	select {
	case <-sv.done:
		return true
	default:
		return false
	}
}

// restart starts, stops or restarts one service so that it runs exactly
// when want, with the settings of cfg; settings names what the service
// reads of warewulf.conf. A service that ended on an error is tried again.
func (s *Server) restart(name string, sv **service, cfg *config.Config, want bool, settings func(*config.Config) map[string]any, run func(context.Context, *config.Config)) {
	why := ""
	if changed := changedSettings(settings(s.applied), settings(cfg)); len(changed) > 0 {
		why = " (" + strings.Join(changed, ", ") + " changed)"
	}
	switch {
	case *sv == nil && want:
		*sv = s.startService(cfg, run)
		s.log.Infof("warewulfd: %s started%s", name, why)
	case *sv != nil && !want:
		(*sv).stop()
		*sv = nil
		s.log.Infof("warewulfd: %s stopped%s", name, why)
	case *sv != nil && (why != "" || (*sv).ended()):
		if why == "" {
			why = " (it had stopped on an error; trying again)"
		}
		(*sv).stop()
		*sv = s.startService(cfg, run)
		s.log.Infof("warewulfd: %s restarted%s", name, why)
	}
}

func (s *Server) wantsDHCP(cfg *config.Config) bool {
	return !s.opts.NoDHCP && cfg.DHCP.Enabled && cfg.DHCP.Server == "builtin"
}

func (s *Server) wantsNDP(cfg *config.Config) bool {
	return !s.opts.NoDHCP && cfg.Warewulf.AnswersRouterSolicitations()
}

// dhcpSettings is what the built-in DHCP server reads of warewulf.conf,
// by key. It reads nodes.conf per packet, so nodes need no restart.
func dhcpSettings(cfg *config.Config) map[string]any {
	m := sectionSettings("dhcp", cfg.DHCP)
	m["ipaddr"], m["netmask"] = cfg.Ipaddr, cfg.Netmask
	m["warewulf: port"] = cfg.Warewulf.Port // in the iPXE script URL it hands out
	m["tftp: ipxe"] = cfg.TFTP.IPXE
	m["paths: localstatedir"] = cfg.LeaseFile()
	return m
}

// ndpSettings is what answering router solicitations reads.
func ndpSettings(cfg *config.Config) map[string]any {
	return map[string]any{
		"warewulf: answer router solicitations": cfg.Warewulf.AnswersRouterSolicitations(),
		"dhcp: interfaces":                      cfg.DHCP.Interfaces,
		"ipaddr":                                cfg.Ipaddr,
	}
}

// sectionSettings maps "section: key" to each field of a warewulf.conf
// section, by its YAML name.
func sectionSettings(section string, v any) map[string]any {
	rv := reflect.ValueOf(v)
	m := map[string]any{}
	for i := 0; i < rv.NumField(); i++ {
		f := rv.Type().Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" {
			name = "other keys" // the inline map of unknown keys
		}
		m[section+": "+name] = rv.Field(i).Interface()
	}
	return m
}

// changedSettings lists, sorted, the keys whose values differ.
func changedSettings(a, b map[string]any) []string {
	var out []string
	for k, v := range b {
		if !reflect.DeepEqual(a[k], v) {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}
