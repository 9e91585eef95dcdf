// wwstage1 is the first stage of the two-stage boot: the /init of a small
// initramfs that fetches the node's image itself (see docs/boot.md).
//
// As PID 1 it boots the node. Otherwise `wwstage1 fetch URL DIR` fetches
// and unpacks one archive as stage 1 would (a benchmark, a debugging aid).
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/warewulf-ng/warewulf/internal/stage1"
)

func main() {
	if os.Getpid() == 1 {
		stage1.Main()
	}
	if len(os.Args) != 4 || os.Args[1] != "fetch" {
		fmt.Fprintln(os.Stderr, "usage: wwstage1 fetch URL DIR   (as PID 1 it boots the node)")
		os.Exit(2)
	}
	logf := func(f string, a ...any) { fmt.Fprintf(os.Stderr, "wwstage1: "+f+"\n", a...) }
	start := time.Now()
	st, err := stage1.Fetch(context.Background(), nil, os.Args[2], os.Args[3], logf)
	if err != nil {
		fmt.Fprintln(os.Stderr, "wwstage1:", err)
		os.Exit(1)
	}
	logf("%d bytes, %d entries in %v, %d resumes, %d waits, verified %v",
		st.Bytes, st.Entries, time.Since(start).Round(time.Millisecond), st.Resumes, st.Waits, st.Verified)
}
