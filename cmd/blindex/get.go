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
	fs := newFlagSet("get", "--data DIR [--instance NAME] ID", getHelp, stderr)
	var c commonFlags
	c.register(fs, true)
	pos, done, code := parseCommand(fs, args)
	if done {
		return code
	}
	err := func() error {
		if len(pos) != 1 {
			return usageErrorf("give exactly one document ID")
		}
		e, err := openEnvReadOnly(c)
		if err != nil {
			return err
		}
		defer e.Close()
		in, err := e.openInstance(ctx, c, index.Options{})
		if err != nil {
			return err
		}
		defer in.Close()
		body, err := in.Get(ctx, pos[0])
		if errors.Is(err, index.ErrNotFound) {
			return inputErrorf("check the id (ids are case-sensitive), or find the document with 'blindex search'",
				"instance %q has no document with that id", c.instance)
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
	}()
	return report(stderr, "get", err)
}
