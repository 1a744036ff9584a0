package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/blindex/blindex/index"
	"github.com/blindex/blindex/keys/awskms"
	"github.com/blindex/blindex/tenancy"
)

// The BYOK encryption configurations (issue 3, part 2):
//
//	blindex config create --data DIR --org O --kms-key-arn ARN --region R
//	blindex config show --data DIR --org O
//	blindex config ls --data DIR

const configHelp = `
Manages BYOK encryption configurations. An organisation has at most one: the
customer's AWS KMS key (its full key ARN, not an alias) and the
data-residency region, which must be the key's region. Every BYOK instance
of the organisation is wrapped by that key, and revoking the key in KMS
locks all of them.

Subcommands:

  create --data DIR --org O --kms-key-arn ARN --region R
        record the organisation's configuration; a second one is refused
  show   --data DIR --org O [--json]
        print the configuration and the BYOK instances under it
  ls     --data DIR [--json]
        list every configuration

Configurations are stored in the data directory, readable without any
instance key and authenticated under the provider key in --home. The
organisation's plan must offer BYOK under the policy (see 'blindex org' and
'blindex policy show').
No KMS call is made: the key is first used when a BYOK instance is created.
`

func runConfig(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return dispatch(ctx, "config", "create|show|ls", configHelp, args, stdout, stderr, map[string]subcommand{
		"create": runConfigCreate,
		"show":   runConfigShow,
		"ls":     runConfigList,
		"list":   runConfigList,
	})
}

// subcommand is one subcommand of config or instance.
type subcommand func(ctx context.Context, args []string, stdout, stderr io.Writer) int

// dispatch runs the subcommand named by args[0].
func dispatch(ctx context.Context, cmd, names, help string, args []string, stdout, stderr io.Writer, subs map[string]subcommand) int {
	usage := func(w io.Writer) { fmt.Fprintf(w, "Usage: blindex %s %s [flags]\n%s", cmd, names, help) }
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		usage(stdout)
		return exitOK
	}
	if sub, ok := subs[args[0]]; ok {
		return sub(ctx, args[1:], stdout, stderr)
	}
	return report(stderr, cmd, usageErrorf("unknown subcommand %q: use %s", args[0], names))
}

// orgFlag registers --org, the organisation of the config and org
// subcommands.
func orgFlag(fs *flag.FlagSet) *string {
	return fs.String("org", "", "the `ORGANISATION`")
}

func runConfigCreate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := newStoreCmd(cmdSpec{name: "config create", synopsis: "--data DIR --org O --kms-key-arn ARN --region R", open: openCreate, help: `
Records organisation O's BYOK encryption configuration: the AWS KMS key that
will wrap the root keys of its BYOK instances, and their data-residency
region (the key's region). The organisation's plan must offer BYOK under the
policy (--policy FILE; 'blindex org set' sets the plan). An organisation has
at most one configuration; a second one is refused. Creates the data directory if needed. No KMS call
is made.
`}, stderr)
	c := &cmd.flags
	org := orgFlag(cmd.fs)
	keyARN := cmd.fs.String("kms-key-arn", "", "the KMS key's full `ARN`: arn:aws:kms:REGION:ACCOUNT:key/ID (not an alias)")
	region := cmd.fs.String("region", "", "the data-residency `REGION`; must be the key's region")
	check := func(pos []string) error {
		switch {
		case len(pos) != 0:
			return usageErrorf("config create takes no arguments")
		case *org == "" || *keyARN == "" || *region == "":
			return usageErrorf("--org, --kms-key-arn and --region are required")
		}
		return nil
	}
	return cmd.run(args, check, func(e *env, _ []string) error {
		cat, err := e.catalog(index.Options{})
		if err != nil {
			return err
		}
		cfg := tenancy.EncryptionConfig{Org: *org, KeyARN: *keyARN, Region: *region}
		if old, err := cat.Config(*org); err == nil {
			return inputErrorf(fmt.Sprintf("an organisation has at most one BYOK configuration; see it with 'blindex config show %s --org %s'", c.storeArg(), shellQuote(*org)),
				"%w: organisation %q already has an encryption configuration (KMS key %s, region %s)", tenancy.ErrPolicy, *org, old.KeyARN, old.Region)
		}
		// The provider checks the ARN (a KMS key, not an alias) and that
		// its region is the configuration's, without calling KMS.
		if _, err := awskms.New(ctx, awskms.Options{KeyARN: cfg.KeyARN, Region: cfg.Region, Endpoint: c.kmsEndpoint, Org: cfg.Org}); err != nil {
			if strings.HasPrefix(err.Error(), "awskms: invalid options") {
				return inputErrorf("give the key's full ARN (arn:aws:kms:REGION:ACCOUNT:key/ID) and its region as --region; nothing was recorded",
					"%w: %w", tenancy.ErrPolicy, err)
			}
			return withNext(err, "fix the AWS configuration (AWS_PROFILE, AWS_CONFIG_FILE, AWS_REGION) or --kms-endpoint; nothing was recorded")
		}
		if err := cat.CreateConfig(cfg); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "created the encryption configuration of organisation %q: KMS key %s, region %s\n", *org, cfg.KeyARN, cfg.Region)
		fmt.Fprintf(stdout, "next: blindex instance create %s --instance NAME --org %s --site SITE --product PRODUCT --region %s --byok\n",
			c.storeArg(), shellQuote(*org), shellQuote(cfg.Region))
		return nil
	})
}

