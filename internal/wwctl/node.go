package wwctl

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/warewulf-ng/warewulf/internal/node"
)

// kind is what a command tree edits: nodes or profiles. Both are node.Conf
// records in nodes.conf; only the map and a few defaults differ.
type kind struct {
	noun    string // "node" or "profile"
	profile bool
}

func (k kind) records(db *node.DB) map[string]*node.Conf {
	if k.profile {
		return db.Profiles
	}
	return db.Nodes
}

func (k kind) merged(db *node.DB, name string) (*node.Node, error) {
	if k.profile {
		return db.MergedProfile(name)
	}
	return db.Merged(name)
}

func newNodeCmd() *cobra.Command {
	k := kind{noun: "node"}
	cmd := &cobra.Command{Use: "node", Short: "Manage nodes"}
	cmd.AddCommand(k.addCmd(), k.setCmd(), k.unsetCmd(), k.deleteCmd(), k.listCmd(), k.editCmd(),
		newNodeImportCmd(), newNodeExportCmd(), newNodeStatusCmd(),
		newNodeSensorsCmd(), newNodeConsoleCmd())
	return cmd
}

func newProfileCmd() *cobra.Command {
	k := kind{noun: "profile", profile: true}
	cmd := &cobra.Command{Use: "profile", Short: "Manage profiles: settings nodes inherit"}
	cmd.AddCommand(k.addCmd(), k.setCmd(), k.unsetCmd(), k.deleteCmd(), k.listCmd(), k.editCmd())
	return cmd
}

// existing returns a record that must exist.
func (k kind) existing(recs map[string]*node.Conf, name string) (*node.Conf, error) {
	c, ok := recs[name]
	if !ok {
		return nil, fmt.Errorf("%s %s does not exist", k.noun, name)
	}
	return c, nil
}

// names expands the name arguments (ranges such as n[001-100]).
func names(args []string) ([]string, error) {
	out, err := node.ExpandNames(args)
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, errors.New("no names given")
	}
	return out, nil
}

// updateDB is the one way commands change nodes.conf.
func updateDB(change func(db *node.DB) error) error {
	cfg, err := loadConfig()
	if err != nil {
		return err
	}
	return node.Update(cfg.NodesConf(), change)
}

func readDB() (*node.DB, error) {
	cfg, err := loadConfig()
	if err != nil {
		return nil, err
	}
	return node.Load(cfg.NodesConf())
}

func (k kind) addCmd() *cobra.Command {
	cmd := k.valuesCmd("add NAME...", "Add "+k.noun+"s (names take ranges: n[001-100])", true)
	cmd.Aliases = []string{"new", "create"}
	return cmd
}

func (k kind) setCmd() *cobra.Command {
	cmd := k.valuesCmd("set NAME...", "Change settings of "+k.noun+"s (UNSET or UNDEF clears a value)", false)
	cmd.Aliases = []string{"modify"}
	return cmd
}

