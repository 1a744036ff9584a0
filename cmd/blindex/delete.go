package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/blindex/blindex/index"
)

const deleteHelp = `
Deletes the documents with the given ids, as one atomic batch. Ids that do
not exist are ignored; the command says how many documents it removed.
`

func runDelete(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("delete", "--data DIR [--instance NAME] ID...", deleteHelp, stderr)
	var c commonFlags
	c.register(fs, true)
	ids, done, code := parseCommand(fs, args)
	if done {
		return code
	}
	err := func() error {
		if len(ids) == 0 {
			return usageErrorf("give at least one document ID")
		}
		e, err := openEnv(c, false)
		if err != nil {
			return err
		}
		defer e.Close()
		in, err := e.openInstance(ctx, c, index.Options{})
		if err != nil {
			return err
		}
		defer in.Close()
		before, err := in.DocCount()
		if err != nil {
			return err
		}
		if err := in.Delete(ctx, ids...); err != nil {
			var de *index.DocumentError
			if errors.As(err, &de) {
				return inputErrorf("ids are 1 to 512 bytes of UTF-8; nothing was deleted",
					"id number %d of the arguments is not a valid document id", de.Index+1)
			}
			return err
		}
		after, err := in.DocCount()
		if err != nil {
			return err
		}
		removed := before - after
		fmt.Fprintf(stdout, "deleted %d of %d ids (%d did not exist); instance %q holds %d documents\n",
			removed, len(ids), uint64(len(ids))-removed, c.instance, after)
		return nil
	}()
	return report(stderr, "delete", err)
}
