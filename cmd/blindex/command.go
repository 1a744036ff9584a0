package main

import (
	"flag"
	"io"
)

// storeCmd is the preamble that every command working on a store shares,
// written once: its flag set with the common flags (--data or --store,
// --home, --instance, the key provider flags), then
//
//	parse the flags → check the arguments → open the store (env) → run → report
//
// A usage error found by the check is reported before anything is opened
// or created; the command's error is reported on its standard error with
// what to do next, and mapped to the exit code (report).
type storeCmd struct {
	name   string // as in messages: "search", "instance show"
	fs     *flag.FlagSet
	flags  commonFlags // filled in by run's parse
	open   openMode
	stderr io.Writer
}

// cmdSpec describes a store command.
type cmdSpec struct {
	name     string // "search", "instance show"
	synopsis string // the usage line after "blindex NAME"
	help     string // the description printed by -h
	instance bool   // the command takes --instance
	open     openMode
}

// newStoreCmd returns the command of spec, its common flags registered.
// Commands register their own flags on its fs before run.
func newStoreCmd(spec cmdSpec, stderr io.Writer) *storeCmd {
	c := &storeCmd{name: spec.name, fs: newFlagSet(spec.name, spec.synopsis, spec.help, stderr), open: spec.open, stderr: stderr}
	c.flags.register(c.fs, spec.instance)
	return c
}

// run parses args (-h prints the usage, exit 0; a flag error exits 1),
// calls check with the positional arguments when it is not nil, opens the
// command's env, runs fn in it, closes it, and reports fn's error. It
// returns the exit code.
func (c *storeCmd) run(args []string, check func(pos []string) error, fn func(e *env, pos []string) error) int {
	pos, done, code := parseCommand(c.fs, args)
	if done {
		return code
	}
	return report(c.stderr, c.name, func() error {
		if check != nil {
			if err := check(pos); err != nil {
				return err
			}
		}
		e, err := openEnv(c.flags, c.open)
		if err != nil {
			return err
		}
		defer e.Close()
		return fn(e, pos)
	}())
}

// noArgs is the check of a command that takes no positional arguments.
func (c *storeCmd) noArgs(pos []string) error {
	if len(pos) != 0 {
		return usageErrorf("%s takes no arguments", c.name)
	}
	return nil
}
