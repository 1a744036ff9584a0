package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/blindex/blindex/store/control"
)

// Adopting control records written before they were authenticated (issue
// 11, item 2):
//
//	blindex adopt --data DIR [--yes]

const adoptHelp = `
Control records — instance manifests, encryption configurations,
organisation plans, server tokens — are stored readable (so that a locked
instance can be listed) but authenticated with a MAC under a key derived
from the provider key in --home, so whoever can write the data directory
cannot forge or edit them. Records written by an earlier blindex carry no
MAC: every command refuses them, and 'blindex instance ls' flags them.

'blindex adopt' lists those unauthenticated records; with --yes it
authenticates them, in one atomic batch. Adopting says you trust them as
they are: run it right after upgrading, on a data directory nobody else
could write, and check the list first (an unexpected token, a configuration
with a KMS key that is not the customer's). Records whose MAC does not
verify (edited, or written under another --home) are never adopted.
`

func runAdopt(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := newStoreCmd(cmdSpec{name: "adopt", synopsis: "--data DIR [--yes]", help: adoptHelp, open: openExisting}, stderr)
	c := &cmd.flags
	yes := cmd.fs.Bool("yes", false, "authenticate the listed records (without it, only list them)")
	return cmd.run(args, cmd.noArgs, func(e *env, _ []string) error {
		if err := e.openLocal(keyRequired); err != nil {
			return err
		}
		recs, err := e.ctl.Inspect([]byte{control.Namespace})
		if err != nil {
			return err
		}
		var adopt [][]byte
		forged := 0
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "KIND\tNAME\tSTATE\tDETAIL")
		for _, r := range recs {
			if r.State == control.StateOK {
				continue
			}
			detail := ""
			switch r.State {
			case control.StateUnauthenticated:
				adopt = append(adopt, r.Key)
				detail = recordDetail(r)
			case control.StateForged:
				forged++
				detail = "does not verify: never adopted"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Kind, orDash(r.Name), r.State, detail)
		}
		if len(adopt) == 0 && forged == 0 {
			fmt.Fprintf(stdout, "every control record in %s is authenticated; nothing to adopt\n", c.data)
			return nil
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		switch {
		case len(adopt) == 0:
			return inputErrorf("restore the records that do not verify from a trusted backup, or use the --home they were written with",
				"%d control records do not verify and none is unauthenticated; nothing adopted", forged)
		case !*yes:
			return inputErrorf(fmt.Sprintf("check the list, then run 'blindex adopt --data %s --yes' to authenticate the %d unauthenticated records", shellQuote(c.data), len(adopt)),
				"%d unauthenticated control records; nothing adopted without --yes", len(adopt))
		}
		if err := e.ctl.Adopt(adopt); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "adopted %d control records: they are authenticated under the provider key in %s\n", len(adopt), e.home)
		if forged > 0 {
			return inputErrorf("restore them from a trusted backup, or use the --home they were written with",
				"%d control records do not verify and were not adopted", forged)
		}
		return nil
	})
}

// recordDetail summarises an unauthenticated record for review: for a
// token its instance, scope and id; for a configuration its key ARN; for a
// plan the plan. Never a token's hash.
func recordDetail(r control.Record) string {
	var v struct {
		Instance string `json:"instance"`
		Scope    string `json:"scope"`
		ID       string `json:"id"`
		KeyARN   string `json:"key_arn"`
		Plan     string `json:"plan"`
		KeyID    string `json:"key_id"`
	}
	if json.Unmarshal(r.Body, &v) != nil {
		return "not valid JSON"
	}
	switch r.Kind {
	case "token":
		return fmt.Sprintf("instance %s, scope %s, id %s", v.Instance, v.Scope, v.ID)
	case "configuration":
		return "kms key " + v.KeyARN
	case "plan":
		return "plan " + v.Plan
	case "manifest":
		return "key " + v.KeyID
	}
	return ""
}
