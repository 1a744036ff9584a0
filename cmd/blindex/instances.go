package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

const instancesHelp = `
Lists the instances in a data directory from their manifests, which are
readable without any instance key: name, creation time, wrapping key, key
generations, and whether the instance is BYOK. Manifests are authenticated
under the provider key in --home; one that is not is listed as refused.
`

func runInstances(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := newStoreCmd(cmdSpec{name: "instances", synopsis: "--data DIR", help: instancesHelp, open: openExisting}, stderr)
	c := &cmd.flags
	return cmd.run(args, cmd.noArgs, func(e *env, _ []string) error {
		views, err := e.instanceViews()
		if err != nil {
			return err
		}
		if len(views) == 0 {
			fmt.Fprintf(stdout, "no instances in %s; create one with 'blindex index %s --mapping FILE FILE...'\n", c.storeName(), c.storeArg())
			return nil
		}
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tCREATED\tKEY\tGENERATIONS\tBYOK")
		for _, v := range views {
			if v.Auth != "ok" {
				fmt.Fprintf(tw, "%s\t(manifest %s: refused; see 'blindex instance ls')\t\t\t\n", v.Name, strings.ToUpper(v.Auth))
				continue
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d (current %d)\t%s\n", v.Name, v.Created.UTC().Format(time.RFC3339),
				v.KeyID, len(v.Generations), v.Current, strconv.FormatBool(v.BYOK))
		}
		return tw.Flush()
	})
}
