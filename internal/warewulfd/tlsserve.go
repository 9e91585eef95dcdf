package warewulfd

import (
	"crypto/tls"
	"net"
	"path/filepath"
	"strconv"

	"github.com/warewulf-ng/warewulf/internal/config"
	"github.com/warewulf-ng/warewulf/internal/tlskeys"
)

// startTLS serves the same routes over HTTPS on `tls port` when `tls` is
// on, with the keys of `wwctl configure tls`. The HTTP server's Shutdown
// ends it too. Missing keys are logged and HTTPS stays off.
func (s *Server) startTLS(cfg *config.Config) {
	if !cfg.Warewulf.TLS {
		return
	}
	dir := cfg.TLSDir()
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, tlskeys.CertFile), filepath.Join(dir, tlskeys.KeyFile))
	if err != nil {
		s.log.Errorf("warewulfd: tls: %v (wwctl configure tls makes the keys); HTTPS is off", err)
		return
	}
	host, _, _ := net.SplitHostPort(s.httpLn.Addr().String())
	addr := net.JoinHostPort(host, strconv.Itoa(cfg.Warewulf.TLSPort))
	ln, err := listenTCP(addr)
	if err != nil {
		s.log.Errorf("warewulfd: tls: %v; HTTPS is off", err)
		return
	}
	s.tlsLn = ln
	srv := s.httpSrv
	go srv.Serve(tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}))
	s.log.Infof("warewulfd: https on %s", ln.Addr())
}

// TLSAddr is where HTTPS listens (nil when it is off).
func (s *Server) TLSAddr() net.Addr {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	if s.tlsLn == nil {
		return nil
	}
	return s.tlsLn.Addr()
}
