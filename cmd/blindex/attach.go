package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/blindex/blindex/attach"
	"github.com/blindex/blindex/index"
)

const attachHelp = `
Manages the attachments of a document: files stored in the instance in
sealed chunks, their text (text/*, JSON, XML, logs: the first 1 MiB)
searchable with the document in the field attachments.content.

Subcommands:

  add --doc ID [--name N] [--type T] [--uploader U] FILE|-
        store FILE (- for standard input, streamed) as a new attachment of
        document ID; prints its description as JSON (its "id" is the
        ATTACH_ID the other subcommands take)
  get --doc ID [--out FILE] ATTACH_ID
        write the attachment's contents to standard output, or to FILE
        (written whole or not at all)
  ls  --doc ID [--json]
        list the document's attachments (works while the instance's key is
        revoked: attachment metadata is outside BYOK)
  rm  --doc ID ATTACH_ID
        delete an attachment (its text stops matching at once)

Every subcommand takes --data DIR, --instance NAME and --home DIR.
`

// runAttach runs "blindex attach SUBCOMMAND ...".
func runAttach(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintf(stderr, "Usage: blindex attach add|get|ls|rm [flags] [arguments]\n%s", attachHelp)
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprintf(stdout, "Usage: blindex attach add|get|ls|rm [flags] [arguments]\n%s", attachHelp)
		return exitOK
	case "add":
		return runAttachAdd(ctx, args[1:], stdin, stdout, stderr)
	case "get":
		return runAttachGet(ctx, args[1:], stdout, stderr)
	case "ls", "list":
		return runAttachList(ctx, args[1:], stdout, stderr)
	case "rm", "delete":
		return runAttachRemove(ctx, args[1:], stdout, stderr)
	}
	return report(stderr, "attach", usageErrorf("unknown subcommand %q: use add, get, ls or rm", args[0]))
}

// newAttachCmd returns the attach subcommand name with the flags every
// attach subcommand takes: the common flags, --instance and --doc.
func newAttachCmd(name, synopsis string, stderr io.Writer) (cmd *storeCmd, doc *string) {
	cmd = newStoreCmd(cmdSpec{name: name, synopsis: synopsis, help: attachHelp, instance: true, open: openExisting}, stderr)
	return cmd, cmd.fs.String("doc", "", "the document `ID` (required)")
}

// checkDoc is the check of --doc.
func checkDoc(doc string) error {
	if doc == "" {
		return usageErrorf("--doc ID is required")
	}
	return nil
}

// withAttachInstance opens the command's instance with its attachment
// metadata provider (the local provider) and runs fn on it.
func withAttachInstance(ctx context.Context, e *env, fn func(in *index.Instance) error) error {
	if err := e.openLocal(keyRequired); err != nil {
		return err
	}
	return e.withInstance(ctx, index.Options{MetadataProvider: e.prov}, func(in *index.Instance) error {
		return attachError(fn(in), &e.flags)
	})
}

// attachError gives the library's not-found errors a next step.
func attachError(err error, a *commonFlags) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, index.ErrAttachmentGone):
		return inputErrorf("run the command again", "the attachment or its document was deleted meanwhile")
	case errors.Is(err, index.ErrInvalidArgument):
		return inputErrorf(fmt.Sprintf("list the document's attachment ids with 'blindex attach ls %s --instance %s --doc ID'", a.storeArg(), a.instance), "%v", err)
	case errors.Is(err, index.ErrNotFound):
		return inputErrorf(fmt.Sprintf("check the document id, and list its attachments with 'blindex attach ls %s --instance %s --doc ID'", a.storeArg(), a.instance),
			"instance %q has no such document or attachment", a.instance)
	}
	return err
}