// configView is a configuration as config show and ls print it.
type configView struct {
	Org       string    `json:"org"`
	KeyARN    string    `json:"key_arn"`
	Region    string    `json:"region"`
	Created   time.Time `json:"created"`
	Instances []string  `json:"instances"` // the BYOK instances under it
}

// configViews returns the views of cfgs, with their instances.
func configViews(cat *tenancy.Catalog, cfgs []tenancy.EncryptionConfig) ([]configView, error) {
	names, err := cat.Instances()
	if err != nil {
		return nil, err
	}
	byOrg := map[string][]string{}
	for _, n := range names {
		m, err := cat.Manifest(n)
		if err != nil {
			return nil, err
		}
		if m.Meta.BYOK {
			byOrg[m.Meta.Org] = append(byOrg[m.Meta.Org], n)
		}
	}
	out := make([]configView, 0, len(cfgs))
	for _, c := range cfgs {
		out = append(out, configView{Org: c.Org, KeyARN: c.KeyARN, Region: c.Region, Created: c.Created, Instances: append([]string{}, byOrg[c.Org]...)})
	}
	return out, nil
}

func runConfigShow(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := newStoreCmd(cmdSpec{name: "config show", synopsis: "--data DIR --org O [--json]", open: openExisting, help: `
Prints organisation O's encryption configuration (KMS key ARN, region,
creation time) and the BYOK instances under it. Needs no key.
`}, stderr)
	c := &cmd.flags
	org := orgFlag(cmd.fs)
	asJSON := cmd.fs.Bool("json", false, "print JSON")
	check := func(pos []string) error {
		switch {
		case len(pos) != 0:
			return usageErrorf("config show takes no arguments")
		case *org == "":
			return usageErrorf("--org is required")
		}
		return nil
	}
	return cmd.run(args, check, func(e *env, _ []string) error {
		cat, err := e.catalog(index.Options{})
		if err != nil {
			return err
		}
		cfg, err := cat.Config(*org)
		if errors.Is(err, index.ErrNotFound) {
			return inputErrorf(fmt.Sprintf("list the configurations with 'blindex config ls %s', or create this one with 'blindex config create %s --org %s --kms-key-arn ARN --region R'",
				c.storeArg(), c.storeArg(), shellQuote(*org)), "organisation %q has no encryption configuration in %s", *org, c.storeName())
		}
		if err != nil {
			return err
		}
		views, err := configViews(cat, []tenancy.EncryptionConfig{cfg})
		if err != nil {
			return err
		}
		v := views[0]
		if *asJSON {
			return writeJSON(stdout, v)
		}
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "organisation\t%s\n", v.Org)
		fmt.Fprintf(tw, "kms key\t%s\n", v.KeyARN)
		fmt.Fprintf(tw, "region\t%s\n", v.Region)
		fmt.Fprintf(tw, "created\t%s\n", v.Created.UTC().Format(time.RFC3339))
		fmt.Fprintf(tw, "byok instances\t%s\n", listOrNone(v.Instances))
		return tw.Flush()
	})
}

func runConfigList(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := newStoreCmd(cmdSpec{name: "config ls", synopsis: "--data DIR [--json]", open: openExisting, help: `
Lists every encryption configuration of the data directory: organisation,
region, KMS key ARN, creation time and the number of BYOK instances.
`}, stderr)
	c := &cmd.flags
	asJSON := cmd.fs.Bool("json", false, "print one JSON array")
	return cmd.run(args, cmd.noArgs, func(e *env, _ []string) error {
		cat, err := e.catalog(index.Options{})
		if err != nil {
			return err
		}
		cfgs, err := cat.Configs()
		if err != nil {
			return err
		}
		views, err := configViews(cat, cfgs)
		if err != nil {
			return err
		}
		if *asJSON {
			return writeJSON(stdout, views)
		}
		if len(views) == 0 {
			fmt.Fprintf(stdout, "no encryption configurations in %s; create one with 'blindex config create %s --org O --kms-key-arn ARN --region R'\n", c.storeName(), c.storeArg())
			return nil
		}
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ORG\tREGION\tKMS KEY\tCREATED\tBYOK INSTANCES")
		for _, v := range views {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\n", v.Org, v.Region, v.KeyARN, v.Created.UTC().Format(time.RFC3339), len(v.Instances))
		}
		return tw.Flush()
	})
}

// listOrNone joins names with ", ", or says "none".
func listOrNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	s := names[0]
	for _, n := range names[1:] {
		s += ", " + n
	}
	return s
}
