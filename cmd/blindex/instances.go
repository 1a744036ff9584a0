package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/blindex/blindex/index"
)

const instancesHelp = `
Lists the instances in a data directory from their manifests, which are
readable without any key: name, creation time, wrapping key, key
generations, and whether the instance is BYOK.
`

func runInstances(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("instances", "--data DIR", instancesHelp, stderr)
	var c commonFlags
	c.register(fs, false)
	pos, done, code := parseCommand(fs, args)
	if done {
		return code
	}
	err := func() error {
		if len(pos) != 0 {
			return usageErrorf("instances takes no arguments")
		}
		e, err := openEnv(c, false)
		if err != nil {
			return err
		}
		defer e.Close()
		names, err := index.ListInstances(e.st)
		if err != nil {
			return err
		}
		if len(names) == 0 {
			fmt.Fprintf(stdout, "no instances in %s; create one with 'blindex index %s --mapping FILE FILE...'\n", c.storeName(), c.storeArg())
			return nil
		}
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tCREATED\tKEY\tGENERATIONS\tBYOK")
		for _, name := range names {
			m, err := index.ReadManifest(e.st, name)
			if err != nil {
				fmt.Fprintf(tw, "%s\t(unreadable: %v)\t\t\t\n", name, err)
				continue
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d (current %d)\t%s\n", name, m.Created.UTC().Format(time.RFC3339),
				m.KeyID, len(m.Generations), m.Current, strconv.FormatBool(m.Meta.BYOK))
		}
		return tw.Flush()
	}()
	return report(stderr, "instances", err)
}
