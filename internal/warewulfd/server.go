// Package warewulfd is the provisioning daemon: HTTP for iPXE scripts,
// kernels, images and overlays, TFTP for the iPXE binaries, the built-in
// DHCP server, node status and metrics, and live reload of its config.
package warewulfd

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"reflect"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pin/tftp/v3"
	"github.com/sirupsen/logrus"
	"golang.org/x/sync/singleflight"

	"github.com/warewulf-ng/warewulf/internal/config"
	"github.com/warewulf-ng/warewulf/internal/dhcp"
	"github.com/warewulf-ng/warewulf/internal/node"
)

// Options configure a Server. Either ConfigFile (watched and reloaded) or
// Config (used as is) must be set.
type Options struct {
	ConfigFile string
	Config     *config.Config
	// Provider finds built files; default Built{}.
	Provider Provider
	// HTTPAddr and TFTPAddr override the listen addresses derived from
	// warewulf.conf (listen address, port; TFTP on port 69).
	HTTPAddr, TFTPAddr string
	// PollInterval is how often nodes.conf and warewulf.conf are checked
	// for changes; default 1s.
	PollInterval time.Duration
	// Log receives one line per request; default the standard logger.
	Log *logrus.Logger
	// NoDHCP keeps the built-in DHCP server and the answers to IPv6 router
	// solicitations off whatever warewulf.conf says (tests).
	NoDHCP bool
}

// headerTimeout is how long a client has to send its request headers (a
// variable so tests need not wait for it).
var headerTimeout = 10 * time.Second

// Server is a running warewulfd.
type Server struct {
	opts   Options
	log    *logrus.Logger
	prov   Provider
	st     atomic.Pointer[state]
	stamps []fileStamp
	cache  artifactCache
	builds singleflight.Group
	// checked maps "kind\x00node" to the *node.DB its overlay was last
	// brought up to date against, so a changed nodes.conf rebuilds each
	// node's overlay once, on its next request.
	checked sync.Map
	status  statusBook
	metrics metrics
	ipxe    templateCache
	sndbufs sendBuffers

	discoverMu sync.Mutex
	reloadMu   sync.Mutex

	httpLn   net.Listener
	httpSrv  *http.Server
	tftpConn net.PacketConn
	tftpSrv  *tftp.Server
}

// New loads warewulf.conf and nodes.conf; it fails if either is broken.
func New(opts Options) (*Server, error) {
	if opts.ConfigFile == "" && opts.Config == nil {
		return nil, errors.New("warewulfd: no configuration")
	}
	if opts.Provider == nil {
		opts.Provider = Built{}
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = time.Second
	}
	if opts.Log == nil {
		opts.Log = logrus.StandardLogger()
	}
	s := &Server{opts: opts, log: opts.Log, prov: opts.Provider}
	st, err := loadState(opts.ConfigFile, opts.Config)
	if err != nil {
		return nil, err
	}
	s.st.Store(st)
	s.stamps = s.watchedFiles(st)
	s.loadStatus()
	return s, nil
}

func (s *Server) watchedFiles(st *state) []fileStamp {
	var files []fileStamp
	if s.opts.ConfigFile != "" {
		files = append(files, stampOf(s.opts.ConfigFile))
	}
	return append(files, stampOf(st.cfg.NodesConf()))
}

// Config returns the configuration in use.
func (s *Server) Config() *config.Config { return s.st.Load().cfg }

// Nodes returns the node database in use (the DHCP server asks per packet).
func (s *Server) Nodes() *node.DB { return s.st.Load().db }

// Listen opens the HTTP and (unless `tftp: enabled: false`) TFTP sockets.
func (s *Server) Listen() error {
	cfg := s.Config()
	addr := s.opts.HTTPAddr
	if addr == "" {
		addr = net.JoinHostPort(cfg.Warewulf.ListenAddress, strconv.Itoa(cfg.Warewulf.Port))
	}
	lc := net.ListenConfig{Control: tcpUserTimeout}
	ln, err := lc.Listen(context.Background(), "tcp", addr)
	if err != nil {
		return fmt.Errorf("http: %w", err)
	}
	s.httpLn = ln
	if cfg.TFTP.Enabled {
		taddr := s.opts.TFTPAddr
		if taddr == "" {
			taddr = net.JoinHostPort(cfg.Warewulf.ListenAddress, "69")
		}
		pc, err := net.ListenPacket("udp", taddr)
		if err != nil {
			ln.Close()
			return fmt.Errorf("tftp: %w", err)
		}
		s.tftpConn = pc
	}
	return nil
}

// HTTPAddr is the address the HTTP server listens on (after Listen).
func (s *Server) HTTPAddr() net.Addr { return s.httpLn.Addr() }

// TFTPAddr is the TFTP address, nil when TFTP is off (after Listen).
func (s *Server) TFTPAddr() net.Addr {
	if s.tftpConn == nil {
		return nil
	}
	return s.tftpConn.LocalAddr()
}

