package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/blindex/blindex/index"
)

const checkHelp = `
Opens every record of an instance and verifies that the index agrees with
itself: every record authenticates under its key at its label, every live
document has its stored document and forward index, every dictionary entry
has its posting blocks, and nothing is left over. Problems are listed by
record kind and label (never by content). Exits 4 when any is found.
`

func runCheck(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := newStoreCmd(cmdSpec{name: "check", synopsis: "--data DIR [--instance NAME]", help: checkHelp, instance: true, open: openReadOnly}, stderr)
	c := &cmd.flags
	return cmd.run(args, cmd.noArgs, func(e *env, _ []string) error {
		in, err := e.openInstance(ctx, c.instance, index.Options{})
		if errors.Is(err, index.ErrCorrupt) {
			return &cliError{code: exitCorrupt,
				err:  fmt.Errorf("instance %q cannot be opened: %w", c.instance, err),
				next: "the records the instance opens with are damaged: restore the data directory from a backup"}
		}
		if err != nil {
			return err
		}
		defer in.Close()
		rep, err := in.Check(ctx)
		if errors.Is(err, index.ErrCorrupt) {
			return &cliError{code: exitCorrupt,
				err:  fmt.Errorf("instance %q: %w", c.instance, err),
				next: "the data directory was modified or damaged: restore it from a backup, or re-index the documents into a new instance"}
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "instance %q: checked %d records, %d documents, %d terms\n", c.instance, rep.Records, rep.Documents, rep.Terms)
		if len(rep.Problems) == 0 {
			fmt.Fprintln(stdout, "no problems found")
			return nil
		}
		fmt.Fprintf(stdout, "%d problems:\n\n", len(rep.Problems))
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "KIND\tLABEL\tREASON")
		for _, p := range rep.Problems {
			label := p.Label
			if label == "" {
				label = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\n", p.Kind, label, cell(p.Reason, 200))
		}
		tw.Flush()
		return &cliError{code: exitCorrupt,
			err:  fmt.Errorf("instance %q has %d problems (listed on standard output)", c.instance, len(rep.Problems)),
			next: "the data directory was modified or damaged: restore it from a backup, or re-index the documents into a new instance"}
	})
}
