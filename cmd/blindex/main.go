// Command blindex is the command-line interface of the blindex encrypted
// search engine: it indexes NDJSON documents into an instance, searches it
// with bleve's query syntax, reads and deletes documents, checks that an
// instance's sealed records agree with each other, manages BYOK encryption
// configurations and instances (rotation, re-encryption, restore,
// crypto-shredding), and runs a demo.
//
// This file only parses the command name and dispatches; each command lives
// in its own file (index.go, search.go, config.go, instance.go, serve.go,
// bench.go, …). Every command that works on a store runs the same preamble
// (command.go: flags → argument checks → store → run → report); env.go
// opens a command's store, keys and tenancy.Catalog. run is the entry point
// the tests drive in-process.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Exit codes. They are part of the CLI's contract.
const (
	exitOK      = 0 // success
	exitUsage   = 1 // usage error, invalid input, or any other failure
	exitKey     = 3 // the instance's key is revoked, refused or locked, or the key home is not the instance's
	exitCorrupt = 4 // corruption detected
	exitKMS     = 5 // the key provider (KMS) cannot be reached now; retry later
	exitStorage = 6 // the disk holding the data directory is full or failing; nothing more was written
)

// command is one subcommand: its entry point and a one-line summary.
type command struct {
	run     func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int
	summary string
}

func commands() map[string]command {
	return map[string]command{
		"demo":      {withoutStdin(runDemo), "index a bundled sample into a temporary directory and search it"},
		"index":     {runIndex, "index NDJSON documents (creating the instance if needed)"},
		"search":    {runSearch, "search an instance with a query string or a JSON query"},
		"get":       {withoutStdin(runGet), "print a document's stored JSON"},
		"delete":    {withoutStdin(runDelete), "delete documents by id"},
		"check":     {withoutStdin(runCheck), "open every record of an instance and verify it agrees with itself"},
		"instances": {withoutStdin(runInstances), "list the instances in a data directory"},
		"attach":    {runAttach, "add, get, list or remove a document's attachments"},
		"serve":     {withoutStdin(runServe), "serve the instances of a data directory over HTTP"},
		"bench":     {withoutStdin(runBench), "benchmark blindex against plaintext bleve on a corpus"},
		"config":    {withoutStdin(runConfig), "create, show or list BYOK encryption configurations (an AWS KMS key and a region)"},
		"instance":  {withoutStdin(runInstance), "create, show, rotate, re-encrypt, restore or delete an instance (BYOK or not)"},
		"org":       {withoutStdin(runOrg), "set, show or list organisations' plans (which decide BYOK with the policy)"},
		"policy":    {withoutStdin(runPolicy), "print the BYOK availability policy in effect (products, early access, plans)"},
		"adopt":     {withoutStdin(runAdopt), "authenticate control records written before they were (after review)"},
	}
}

// commandOrder is the order of commands in the usage text.
var commandOrder = []string{"demo", "index", "search", "get", "delete", "check", "instances", "config", "org", "policy", "instance", "adopt", "attach", "serve", "bench"}

// withoutStdin adapts a command that reads no standard input.
func withoutStdin(f func(ctx context.Context, args []string, stdout, stderr io.Writer) int) func(context.Context, []string, io.Reader, io.Writer, io.Writer) int {
	return func(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
		return f(ctx, args, stdout, stderr)
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run runs the blindex command line args (without the program name) and
// returns the process exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	name := args[0]
	switch name {
	case "help", "-h", "-help", "--help":
		if len(args) > 1 {
			if c, ok := commands()[args[1]]; ok {
				return c.run(ctx, []string{"-h"}, stdin, stdout, stdout)
			}
		}
		usage(stdout)
		return exitOK
	}
	c, ok := commands()[name]
	if !ok {
		fmt.Fprintf(stderr, "blindex: unknown command %q\n", name)
		usage(stderr)
		return exitUsage
	}
	return c.run(ctx, args[1:], stdin, stdout, stderr)
}

func usage(w io.Writer) {
	fmt.Fprint(w, `blindex: an encrypted, searchable index engine.

Usage: blindex COMMAND [flags] [arguments]

Commands:
`)
	cmds := commands()
	for _, name := range commandOrder {
		if c, ok := cmds[name]; ok {
			fmt.Fprintf(w, "  %-10s %s\n", name, c.summary)
		}
	}
	fmt.Fprint(w, `
Run 'blindex COMMAND -h' for a command's flags. Start with 'blindex demo'.

Exit codes: 0 ok; 1 usage error, invalid input or other failure;
3 key revoked, refused or locked by revoke-now; 4 corruption detected;
5 key provider (KMS) unreachable, retry later; 6 disk full or failing.
`)
}
