package wwctl

import (
	"os"
	"os/exec"
	"strings"
)

// editorCmd runs $EDITOR (default vi) on file, at the terminal. As
// upstream, an EDITOR naming a program is run as that program, whatever
// characters its path has ("/opt/my (CoW) tools/ed.sh"). Other values
// with blanks, such as "vim -u NONE", are not a program's path, which
// upstream then fails to run: a shell runs those, the file as "$1".
func editorCmd(file string) (*exec.Cmd, string) {
	editor := os.Getenv("EDITOR")
	if editor == "" {
		editor = "vi"
	}
	var c *exec.Cmd
	if st, err := os.Stat(editor); (err == nil && !st.IsDir()) || !strings.ContainsAny(editor, " \t") {
		c = exec.Command(editor, file)
	} else {
		c = exec.Command("sh", "-c", editor+` "$1"`, "editor", file)
	}
	c.Stdin, c.Stdout, c.Stderr = os.Stdin, os.Stdout, os.Stderr
	return c, editor
}