// valuesCmd is add (create) or set: both write the value flags into
// records, stepping IP addresses across a range.
func (k kind) valuesCmd(use, short string, create bool) *cobra.Command {
	var all, yes, force bool
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !create && !changedAny(cmd.Flags()) {
				return errors.New("nothing to set: give at least one flag")
			}
			edit, err := readEdit(cmd.Flags(), k.profile)
			if err != nil {
				return err
			}
			if create && (edit.Sel.Disk != "") != (edit.Sel.Part != "") {
				return errors.New("--diskname and --partname go together")
			}
			var list []string
			if !all || create {
				if len(args) == 0 {
					if create {
						return fmt.Errorf("give the %s name(s) to add", k.noun)
					}
					return fmt.Errorf("no %ss given; use --all to change every %s", k.noun, k.noun)
				}
				if list, err = names(args); err != nil {
					return err
				}
			}
			var summary string
			err = updateDB(func(db *node.DB) error {
				recs := k.records(db)
				if all && !create {
					list = sortedNames(recs)
					fmt.Fprintf(cmd.ErrOrStderr(), "wwctl: changing all %d %ss\n", len(list), k.noun)
				}
				var changed, missing []string
				before := map[string]*node.Conf{}
				for i, name := range list {
					c, exists := recs[name]
					switch {
					case create && exists:
						return fmt.Errorf("%s %s already exists", k.noun, name)
					case !create && !exists:
						missing = append(missing, name)
						continue
					case create:
						if err := node.ValidName(name); err != nil {
							return fmt.Errorf("%s %w", k.noun, err)
						}
						c = &node.Conf{}
						if _, ok := db.Profiles["default"]; ok && !k.profile && !cmd.Flags().Changed("profile") {
							c.Profiles = node.List{"default"}
						}
						recs[name] = c
					}
					if c == nil {
						c = &node.Conf{}
						recs[name] = c
					}
					before[name] = node.Clone(c)
					if err := edit.Apply(c, i, stepped); err != nil {
						return fmt.Errorf("%s %s: %w", k.noun, name, err)
					}
					if _, ok := edit.Values["profile"]; ok {
						if err := refuseLoop(db, k, name, c); err != nil {
							return err
						}
					}
					changed = append(changed, name)
				}
				if len(changed) == 0 && len(missing) > 0 {
					return fmt.Errorf("%s %s does not exist", k.noun, summarize(missing))
				}
				for _, name := range missing {
					fmt.Fprintf(cmd.ErrOrStderr(), "wwctl: %s %s does not exist, skipped\n", k.noun, name)
				}
				if create {
					return nil
				}
				summary = node.Diff(before, recs)
				if yes || !interactive() {
					return nil
				}
				if summary == "" {
					return errNoChanges
				}
				fmt.Fprint(cmd.OutOrStdout(), summary)
				if !confirm(cmd, fmt.Sprintf("Apply these changes to %d %s(s)?", len(changed), k.noun)) {
					return errNotApplied
				}
				return nil
			})
			return applyOutcome(cmd, err, yes, summary)
		},
	}
	addValueFlags(cmd.Flags(), k.profile)
	if !create {
		cmd.Flags().BoolVarP(&all, "all", "a", false, "change every "+k.noun)
	}
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask")
	cmd.Flags().BoolVarP(&force, "force", "f", false, "no effect (upstream's old flag)")
	cmd.Flags().Lookup("force").Hidden = true
	return cmd
}

var (
	errNoChanges  = errors.New("no changes")
	errNotApplied = errors.New("not applied")
)

