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
	// warewulf.conf (listen address, port; TFTP on port 69), and a reload
	// then leaves them where they are (TFTP still follows tftp: enabled).
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
	cache  artifactCache
	builds singleflight.Group
	// checked maps "kind\x00node" to the state (its gen) whose nodes.conf
	// the overlay was last brought up to date against, so a changed
	// nodes.conf rebuilds each node's overlay once, on its next request.
	checked sync.Map
	status  statusBook
	metrics metrics
	ipxe    templateCache
	sndbufs sendBuffers
	// The two-stage boot: its initramfs, the image digests stage 1
	// checks, and the pacing of image downloads (stage1.go, digest.go,
	// pacing.go).
	stage1  stage1Image
	digests digests
	pacer   pacer

	discoverMu sync.Mutex

	// reloadMu serializes reloads and guards what follows: the files
	// watched, and the sockets and services Run started with the settings
	// they reflect, so that a reload restarts only what changed.
	reloadMu sync.Mutex
	api      http.Handler // the REST API (apiroute.go)
	tlsLn    net.Listener // HTTPS (tlsserve.go)
	stamps   []fileStamp
	applied  *config.Config  // the settings the sockets and services reflect
	runCtx   context.Context // Run's while it serves; nil before and after
	errc     chan error      // a socket that fails for good ends Run
	httpSrv  *http.Server
	httpLn   net.Listener
	httpAddr string // the address httpLn was asked for
	tftpSrv  *tftp.Server
	tftpConn net.PacketConn
	tftpAddr string         // the address tftpConn was asked for; "" while TFTP is off
	draining sync.WaitGroup // TFTP servers a reload replaced, finishing their transfers
	dhcp     *service
	ndp      *service
	// netns, when set (tests), runs the DHCP and NDP services' setup in a
	// network namespace.
	netns func(func() error) error
	// tftpPort replaces port 69 (tests: a reload that moves TFTP).
	tftpPort string
	// conns caps HTTP connections; perAddr and maxConns replace its
	// defaults when set (tests).
	conns             *connLimiter
	perAddr, maxConns int
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
	s.api = s.newAPI()
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
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	cfg := s.Config()
	addr := s.httpListenAddr(cfg)
	ln, err := listenTCP(addr)
	if err != nil {
		return fmt.Errorf("http: %w", err)
	}
	var pc net.PacketConn
	taddr := s.tftpListenAddr(cfg)
	if taddr != "" {
		if pc, err = net.ListenPacket("udp", taddr); err != nil {
			ln.Close()
			return fmt.Errorf("tftp: %w", err)
		}
	}
	s.httpLn, s.httpAddr, s.tftpConn, s.tftpAddr, s.applied = ln, addr, pc, taddr, cfg
	return nil
}

// httpListenAddr is where HTTP should listen: Options.HTTPAddr, else
// `warewulf: listen address` and `port`.
func (s *Server) httpListenAddr(cfg *config.Config) string {
	if s.opts.HTTPAddr != "" {
		return s.opts.HTTPAddr
	}
	return net.JoinHostPort(cfg.Warewulf.ListenAddress, strconv.Itoa(cfg.Warewulf.Port))
}

// tftpListenAddr is where TFTP should listen, "" when it is off:
// Options.TFTPAddr, else the listen address on port 69.
func (s *Server) tftpListenAddr(cfg *config.Config) string {
	switch {
	case !cfg.TFTP.Enabled:
		return ""
	case s.opts.TFTPAddr != "":
		return s.opts.TFTPAddr
	}
	port := "69"
	if s.tftpPort != "" {
		port = s.tftpPort
	}
	return net.JoinHostPort(cfg.Warewulf.ListenAddress, port)
}

func listenTCP(addr string) (net.Listener, error) {
	lc := net.ListenConfig{Control: tcpUserTimeout}
	return lc.Listen(context.Background(), "tcp", addr)
}

// HTTPAddr is the address the HTTP server listens on (after Listen).
func (s *Server) HTTPAddr() net.Addr {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	return s.httpLn.Addr()
}

// TFTPAddr is the TFTP address, nil when TFTP is off (after Listen).
func (s *Server) TFTPAddr() net.Addr {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	if s.tftpConn == nil {
		return nil
	}
	return s.tftpConn.LocalAddr()
}

