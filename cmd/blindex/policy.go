package main

import (
	"context"
	"io"
)

// The BYOK availability policy (issue 15):
//
//	blindex policy show [--policy FILE]

const policyHelp = `
The BYOK availability policy says, per product, whether BYOK is generally
available ("ga"), offered through early access to the organisations on the
product's early_access_orgs list ("early-access"), or not offered ("none"),
which products are linked in a family (one BYOK setting per site), and which
plans may use BYOK. Every command that creates configurations or instances,
and 'blindex serve', take --policy FILE; without it the shipped default is
in effect.

Subcommands:

  show [--policy FILE]
        print the policy in effect, in the policy file's format
`

func runPolicy(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return dispatch(ctx, "policy", "show", policyHelp, args, stdout, stderr, map[string]subcommand{
		"show": runPolicyShow,
	})
}

func runPolicyShow(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("policy show", "[--policy FILE]", `
Prints the BYOK availability policy in effect — the file given with --policy
(after validating it), or the shipped default — in the format of a policy
file, so that its output is a valid --policy FILE to edit.
`, stderr)
	var c commonFlags
	fs.StringVar(&c.policy, "policy", "", "the BYOK availability policy `FILE` (default: the shipped policy)")
	pos, done, code := parseCommand(fs, args)
	if done {
		return code
	}
	err := func() error {
		if len(pos) != 0 {
			return usageErrorf("policy show takes no arguments")
		}
		p, err := c.loadPolicy()
		if err != nil {
			return err
		}
		_, err = stdout.Write(p.JSON())
		return err
	}()
	return report(stderr, "policy show", err)
}