func sortedNames(recs map[string]*node.Conf) []string {
	out := make([]string, 0, len(recs))
	for n := range recs {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func (k kind) unsetCmd() *cobra.Command {
	var yes, force bool
	cmd := &cobra.Command{
		Use:   "unset NAME... --FIELD...",
		Short: "Clear settings of " + k.noun + "s, so inherited values show through",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			u, tags, ipmi, netdevs := readUnset(cmd.Flags())
			if err := u.Check(); err != nil && !(tags || ipmi || netdevs) {
				return err
			}
			list, err := names(args)
			if err != nil {
				return err
			}
			var summary string
			err = updateDB(func(db *node.DB) error {
				recs := k.records(db)
				before := map[string]*node.Conf{}
				for _, name := range list {
					c, ok := recs[name]
					if !ok {
						if force {
							fmt.Fprintf(cmd.ErrOrStderr(), "wwctl: %s %s does not exist, skipped\n", k.noun, name)
							continue
						}
						return fmt.Errorf("%s not found: %s", k.noun, name)
					}
					if c == nil {
						c = &node.Conf{}
						recs[name] = c
					}
					before[name] = node.Clone(c)
					if err := u.Apply(c); err != nil {
						return fmt.Errorf("%s %s: %w", k.noun, name, err)
					}
					if tags {
						c.Tags = nil
					}
					if ipmi {
						c.Ipmi = nil
					}
					if netdevs {
						c.NetDevs = nil
					}
				}
				if len(before) == 0 {
					return fmt.Errorf("no %ss were modified", k.noun)
				}
				summary = node.Diff(before, recs)
				if yes || !interactive() {
					return nil
				}
				if summary == "" {
					return errNoChanges
				}
				fmt.Fprint(cmd.OutOrStdout(), summary)
				if !confirm(cmd, fmt.Sprintf("Apply these changes to %d %s(s)?", len(before), k.noun)) {
					return errNotApplied
				}
				return nil
			})
			return applyOutcome(cmd, err, yes, summary)
		},
	}
	addUnsetFlags(cmd, k.profile)
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask")
	cmd.Flags().BoolVarP(&force, "force", "f", false, "skip names that do not exist")
	return cmd
}

func (k kind) deleteCmd() *cobra.Command {
	var yes, force bool
	cmd := &cobra.Command{
		Use:     "delete NAME...",
		Aliases: []string{"rm", "del", "remove"},
		Short:   "Delete " + k.noun + "s (asks first unless --yes)",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			list, err := names(args)
			if err != nil {
				return err
			}
			return updateDB(func(db *node.DB) error {
				recs := k.records(db)
				var found []string
				for _, name := range list {
					if _, ok := recs[name]; !ok {
						fmt.Fprintf(cmd.ErrOrStderr(), "wwctl: %s %s does not exist, skipped\n", k.noun, name)
						continue
					}
					found = append(found, name)
				}
				if list = found; len(list) == 0 {
					return nil
				}
				if k.profile && !force {
					if err := profilesInUse(db, list); err != nil {
						return err
					}
				}
				if !yes && !confirm(cmd, fmt.Sprintf("Delete %d %s(s): %s?", len(list), k.noun, summarize(list))) {
					return errors.New("not deleted")
				}
				for _, name := range list {
					delete(recs, name)
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask")
	cmd.Flags().BoolVarP(&force, "force", "f", false, "delete a profile even if nodes use it")
	return cmd
}

func profilesInUse(db *node.DB, profiles []string) error {
	for _, p := range profiles {
		var users []string
		for _, n := range db.NodeNames() {
			if db.Nodes[n] == nil {
				continue
			}
			for _, q := range db.Nodes[n].Profiles {
				if q == p {
					users = append(users, n)
				}
			}
		}
		if len(users) > 0 {
			return fmt.Errorf("profile %s is used by %d node(s): %s (--force deletes it anyway)", p, len(users), summarize(users))
		}
	}
	return nil
}

func summarize(list []string) string {
	if len(list) <= 5 {
		return strings.Join(list, ", ")
	}
	return strings.Join(list[:3], ", ") + fmt.Sprintf(", ... %s (%d in all)", list[len(list)-1], len(list))
}

// confirm asks a yes/no question on stdin; anything but yes is no.
func confirm(cmd *cobra.Command, question string) bool {
	fmt.Fprint(cmd.ErrOrStderr(), question+" [y/N] ")
	line, _ := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
	ok, err := parseYesNo(strings.TrimSpace(line))
	return err == nil && ok
}

type listFlags struct {
	output                           string
	all, long, yaml, json, net, ipmi bool
}

func (k kind) listCmd() *cobra.Command {
	var f listFlags
	cmd := &cobra.Command{
		Use:     "list [NAME...]",
		Aliases: []string{"ls"},
		Short:   "List " + k.noun + "s: a table, every field (-a), or YAML/JSON (-y, -j)",
		RunE: func(cmd *cobra.Command, args []string) error {
			db, err := readDB()
			if err != nil {
				return err
			}
			recs := k.records(db)
			list, err := node.ExpandNames(args)
			if err != nil {
				return err
			}
			if len(list) == 0 {
				list = sortedNames(recs)
			} else {
				sort.Strings(list)
			}
			var out []*node.Node
			for _, name := range list {
				if _, ok := recs[name]; !ok {
					fmt.Fprintf(cmd.ErrOrStderr(), "wwctl: %s %s does not exist\n", k.noun, name)
					continue
				}
				var n *node.Node
				switch {
				case k.profile:
					n, err = db.MergedProfile(name)
				case f.all:
					n, err = db.MergedFields(name)
				default:
					n, err = db.Merged(name)
				}
				if err != nil {
					return err
				}
				out = append(out, n)
			}
			switch {
			case f.yaml:
				f.output = "yaml"
			case f.json:
				f.output = "json"
			}
			w := bufio.NewWriterSize(cmd.OutOrStdout(), 1<<16)
			defer w.Flush()
			switch {
			case f.output == "json" || f.output == "yaml":
				return writeRecords(w, out, f.output)
			case f.output != "" && f.output != "table":
				return fmt.Errorf("-o %q: want table, yaml or json", f.output)
			case f.all:
				return writeAllFields(w, out, k)
			case f.ipmi && !k.profile:
				return writeIpmi(w, out)
			case f.net && !k.profile:
				return writeNet(w, out)
			case f.long && !k.profile:
				return writeLong(w, out)
			default:
				return writeTable(w, out, k)
			}
		},
	}
	fs := cmd.Flags()
	fs.StringVarP(&f.output, "output", "o", "table", "table, yaml or json")
	fs.BoolVarP(&f.all, "all", "a", false, "every set field, its value and the profile it comes from")
	fs.BoolVarP(&f.yaml, "yaml", "y", false, "YAML")
	fs.BoolVarP(&f.json, "json", "j", false, "JSON")
	if !k.profile {
		fs.BoolVarP(&f.long, "long", "l", false, "kernel, image and overlays")
		fs.BoolVarP(&f.net, "net", "n", false, "network devices")
		fs.BoolVarP(&f.ipmi, "ipmi", "i", false, "BMC settings")
	}
	return cmd
}

// writeRecords prints merged records keyed by name, with nodes.conf's keys.
func writeRecords(w io.Writer, recs []*node.Node, format string) error {
	if format == "yaml" {
		out := make(map[string]*node.Conf, len(recs))
		for _, n := range recs {
			c := n.Conf
			out[n.Name] = &c
		}
		data, err := marshalYAML(out)
		if err != nil {
			return err
		}
		_, err = w.Write(data)
		return err
	}
	out := make(map[string]any, len(recs))
	for _, n := range recs {
		out[n.Name] = n.Conf.Map()
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// table prints upstream's tables: a header, a line of dashes under each
// header cell, "--" for an empty cell.
func table(w io.Writer, header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	dashes := make([]string, len(header))
	for i, h := range header {
		dashes[i] = strings.Repeat("-", len(h))
	}
	fmt.Fprintln(tw, strings.Join(dashes, "\t"))
	for _, r := range rows {
		cells := make([]string, len(r))
		for i, c := range r {
			cells[i] = dash(c)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

func writeTable(w io.Writer, recs []*node.Node, k kind) error {
	var rows [][]string
	if k.profile {
		for _, n := range recs {
			rows = append(rows, []string{n.Name, n.Comment})
		}
		return table(w, []string{"PROFILE NAME", "COMMENT/DESCRIPTION"}, rows)
	}
	for _, n := range recs {
		rows = append(rows, []string{n.Name, strings.Join(n.Profiles, ","), strings.Join(sortedKeysOf(n.NetDevs), ", ")})
	}
	return table(w, []string{"NODE NAME", "PROFILES", "NETWORK"}, rows)
}

func sortedKeysOf(m map[string]*node.NetDev) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func writeLong(w io.Writer, recs []*node.Node) error {
	var rows [][]string
	for _, n := range recs {
		var kv string
		if n.Kernel != nil {
			kv = n.Kernel.Version
		}
		rows = append(rows, []string{n.Name, kv, n.ImageName,
			strings.Join(n.SystemOverlay, ",") + "/" + strings.Join(n.RuntimeOverlay, ",")})
	}
	return table(w, []string{"NODE NAME", "KERNEL VERSION", "IMAGE", "OVERLAYS (S/R)"}, rows)
}

func writeNet(w io.Writer, recs []*node.Node) error {
	var rows [][]string
	for _, n := range recs {
		if len(n.NetDevs) == 0 {
			rows = append(rows, []string{n.Name, "", "", "", "", ""})
			continue
		}
		for _, name := range sortedKeysOf(n.NetDevs) {
			d := n.NetDevs[name]
			rows = append(rows, []string{n.Name, name, d.Hwaddr, ipOrNil(d.Ipaddr), ipOrNil(d.Gateway), d.Device})
		}
	}
	return table(w, []string{"NODE", "NETWORK", "HWADDR", "IPADDR", "GATEWAY", "DEVICE"}, rows)
}

// ipOrNil prints an unset address inside a set record as upstream does.
func ipOrNil(s string) string {
	if s == "" {
		return "<nil>"
	}
	return s
}

func writeIpmi(w io.Writer, recs []*node.Node) error {
	var rows [][]string
	for _, n := range recs {
		if n.Ipmi == nil {
			rows = append(rows, []string{n.Name, "", "", "", ""})
			continue
		}
		i := n.Ipmi
		rows = append(rows, []string{n.Name, ipOrNil(i.Ipaddr), i.Port, i.UserName, i.Interface})
	}
	return table(w, []string{"NODE", "IPMI IPADDR", "IPMI PORT", "IPMI USERNAME", "IPMI INTERFACE"}, rows)
}

func writeAllFields(w io.Writer, recs []*node.Node, k kind) error {
	var rows [][]string
	for _, n := range recs {
		for _, f := range n.Fields() {
			if k.profile {
				rows = append(rows, []string{n.Name, f.Field, f.Value})
			} else {
				rows = append(rows, []string{n.Name, f.Field, f.Source, f.Value})
			}
		}
	}
	if k.profile {
		return table(w, []string{"PROFILE", "FIELD", "VALUE"}, rows)
	}
	return table(w, []string{"NODE", "FIELD", "PROFILE", "VALUE"}, rows)
}

func dash(s string) string {
	if s == "" {
		return "--"
	}
	return s
}

func (k kind) editCmd() *cobra.Command {
	var noHeader bool
	cmd := &cobra.Command{
		Use:   "edit NAME...",
		Short: "Edit " + k.noun + "s as YAML in $EDITOR; validated on save",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			list, err := names(args)
			if err != nil {
				return err
			}
			return updateDB(func(db *node.DB) error {
				recs := k.records(db)
				sel := map[string]*node.Conf{}
				for _, name := range list {
					c, err := k.existing(recs, name)
					if err != nil {
						return err
					}
					sel[name] = c
				}
				text, err := marshalYAML(sel)
				if err != nil {
					return err
				}
				if !noHeader {
					header := fmt.Sprintf("# Edit the %ss below. Remove one to delete it, add one to create it.\n", k.noun)
					text = append([]byte(header), text...)
				}
				for {
					edited, err := runEditor(text)
					if err != nil {
						return err
					}
					if bytes.Equal(edited, text) {
						return nil
					}
					err = applyEdit(db, recs, sel, edited)
					if err == nil {
						return nil
					}
					fmt.Fprintln(cmd.ErrOrStderr(), "wwctl: "+err.Error())
					if !confirm(cmd, "Edit again?") {
						return errors.New("edit discarded")
					}
					text = edited
				}
			})
		},
	}
	cmd.Flags().BoolVar(&noHeader, "noheader", false, "no explanatory comment at the top of the file")
	return cmd
}

// applyEdit replaces the selected records with the edited YAML, on a trial
// copy first so a failed validation changes nothing.
func applyEdit(db *node.DB, recs, sel map[string]*node.Conf, edited []byte) error {
	got, err := node.ParseRecords(edited, "record")
	if err != nil {
		return err
	}
	backup := make(map[string]*node.Conf, len(sel))
	for name := range sel {
		backup[name] = recs[name]
		delete(recs, name)
	}
	for name, c := range got {
		if c == nil {
			c = &node.Conf{}
		}
		if _, exists := recs[name]; exists {
			err := fmt.Errorf("%s already exists outside this edit", name)
			restore(recs, got, backup)
			return err
		}
		recs[name] = c
	}
	if err := db.Validate(); err != nil {
		restore(recs, got, backup)
		return err
	}
	return nil
}

func restore(recs, added, backup map[string]*node.Conf) {
	for name := range added {
		if _, was := backup[name]; !was {
			delete(recs, name)
		}
	}
	for name, c := range backup {
		recs[name] = c
	}
}

func runEditor(text []byte) ([]byte, error) {
	dir, err := os.MkdirTemp("", "wwctl-edit-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "edit.yaml")
	if err := os.WriteFile(file, text, 0o600); err != nil {
		return nil, err
	}
	c, editor := editorCmd(file)
	if err := c.Run(); err != nil {
		return nil, fmt.Errorf("editor %q: %w", editor, err)
	}
	return os.ReadFile(file)
}

func newNodeImportCmd() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "import FILE",
		Short: "Add or update nodes from YAML (as export writes) or CSV (a header row: name,hwaddr,ipaddr,...)",
		Long: "YAML replaces each named node whole. CSV sets the columns it has, creating nodes as needed; " +
			"columns: " + strings.Join(node.CSVColumns, ", ") + ". FILE - reads standard input.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var data []byte
			var err error
			if args[0] == "-" {
				data, err = io.ReadAll(cmd.InOrStdin())
			} else {
				data, err = os.ReadFile(args[0])
			}
			if err != nil {
				return err
			}
			if format == "" {
				format = "yaml"
				if strings.HasSuffix(strings.ToLower(args[0]), ".csv") {
					format = "csv"
				}
			}
			var count int
			err = updateDB(func(db *node.DB) error {
				switch format {
				case "yaml":
					got, err := node.ParseRecords(data, "node")
					if err != nil {
						return fmt.Errorf("%s: %w", args[0], err)
					}
					for name, c := range got {
						if c == nil {
							c = &node.Conf{}
						}
						db.Nodes[name] = c
					}
					count = len(got)
				case "csv":
					order, got, err := node.ReadCSV(bytes.NewReader(data))
					if err != nil {
						return fmt.Errorf("%s: %w", args[0], err)
					}
					for _, name := range order {
						c, ok := db.Nodes[name]
						if !ok {
							c = &node.Conf{}
							if _, ok := db.Profiles["default"]; ok && len(got[name].Profiles) == 0 {
								c.Profiles = node.List{"default"}
							}
							db.Nodes[name] = c
						}
						node.Overlay(c, got[name])
					}
					count = len(order)
				default:
					return fmt.Errorf("--format %q: want yaml or csv", format)
				}
				return nil
			})
			if err == nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "imported %d node(s)\n", count)
			}
			return err
		},
	}
	cmd.Flags().StringVar(&format, "format", "", "yaml or csv (default: by the file's extension)")
	cmd.Flags().BoolP("yes", "y", false, "do not ask (import never asks: it only adds and replaces the nodes in FILE)")
	return cmd
}

func newNodeExportCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "export [NAME...]",
		Short: "Write nodes as YAML, as they are in nodes.conf (not merged), for import",
		RunE: func(cmd *cobra.Command, args []string) error {
			db, err := readDB()
			if err != nil {
				return err
			}
			list := db.NodeNames()
			if len(args) > 0 {
				if list, err = names(args); err != nil {
					return err
				}
			}
			out := make(map[string]*node.Conf, len(list))
			for _, name := range list {
				c, ok := db.Nodes[name]
				if !ok {
					return fmt.Errorf("node %s does not exist", name)
				}
				out[name] = c
			}
			data, err := marshalYAML(out)
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(data)
			return err
		},
	}
}

// marshalYAML renders v as nodes.conf does: two-space indents.
func marshalYAML(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	err := enc.Close()
	return buf.Bytes(), err
}

// refuseLoop refuses a --profile that makes profiles include each other.
func refuseLoop(db *node.DB, k kind, name string, c *node.Conf) error {
	starts := []string{name}
	if !k.profile {
		starts = c.Profiles
	}
	for _, p := range starts {
		if loop := db.ProfileLoop(p); loop != "" {
			return fmt.Errorf("%s %s: --profile makes a profile loop: %s", k.noun, name, loop)
		}
	}
	return nil
}

// applyOutcome reports how a set or unset ended, as upstream words it: no
// changes, declined, or (with --yes) the changes applied.
func applyOutcome(cmd *cobra.Command, err error, yes bool, summary string) error {
	switch {
	case errors.Is(err, errNoChanges):
		fmt.Fprintln(cmd.ErrOrStderr(), "No changes to apply.")
		return nil
	case errors.Is(err, errNotApplied):
		fmt.Fprintln(cmd.ErrOrStderr(), "No changes made!")
		return nil
	case err == nil && yes && summary != "":
		fmt.Fprint(cmd.OutOrStdout(), "Applying following changes:\n"+summary)
	}
	return err
}
