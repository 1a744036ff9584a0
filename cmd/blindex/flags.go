package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/blindex/blindex/keys"
	"github.com/blindex/blindex/policy"
	"github.com/blindex/blindex/store"
	"github.com/blindex/blindex/store/postgres"
)

// commonFlags are the flags every command that opens an instance takes:
// where the store and the keys are, and how the key providers behave.
type commonFlags struct {
	data     string
	store    string // --store: a postgres:// URL, in place of data
	instance string
	home     string

	lease       time.Duration // revocation bound of every keyring
	audit       string        // audit log file, "-" for standard error, "" for none
	kmsEndpoint string        // AWS KMS endpoint override
	kmsTimeout  time.Duration // one KMS request attempt
	policy      string        // BYOK policy file, "" for the shipped default
	minFreeMB   int           // free space the store keeps, MiB; 0: no reserve

	stderr io.Writer // where --audit - writes: the command's standard error
}

func (c *commonFlags) register(fs *flag.FlagSet, withInstance bool) {
	c.stderr = fs.Output()
	fs.StringVar(&c.data, "data", "", "data `DIR`ectory of the store (required unless --store is given)")
	fs.StringVar(&c.store, "store", "", "a store in a PostgreSQL-compatible database, in place of --data: a postgres://user@host:port/database?sslmode=... `URL` (the password in $PGPASSWORD or ~/.pgpass: command lines are visible to other local users)")
	if withInstance {
		fs.StringVar(&c.instance, "instance", "default", "instance `NAME`")
	}
	fs.StringVar(&c.home, "home", "", "key `DIR`ectory holding provider.key and the instances' shredding secrets (default $BLINDEX_HOME, or ~/.blindex); never inside the data directory")
	fs.DurationVar(&c.lease, "lease", keys.DefaultLease, "revocation bound: how long an unwrapped key is used before it is re-validated with the key provider (at least 1s)")
	fs.StringVar(&c.audit, "audit", "", "append one JSON line per key provider call (KMS GenerateDataKey and Decrypt, local key use) and per lock or unlock to `FILE`; - for standard error")
	fs.StringVar(&c.audit, "audit-log", "", "the same as --audit")
	fs.StringVar(&c.kmsEndpoint, "kms-endpoint", "", "AWS KMS endpoint `URL` for BYOK instances (default: the AWS configuration chain: AWS_ENDPOINT_URL_KMS, the shared config, else AWS's endpoint for the region)")
	fs.DurationVar(&c.kmsTimeout, "kms-timeout", 0, "time limit of one KMS request attempt; failed attempts are retried with backoff (default 5s)")
	fs.StringVar(&c.policy, "policy", "", "the BYOK availability policy `FILE` (JSON; see 'blindex policy show'); default: the shipped policy")
	fs.IntVar(&c.minFreeMB, "min-free-mb", store.DefaultMinFreeBytes>>20, "free space, in MiB, the store keeps on the data directory's disk: a write that would go below it is refused (exit 6) and writes resume once space is freed; 0 disables the reserve")
}

// loadPolicy returns the policy of --policy, or the shipped default.
func (c *commonFlags) loadPolicy() (*policy.Policy, error) {
	if c.policy == "" {
		return policy.Default(), nil
	}
	p, err := policy.Load(c.policy)
	if err != nil {
		return nil, inputErrorf("fix the policy file as the message says ('blindex policy show' prints the shipped default in the same format)", "%v", err)
	}
	return p, nil
}

// storeMinFree returns the store's MinFreeBytes for --min-free-mb.
func (c *commonFlags) storeMinFree() int64 {
	if c.minFreeMB == 0 {
		return -1
	}
	return int64(c.minFreeMB) << 20
}

// check validates the common flags.
func (c *commonFlags) check() error {
	switch {
	case c.data == "" && c.store == "":
		return usageErrorf("--data DIR is required (or --store postgres://...)")
	case c.data != "" && c.store != "":
		return usageErrorf("give --data DIR or --store URL, not both")
	case c.store != "" && !postgres.IsURL(c.store):
		return usageErrorf("--store takes a postgres:// or postgresql:// URL")
	case c.lease < keys.MinLease:
		return usageErrorf("--lease must be at least %v", keys.MinLease)
	case c.kmsTimeout < 0:
		return usageErrorf("--kms-timeout must not be negative")
	case c.minFreeMB < 0:
		return usageErrorf("--min-free-mb must not be negative")
	}
	return nil
}

// storeArg returns the flag that names the store, for messages: --data DIR
// or --store URL (its password masked), shell-quoted.
func (c *commonFlags) storeArg() string {
	if c.store != "" {
		return "--store " + shellQuote(postgres.Redact(c.store))
	}
	return "--data " + shellQuote(c.data)
}

// storeName names the store for messages: the data directory, or the URL
// with its password masked.
func (c *commonFlags) storeName() string {
	if c.store != "" {
		return postgres.Redact(c.store)
	}
	return c.data
}

// newFlagSet returns a flag set for a command whose usage is the synopsis
// followed by a description and the flag defaults.
func newFlagSet(name, synopsis, description string, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("blindex "+name, flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: blindex %s %s\n\n%s\n\nFlags:\n", name, synopsis, strings.TrimSpace(description))
		fs.PrintDefaults()
	}
	return fs
}

// parseArgs parses flags that may come before, between or after the
// positional arguments, and returns the positional arguments. Everything
// after "--" is positional.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		consumed := len(args) - len(rest)
		if consumed > 0 && args[consumed-1] == "--" && !isFlagValue(fs, args[:consumed]) {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// isFlagValue reports whether the last of args is the value of a flag
// written as "--name value" (so a literal "--" given as a value is not taken
// as the end of the flags).
func isFlagValue(fs *flag.FlagSet, args []string) bool {
	if len(args) < 2 {
		return false
	}
	prev := args[len(args)-2]
	if !strings.HasPrefix(prev, "-") || strings.Contains(prev, "=") {
		return false
	}
	f := fs.Lookup(strings.TrimLeft(prev, "-"))
	if f == nil {
		return false
	}
	if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
		return false
	}
	return true
}

// parseCommand parses args with fs. It returns done=true with the exit code
// when the command must stop: after -h, which prints the usage (exit 0), or
// after a flag error, which is reported in one short message (exit 1).
func parseCommand(fs *flag.FlagSet, args []string) (pos []string, done bool, code int) {
	out, fullUsage := fs.Output(), fs.Usage
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	pos, err := parseArgs(fs, args)
	fs.SetOutput(out)
	fs.Usage = fullUsage
	switch {
	case errors.Is(err, flag.ErrHelp):
		fullUsage()
		return nil, true, exitOK
	case err != nil:
		name := strings.TrimPrefix(fs.Name(), "blindex ")
		ce := usageErrorf("%v", err).(*cliError)
		if name == "search" {
			ce.next = "a query that begins with '-' goes after '--': blindex search --data DIR -- '-status:Closed'"
		}
		return nil, true, report(out, name, ce)
	}
	return pos, false, 0
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
