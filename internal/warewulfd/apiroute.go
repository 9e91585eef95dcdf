package warewulfd

import (
	"net/http"
	"strings"

	"github.com/warewulf-ng/warewulf/internal/api"
)

// The REST API (internal/api) shares warewulfd's listeners; it answers
// only with `api: enabled`, from `allowed subnets`, to auth.conf's users.

func isAPI(path string) bool { return path == "/api" || strings.HasPrefix(path, api.Prefix) }

func (s *Server) newAPI() http.Handler {
	// A write to nodes.conf is served at once, not at the next poll.
	return api.New(s.Config, func() { s.Reload() }, s.log)
}