// Run listens (unless Listen was called) and serves until ctx is done, then
// shuts down gracefully: no new connections, transfers in flight finish
// (up to 30 s).
func (s *Server) Run(ctx context.Context) error {
	if s.httpLn == nil {
		if err := s.Listen(); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cfg := s.Config()

	errLog := s.log.WriterLevel(logrus.DebugLevel) // net/http's own complaints (bad requests, resets)
	defer errLog.Close()
	s.httpSrv = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: headerTimeout,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          log.New(errLog, "http: ", 0),
		ConnContext:       withConn,
	}
	errc := make(chan error, 2)
	stopStatus := s.startStatusSaver()
	defer stopStatus() // after the shutdown below: requests in flight are recorded
	go func() { errc <- s.httpSrv.Serve(s.httpLn) }()
	s.log.Infof("warewulfd: http on %s", s.httpLn.Addr())

	if s.tftpConn != nil {
		s.tftpSrv = s.newTFTP()
		go func() {
			if err := s.tftpSrv.Serve(s.tftpConn); err != nil {
				errc <- fmt.Errorf("tftp: %w", err)
			}
		}()
		s.log.Infof("warewulfd: tftp on %s serving %s", s.tftpConn.LocalAddr(), cfg.IpxeSourceDir())
	}
	if cfg.DHCP.Enabled && cfg.DHCP.Server == "builtin" && !s.opts.NoDHCP {
		go s.runDHCP(ctx, cfg)
	}
	if cfg.Warewulf.AnswersRouterSolicitations() && !s.opts.NoDHCP {
		go s.runNDP(ctx, cfg)
	}

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	tick := time.NewTicker(s.opts.PollInterval)
	defer tick.Stop()

	var err error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err = <-errc:
			if errors.Is(err, http.ErrServerClosed) {
				err = nil
			}
			break loop
		case <-hup:
			s.log.Info("warewulfd: SIGHUP, reloading")
			s.Reload()
		case <-tick.C:
			if s.changed() {
				s.Reload()
			}
		}
	}
	s.log.Info("warewulfd: shutting down")
	sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer scancel()
	if e := s.httpSrv.Shutdown(sctx); e != nil && err == nil {
		err = e
	}
	if s.tftpSrv != nil {
		s.tftpSrv.Shutdown()
	}
	return err
}

func (s *Server) runDHCP(ctx context.Context, cfg *config.Config) {
	srv, err := dhcp.New(cfg, s.Nodes)
	if err != nil {
		s.log.Errorf("warewulfd: DHCP did not start: %v (serving without DHCP)", err)
		return
	}
	s.log.Info("warewulfd: dhcp started")
	if err := srv.Serve(ctx); err != nil && ctx.Err() == nil {
		s.log.Errorf("warewulfd: DHCP stopped: %v (serving without DHCP)", err)
	}
}

// changed reports whether a watched file changed since the last load.
func (s *Server) changed() bool {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	for _, f := range s.stamps {
		if stampOf(f.path) != f {
			return true
		}
	}
	return false
}

// Reload rereads warewulf.conf and nodes.conf. If either is broken the
// last good state keeps serving and the error is logged and returned.
// Requests in flight finish with the state they started with.
func (s *Server) Reload() error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	old := s.st.Load()
	st, err := loadState(s.opts.ConfigFile, old.cfg)
	s.stamps = s.watchedFiles(old) // do not retry a broken file until it changes again
	if err != nil {
		s.log.Errorf("warewulfd: reload failed, still serving the last good configuration: %v", err)
		return err
	}
	if st.cfg.Warewulf.Port != old.cfg.Warewulf.Port || st.cfg.Warewulf.ListenAddress != old.cfg.Warewulf.ListenAddress ||
		st.cfg.TFTP.Enabled != old.cfg.TFTP.Enabled || !reflect.DeepEqual(st.cfg.DHCP, old.cfg.DHCP) ||
		st.cfg.Warewulf.AnswersRouterSolicitations() != old.cfg.Warewulf.AnswersRouterSolicitations() {
		s.log.Warn("warewulfd: listen address, port, tftp, dhcp or answer router solicitations changed in warewulf.conf; they take effect on restart")
	}
	s.st.Store(st)
	s.stamps = s.watchedFiles(st)
	s.cache.clear()
	s.ipxe.clear()
	s.log.Infof("warewulfd: loaded %d nodes", len(st.nodes))
	return nil
}

// fileStamp identifies a version of a file cheaply.
type fileStamp struct {
	path  string
	size  int64
	mtime int64
	ino   uint64
	ok    bool
}

func stampOf(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{path: path}
	}
	st := fileStamp{path: path, size: fi.Size(), mtime: fi.ModTime().UnixNano(), ok: true}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.ino = sys.Ino
	}
	return st
}

// tcpUserTimeout makes the kernel drop a connection whose peer stops
// acknowledging data for a minute, a stuck client that would otherwise hold
// a sendfile forever. Accepted sockets inherit it from the listener.
func tcpUserTimeout(network, address string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, 0x12 /* TCP_USER_TIMEOUT */, 60_000)
	})
	if err != nil {
		return err
	}
	return serr
}
