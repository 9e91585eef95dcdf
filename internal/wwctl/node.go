package wwctl

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
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
	return k.valuesCmd("add NAME...", "Add "+k.noun+"s (names take ranges: n[001-100])", true)
}

func (k kind) setCmd() *cobra.Command {
	return k.valuesCmd("set NAME...", "Change settings of "+k.noun+"s", false)
}

// valuesCmd is add (create) or set: both write the value flags into
// records, stepping IP addresses across a range.
func (k kind) valuesCmd(use, short string, create bool) *cobra.Command {
	var f confFlags
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !create && !changedAny(cmd.Flags()) {
				return errors.New("nothing to set: give at least one flag")
			}
			list, err := names(args)
			if err != nil {
				return err
			}
			return updateDB(func(db *node.DB) error {
				recs := k.records(db)
				for i, name := range list {
					c, exists := recs[name]
					switch {
					case create && exists:
						return fmt.Errorf("%s %s already exists", k.noun, name)
					case !create && !exists:
						return fmt.Errorf("%s %s does not exist", k.noun, name)
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
					if err := f.apply(cmd.Flags(), c, i); err != nil {
						return err
					}
					prune(c)
				}
				return nil
			})
		},
	}
	f.addSetFlags(cmd.Flags(), k.profile)
	return cmd
}

func (k kind) unsetCmd() *cobra.Command {
	var netname string
	cmd := &cobra.Command{
		Use:   "unset NAME... --FIELD...",
		Short: "Clear settings of " + k.noun + "s, so inherited values show through",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !changedAny(cmd.Flags()) {
				return errors.New("nothing to unset: name at least one field flag")
			}
			list, err := names(args)
			if err != nil {
				return err
			}
			return updateDB(func(db *node.DB) error {
				recs := k.records(db)
				for _, name := range list {
					c, err := k.existing(recs, name)
					if err != nil {
						return err
					}
					unset(cmd.Flags(), c, netname)
				}
				return nil
			})
		},
	}
	addUnsetFlags(cmd, &netname, k.profile)
	return cmd
}

func (k kind) deleteCmd() *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:     "delete NAME...",
		Aliases: []string{"rm", "del"},
		Short:   "Delete " + k.noun + "s (asks first unless --yes)",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			list, err := names(args)
			if err != nil {
				return err
			}
			return updateDB(func(db *node.DB) error {
				recs := k.records(db)
				for _, name := range list {
					if _, err := k.existing(recs, name); err != nil {
						return err
					}
				}
				if k.profile {
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
	return cmd
}

func profilesInUse(db *node.DB, profiles []string) error {
	for _, p := range profiles {
		var users []string
		for _, n := range db.NodeNames() {
			for _, q := range db.Nodes[n].Profiles {
				if q == p {
					users = append(users, n)
				}
			}
		}
		if len(users) > 0 {
			return fmt.Errorf("profile %s is used by %d node(s): %s", p, len(users), summarize(users))
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

func (k kind) listCmd() *cobra.Command {
	var output string
	var all bool
	cmd := &cobra.Command{
		Use:     "list [NAME...]",
		Aliases: []string{"ls"},
		Short:   "List " + k.noun + "s: a table, every field (--all), or YAML/JSON (-o)",
		RunE: func(cmd *cobra.Command, args []string) error {
			db, err := readDB()
			if err != nil {
				return err
			}
			var list []string
			if len(args) == 0 {
				list = db.NodeNames()
				if k.profile {
					list = db.ProfileNames()
				}
			} else if list, err = names(args); err != nil {
				return err
			}
			recs := make([]*node.Node, 0, len(list))
			for _, name := range list {
				n, err := k.merged(db, name)
				if err != nil {
					return err
				}
				recs = append(recs, n)
			}
			w := bufio.NewWriterSize(cmd.OutOrStdout(), 1<<16)
			defer w.Flush()
			switch {
			case output == "json" || output == "yaml":
				return writeRecords(w, recs, output)
			case output != "" && output != "table":
				return fmt.Errorf("-o %q: want table, yaml or json", output)
			case all:
				return writeAllFields(w, recs, k)
			default:
				return writeTable(w, recs, k)
			}
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table, yaml or json")
	cmd.Flags().BoolVarP(&all, "all", "a", false, "every set field, its value and where it comes from")
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

func writeTable(w io.Writer, recs []*node.Node, k kind) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if k.profile {
		fmt.Fprintln(tw, "PROFILE\tCOMMENT\tIMAGE\tSYSTEM OVERLAYS\tRUNTIME OVERLAYS")
		for _, n := range recs {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", n.Name, dash(n.Comment), dash(n.ImageName),
				dash(strings.Join(n.SystemOverlay, ",")), dash(strings.Join(n.RuntimeOverlay, ",")))
		}
		return tw.Flush()
	}
	fmt.Fprintln(tw, "NODE\tPROFILES\tIMAGE\tHWADDR\tIPADDR")
	for _, n := range recs {
		var hw, ip string
		if _, d := n.Primary(); d != nil {
			hw, ip = d.Hwaddr, d.Ipaddr
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", n.Name, dash(strings.Join(n.Profiles, ",")), dash(n.ImageName), dash(hw), dash(ip))
	}
	return tw.Flush()
}

func writeAllFields(w io.Writer, recs []*node.Node, k kind) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "%s\tFIELD\tSOURCE\tVALUE\n", strings.ToUpper(k.noun))
	for _, n := range recs {
		for _, f := range n.Fields() {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", n.Name, f.Path, dash(f.Source), f.Value)
		}
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "--"
	}
	return s
}

func (k kind) editCmd() *cobra.Command {
	return &cobra.Command{
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
				header := fmt.Sprintf("# Edit the %ss below. Remove one to delete it, add one to create it.\n", k.noun)
				text = append([]byte(header), text...)
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
}

// applyEdit replaces the selected records with the edited YAML, on a trial
// copy first so a failed validation changes nothing.
func applyEdit(db *node.DB, recs, sel map[string]*node.Conf, edited []byte) error {
	var got map[string]*node.Conf
	if err := yaml.Unmarshal(edited, &got); err != nil {
		return fmt.Errorf("invalid YAML: %w", err)
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
	editor := os.Getenv("EDITOR")
	if editor == "" {
		editor = "vi"
	}
	dir, err := os.MkdirTemp("", "wwctl-edit-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "edit.yaml")
	if err := os.WriteFile(file, text, 0o600); err != nil {
		return nil, err
	}
	c := exec.Command("sh", "-c", editor+` "$1"`, "editor", file)
	c.Stdin, c.Stdout, c.Stderr = os.Stdin, os.Stdout, os.Stderr
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
					var got map[string]*node.Conf
					if err := yaml.Unmarshal(data, &got); err != nil {
						return fmt.Errorf("%s: invalid YAML: %w", args[0], err)
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