func runAttachAdd(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd, doc := newAttachCmd("attach add", "--data DIR [--instance NAME] --doc ID [--name N] [--type T] [--uploader U] FILE|-", stderr)
	name := cmd.fs.String("name", "", "the attachment's file `NAME` (default: FILE's base name)")
	typ := cmd.fs.String("type", "", "its content `TYPE`, e.g. text/plain (default: guessed from the name, else sniffed)")
	uploader := cmd.fs.String("uploader", "", "who uploads it (`NAME`; optional)")
	var r io.Reader = stdin
	var file *os.File // FILE, closed when the command is done
	var meta attach.Meta
	check := func(pos []string) error {
		if len(pos) != 1 {
			return usageErrorf("give exactly one FILE (- for standard input)")
		}
		meta = attach.Meta{Name: *name, ContentType: *typ, Uploader: *uploader}
		if pos[0] != "-" {
			f, err := os.Open(pos[0])
			if err != nil {
				return inputErrorf("check the file name and its permissions", "cannot read %s: %v", pos[0], err)
			}
			r, file = f, f
			if meta.Name == "" {
				meta.Name = filepath.Base(pos[0])
			}
		}
		return checkDoc(*doc)
	}
	defer func() {
		if file != nil {
			file.Close()
		}
	}()
	return cmd.run(args, check, func(e *env, _ []string) error {
		return withAttachInstance(ctx, e, func(in *index.Instance) error {
			info, err := in.AddAttachment(ctx, *doc, meta, r)
			if err != nil {
				return err
			}
			return attachJSON(stdout, info)
		})
	})
}

func runAttachGet(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd, doc := newAttachCmd("attach get", "--data DIR [--instance NAME] --doc ID [--out FILE] ATTACH_ID", stderr)
	out := cmd.fs.String("out", "", "write to `FILE` (replaced only when the whole attachment was read and authenticated) instead of standard output")
	return cmd.run(args, oneAttachID(doc), func(e *env, pos []string) error {
		return withAttachInstance(ctx, e, func(in *index.Instance) error {
			r, _, err := in.OpenAttachment(ctx, *doc, pos[0])
			if err != nil {
				return err
			}
			defer r.Close()
			if *out == "" {
				_, err := io.Copy(stdout, r)
				return err
			}
			return attachWriteFile(*out, r)
		})
	})
}

// oneAttachID is the check of a subcommand that takes one ATTACH_ID.
func oneAttachID(doc *string) func(pos []string) error {
	return func(pos []string) error {
		if len(pos) != 1 {
			return usageErrorf("give exactly one ATTACH_ID")
		}
		return checkDoc(*doc)
	}
}

// attachWriteFile writes r to path through a temporary file in the same
// directory, renamed over path only when r ended without error.
func attachWriteFile(path string, r io.Reader) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return inputErrorf("choose an --out in a directory you can write to", "cannot write %s: %v", path, err)
	}
	_, err = io.Copy(tmp, r)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}

func runAttachList(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd, doc := newAttachCmd("attach ls", "--data DIR [--instance NAME] --doc ID [--json]", stderr)
	asJSON := cmd.fs.Bool("json", false, "print one JSON object a line instead of a table")
	check := func(pos []string) error {
		if err := cmd.noArgs(pos); err != nil {
			return err
		}
		return checkDoc(*doc)
	}
	return cmd.run(args, check, func(e *env, _ []string) error {
		return withAttachInstance(ctx, e, func(in *index.Instance) error {
			list, err := in.ListAttachments(ctx, *doc)
			if err != nil {
				return err
			}
			if *asJSON {
				for _, info := range list {
					if err := attachJSON(stdout, info); err != nil {
						return err
					}
				}
				return nil
			}
			tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSIZE\tTYPE\tCREATED\tINDEXED\tNAME")
			for _, info := range list {
				indexed := "no"
				if info.Indexed {
					indexed = "yes"
					if info.TextTruncated {
						indexed = "first 1 MiB"
					}
				}
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", info.ID, info.Size, attachCell(info.ContentType),
					info.Created.Format(time.RFC3339), indexed, attachCell(info.Name))
			}
			return tw.Flush()
		})
	})
}

func runAttachRemove(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd, doc := newAttachCmd("attach rm", "--data DIR [--instance NAME] --doc ID ATTACH_ID", stderr)
	return cmd.run(args, oneAttachID(doc), func(e *env, pos []string) error {
		return withAttachInstance(ctx, e, func(in *index.Instance) error {
			if err := in.DeleteAttachment(ctx, *doc, pos[0]); err != nil {
				return err
			}
			fmt.Fprintln(stdout, "deleted 1 attachment")
			return nil
		})
	})
}

func attachJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// attachCell keeps a table cell on one line.
func attachCell(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == '\t' {
			return ' '
		}
		return r
	}, s)
}