// Run listens (unless Listen was called) and serves until ctx is done, then
// shuts down gracefully: no new connections, transfers in flight finish
// (up to 30 s), on the sockets a reload replaced too.
func (s *Server) Run(ctx context.Context) error {
	s.reloadMu.Lock()
	listening := s.httpLn != nil
	s.reloadMu.Unlock()
	if !listening {
		if err := s.Listen(); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	errLog := s.log.WriterLevel(logrus.DebugLevel) // net/http's own complaints (bad requests, resets)
	defer errLog.Close()
	s.reloadMu.Lock()
	per, most := perAddrConns, connCaps()
	if s.perAddr > 0 {
		per = s.perAddr
	}
	if s.maxConns > 0 {
		most = s.maxConns
	}
	s.conns = newConnLimiter(per, most, s.log)
	s.httpSrv = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: headerTimeout,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          log.New(errLog, "http: ", 0),
		ConnContext:       withConn,
		ConnState:         s.conns.connState,
	}
	s.runCtx, s.errc = ctx, make(chan error, 1)
	errc := s.errc
	stopStatus := s.startStatusSaver()
	defer stopStatus() // after the shutdown below: requests in flight are recorded
	s.serveHTTP(s.httpLn)
	s.log.Infof("warewulfd: http on %s, at most %d connections, %d per source address", s.httpLn.Addr(), most, per)
	s.startTLS(s.Config())
	if s.tftpConn != nil {
		s.serveTFTP()
		s.log.Infof("warewulfd: tftp on %s serving %s", s.tftpConn.LocalAddr(), s.applied.IpxeSourceDir())
	}
	s.apply(s.Config()) // starts DHCP and NDP, and catches up with a reload since Listen
	s.reloadMu.Unlock()

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
	s.reloadMu.Lock()
	s.runCtx = nil // a Reload from now on swaps the state only
	s.dhcp.stop()
	s.ndp.stop()
	s.dhcp, s.ndp = nil, nil
	ln, tsrv := s.httpLn, s.tftpSrv
	s.reloadMu.Unlock()

	sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer scancel()
	// Shutdown waits for the connections of every listener, those a reload
	// closed included.
	if e := s.httpSrv.Shutdown(sctx); e != nil && err == nil {
		err = e
	}
	ln.Close() // Shutdown misses a listener whose Serve had not yet begun
	if tsrv != nil {
		tsrv.Shutdown()
	}
	s.draining.Wait()
	return err
}

// serveHTTP serves ln until it is closed. A listener a reload replaced
// ends quietly; the current one ending ends Run.
func (s *Server) serveHTTP(ln net.Listener) {
	srv, lim := s.httpSrv, s.conns
	go func() {
		err := srv.Serve(limitedListener{Listener: ln, l: lim})
		s.reloadMu.Lock()
		replaced := ln != s.httpLn
		s.reloadMu.Unlock()
		if replaced {
			return
		}
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		} else {
			err = fmt.Errorf("http: %w", err)
		}
		s.fail(err)
	}()
}

// serveTFTP starts a TFTP server on tftpConn.
func (s *Server) serveTFTP() {
	srv, conn := s.newTFTP(), s.tftpConn
	s.tftpSrv = srv
	go func() {
		if err := srv.Serve(conn); err != nil {
			s.fail(fmt.Errorf("tftp: %w", err))
		}
	}()
}

// fail ends Run with err (the first error wins).
func (s *Server) fail(err error) {
	select {
	case s.errc <- err:
	default:
	}
}

func (s *Server) runDHCP(ctx context.Context, cfg *config.Config) {
	err := s.enter(func() error {
		srv, err := dhcp.New(cfg, s.Nodes)
		if err != nil {
			return err
		}
		return srv.Serve(ctx)
	})
	if err != nil && ctx.Err() == nil {
		s.log.Errorf("warewulfd: DHCP: %v (serving without DHCP; a reload tries again)", err)
	}
}

// enter runs fn, inside the test's network namespace when one is set.
func (s *Server) enter(fn func() error) error {
	if s.netns == nil {
		return fn()
	}
	return s.netns(fn)
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
// Requests in flight finish with the state they started with. Changed
// listen addresses, TFTP, DHCP and router-solicitation settings are
// applied (see apply); an error applying them is logged and returned, and
// the rest of the reload stands.
func (s *Server) Reload() error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	old := s.st.Load()
	st, err := loadState(s.opts.ConfigFile, old.cfg)
	s.stamps = s.watchedFiles(old) // do not retry a broken file until it changes again
	if err == nil {
		err = checkShrink(st.cfg.NodesConf(), old, st)
	}
	if err != nil {
		s.log.Errorf("warewulfd: reload failed, still serving the last good configuration: %v", err)
		return err
	}
	s.st.Store(st)
	s.stamps = s.watchedFiles(st)
	s.cache.clear()
	s.ipxe.clear()
	s.log.Infof("warewulfd: loaded %d nodes", len(st.nodes))
	return s.apply(st.cfg)
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
