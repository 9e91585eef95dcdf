package dhcp

import (
	"testing"

	"github.com/warewulf-ng/warewulf/internal/config"
	"github.com/warewulf-ng/warewulf/internal/node"
)

// What the tests of package dhcp_test use: they render the host overlay's
// dnsmasq and dhcpd configs through package controller, which imports
// this package, and run them against the same clients as the built-in
// server.

type TestNet = testNet

func NewTestNet(t testing.TB) *TestNet                   { return newTestNet(t) }
func NewTestNetPrefix(t testing.TB, prefix int) *TestNet { return newTestNetPrefix(t, prefix) }

func (n *testNet) Srv() string                     { return n.srv }
func (n *testNet) Cli() string                     { return n.cli }
func (n *testNet) SetMAC(t testing.TB, mac string) { n.setMAC(t, mac) }
func (n *testNet) Udhcpc(t *testing.T, extra ...string) map[string]string {
	return n.udhcpc(t, extra...)
}
func (n *testNet) StartServer(t testing.TB, cfg *config.Config, db *node.DB) {
	n.startServer(t, cfg, db)
}

var (
	HaveCmd      = haveCmd
	ExpectEnv    = expectEnv
	TestConfig   = testConfig
	TestDB       = testDB
	NetnsConfig  = netnsConfig
	BigDB        = bigDB
	BenchConfig  = benchConfig
	Discover     = discover
	ArchOption   = arch
	VendorOption = vendor
)

const (
	WithRange  = withRange
	NetnsNodes = netnsNodes
	BenchNodes = benchNodes
)
