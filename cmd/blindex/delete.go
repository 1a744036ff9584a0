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
	cmd := newStoreCmd(cmdSpec{name: "delete", synopsis: "--data DIR [--instance NAME] ID...", help: deleteHelp, instance: true, open: openExisting}, stderr)
	check := func(ids []string) error {
		if len(ids) == 0 {
			return usageErrorf("give at least one document ID")
		}
		return nil
	}
	return cmd.run(args, check, func(e *env, ids []string) error {
		return e.withInstance(ctx, index.Options{}, func(in *index.Instance) error {
			return deleteIDs(ctx, in, ids, e.flags.instance, stdout)
		})
	})
}

// deleteIDs deletes ids from in as one batch and says how many it removed.
func deleteIDs(ctx context.Context, in *index.Instance, ids []string, instance string, stdout io.Writer) error {
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
		removed, len(ids), uint64(len(ids))-removed, instance, after)
	return nil
}
