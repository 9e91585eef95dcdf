// Package api is warewulfd's REST API under /api/, in the shape of
// upstream Warewulf's (4.6 and later): nodes, profiles, images and
// overlays as JSON with nodes.conf's keys, users with bcrypt passwords in
// auth.conf, requests only from `allowed subnets`. Every write goes
// through the same locked node store as wwctl.
package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/warewulf-ng/warewulf/internal/config"
)

// Prefix is where the API lives in warewulfd's URL space.
const Prefix = "/api/"

// maxBody bounds a request body (an overlay file is the largest).
const maxBody = 16 << 20

// Server answers /api/ requests. Config returns the configuration in use
// (warewulfd reloads it); Reload, if set, is called after a write to
// nodes.conf so the daemon serves it at once.
type Server struct {
	Config func() *config.Config
	Reload func()
	Log    logrus.FieldLogger
	mux    *http.ServeMux
}

// New returns the API handler.
func New(cfg func() *config.Config, reload func(), log logrus.FieldLogger) *Server {
	s := &Server{Config: cfg, Reload: reload, Log: log, mux: http.NewServeMux()}
	s.routes()
	return s
}

// apiError is an error with the HTTP status it answers, written as
// upstream's API writes them: {"error": "...", "status": "NOT_FOUND"}.
type apiError struct {
	code int
	msg  string
}

func (e *apiError) Error() string { return e.msg }

var statusNames = map[int]string{
	http.StatusBadRequest:          "INVALID_ARGUMENT",
	http.StatusNotFound:            "NOT_FOUND",
	http.StatusConflict:            "ALREADY_EXISTS",
	http.StatusInternalServerError: "INTERNAL",
}

func invalid(format string, a ...any) error {
	return &apiError{http.StatusBadRequest, "invalid argument: " + fmt.Sprintf(format, a...)}
}
func notFound(format string, a ...any) error {
	return &apiError{http.StatusNotFound, "not found: " + fmt.Sprintf(format, a...)}
}
func conflict(format string, a ...any) error {
	return &apiError{http.StatusConflict, "already exists: " + fmt.Sprintf(format, a...)}
}

// handler is one API call: it returns the value to send as JSON.
type handler func(r *http.Request) (any, error)

func (s *Server) handle(pattern string, h handler) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		out, err := h(r)
		if err != nil {
			var ae *apiError
			if !errors.As(err, &ae) {
				ae = &apiError{http.StatusInternalServerError, err.Error()}
			}
			writeJSON(w, ae.code, map[string]string{"error": ae.msg, "status": statusNames[ae.code]})
			return
		}
		writeJSON(w, http.StatusOK, out)
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		code, data = http.StatusInternalServerError, []byte(`{"error":"encoding the answer failed","status":"INTERNAL"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(append(data, '\n'))
}

// decodeBody reads a JSON request body into v; a body that is not JSON of
// that shape is an invalid argument naming why.
func decodeBody(r *http.Request, v any) error {
	data, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return invalid("reading the body: %v", err)
	}
	if len(data) > maxBody {
		return invalid("the body is larger than %d bytes", maxBody)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return invalid("the body is not the JSON expected: %v", err)
	}
	return nil
}

// ServeHTTP checks where a request comes from and who sends it, then
// answers it. Every request gets one log line; passwords never do.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &statusWriter{ResponseWriter: w}
	user, why := "-", ""
	defer func() {
		e := s.Log.WithFields(logrus.Fields{"method": r.Method, "path": r.URL.Path, "ip": r.RemoteAddr, "user": user,
			"status": rec.code(), "duration": time.Since(start).Round(time.Microsecond).String()})
		if why != "" {
			e.Warn("api: refused: " + why)
			return
		}
		e.Info("api")
	}()
	cfg := s.Config()
	if !cfg.API.Enabled {
		why = "the API is off (api: enabled)"
		http.Error(rec, "Not Found", http.StatusNotFound)
		return
	}
	nets := subnets(cfg.API.AllowedSubnets)
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	allowed := false
	for _, n := range nets {
		allowed = allowed || err == nil && n.Contains(ap.Addr().Unmap())
	}
	if !allowed {
		why = "source address is not in api: allowed subnets"
		http.Error(rec, "Forbidden", http.StatusForbidden)
		return
	}
	if cfg.API.TLS && r.TLS == nil {
		why = "api: tls is on and the request came over plain HTTP"
		http.Error(rec, "Forbidden", http.StatusForbidden)
		return
	}
	name, pass, ok := r.BasicAuth()
	if !ok {
		why = "no credentials"
	} else if err := authenticate(cfg.AuthFile(), name, pass); err != nil {
		why = err.Error()
	}
	if why != "" {
		rec.Header().Set("WWW-Authenticate", `Basic realm="Restricted"`)
		http.Error(rec, "Unauthorized", http.StatusUnauthorized)
		return
	}
	user = name
	s.mux.ServeHTTP(rec, r)
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusWriter) code() int {
	if s.status == 0 {
		return http.StatusOK
	}
	return s.status
}

// subnets parses `allowed subnets` (checked when warewulf.conf loaded);
// none means loopback only.
func subnets(list []string) []netip.Prefix {
	if len(list) == 0 {
		list = []string{"127.0.0.0/8", "::1/128"}
	}
	var out []netip.Prefix
	for _, s := range list {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
		}
	}
	return out
}

// truthy reads a boolean query parameter as upstream does: present and
// not "false".
func truthy(r *http.Request, key string) bool {
	v, ok := r.URL.Query()[key]
	return ok && (len(v) == 0 || !strings.EqualFold(v[0], "false"))
}
