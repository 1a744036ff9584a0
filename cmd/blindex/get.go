package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/blindex/blindex/index"
)

const getHelp = `
Prints the stored JSON of the document with id ID.
`

func runGet(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := newStoreCmd(cmdSpec{name: "get", synopsis: "--data DIR [--instance NAME] ID", help: getHelp, instance: true, open: openReadOnly}, stderr)
	check := func(pos []string) error {
		if len(pos) != 1 {
			return usageErrorf("give exactly one document ID")
		}
		return nil
	}
	return cmd.run(args, check, func(e *env, pos []string) error {
		return e.withInstance(ctx, index.Options{}, func(in *index.Instance) error {
			body, err := in.Get(ctx, pos[0])
			if errors.Is(err, index.ErrNotFound) {
				return inputErrorf("check the id (ids are case-sensitive), or find the document with 'blindex search'",
					"instance %q has no document with that id", e.flags.instance)
			}
			if err != nil {
				return err
			}
			if _, err := stdout.Write(body); err != nil {
				return err
			}
			if len(body) == 0 || body[len(body)-1] != '\n' {
				fmt.Fprintln(stdout)
			}
			return nil
		})
	})
}
