package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/blindex/blindex/index"
	"github.com/blindex/blindex/tenancy"
)

// Organisation plans (issue 15):
//
//	blindex org set --data DIR --org O --plan P
//	blindex org show --data DIR --org O [--json]
//	blindex org ls --data DIR [--json]

const orgHelp = `
Records each organisation's plan. The BYOK availability policy (see
'blindex policy show') says which plans may use BYOK: 'blindex config
create' refuses an organisation whose plan does not offer BYOK, or that has
no plan, and 'instance create --byok' checks the plan and the product.
Changing a plan never changes an existing instance.

Subcommands:

  set  --data DIR --org O --plan P [--policy FILE]
        set the organisation's plan (one the policy names)
  show --data DIR --org O [--json] [--policy FILE]
        print the plan and whether it offers BYOK
  ls   --data DIR [--json] [--policy FILE]
        list every organisation's plan
`

func runOrg(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return dispatch(ctx, "org", "set|show|ls", orgHelp, args, stdout, stderr, map[string]subcommand{
		"set":  runOrgSet,
		"show": runOrgShow,
		"ls":   runOrgList,
		"list": runOrgList,
	})
}

// orgView is an organisation's plan as org show and ls print it.
type orgView struct {
	Org     string    `json:"org"`
	Plan    string    `json:"plan"`
	BYOK    bool      `json:"byok"` // the plan offers BYOK under the policy in effect
	Updated time.Time `json:"updated"`
}

func viewOfPlan(cat *tenancy.Catalog, op tenancy.OrgPlan) orgView {
	return orgView{Org: op.Org, Plan: op.Plan, BYOK: cat.Policy().CheckConfig(op.Org, op.Plan) == nil, Updated: op.Updated}
}

func runOrgSet(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := newStoreCmd(cmdSpec{name: "org set", synopsis: "--data DIR --org O --plan P [--policy FILE]", open: openCreate, help: `
Sets organisation O's plan: one of the plans the policy names (the shipped
default: free, standard, premium, enterprise, enterprise-trial; the last two
offer BYOK). Creates the data directory if needed.
`}, stderr)
	c := &cmd.flags
	org := orgFlag(cmd.fs)
	plan := cmd.fs.String("plan", "", "the `PLAN`")
	check := func(pos []string) error {
		switch {
		case len(pos) != 0:
			return usageErrorf("org set takes no arguments")
		case *org == "" || *plan == "":
			return usageErrorf("--org and --plan are required")
		}
		pol, err := c.loadPolicy()
		if err != nil {
			return err
		}
		if err := pol.CheckPlan(*plan); err != nil {
			return inputErrorf("choose a plan the policy names ('blindex policy show' prints it)", "%v", err)
		}
		return nil
	}
	return cmd.run(args, check, func(e *env, _ []string) error {
		if err := e.openLocal(keyCreate); err != nil {
			return err
		}
		cat, err := e.catalog(index.Options{})
		if err != nil {
			return err
		}
		op, err := cat.SetPlan(*org, *plan)
		if err != nil {
			return err
		}
		v := viewOfPlan(cat, op)
		offers := "does not offer BYOK"
		if v.BYOK {
			offers = "offers BYOK"
		}
		fmt.Fprintf(stdout, "organisation %q is on plan %s, which %s\n", v.Org, v.Plan, offers)
		return nil
	})
}

func runOrgShow(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := newStoreCmd(cmdSpec{name: "org show", synopsis: "--data DIR --org O [--json] [--policy FILE]", open: openExisting, help: `
Prints organisation O's plan and whether it offers BYOK under the policy in
effect.
`}, stderr)
	c := &cmd.flags
	org := orgFlag(cmd.fs)
	asJSON := cmd.fs.Bool("json", false, "print JSON")
	check := func(pos []string) error {
		switch {
		case len(pos) != 0:
			return usageErrorf("org show takes no arguments")
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
		op, err := cat.Plan(*org)
		if errors.Is(err, index.ErrNotFound) {
			return inputErrorf(fmt.Sprintf("set it with 'blindex org set --data %s --org %s --plan PLAN'", shellQuote(c.data), shellQuote(*org)),
				"organisation %q has no plan in %s", *org, c.data)
		}
		if err != nil {
			return err
		}
		v := viewOfPlan(cat, op)
		if *asJSON {
			return writeJSON(stdout, v)
		}
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "organisation\t%s\n", v.Org)
		fmt.Fprintf(tw, "plan\t%s\n", v.Plan)
		fmt.Fprintf(tw, "byok\t%v\n", v.BYOK)
		fmt.Fprintf(tw, "updated\t%s\n", v.Updated.UTC().Format(time.RFC3339))
		return tw.Flush()
	})
}

func runOrgList(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := newStoreCmd(cmdSpec{name: "org ls", synopsis: "--data DIR [--json] [--policy FILE]", open: openExisting, help: `
Lists every organisation's plan and whether it offers BYOK.
`}, stderr)
	c := &cmd.flags
	asJSON := cmd.fs.Bool("json", false, "print one JSON array")
	return cmd.run(args, cmd.noArgs, func(e *env, _ []string) error {
		cat, err := e.catalog(index.Options{})
		if err != nil {
			return err
		}
		plans, err := cat.Plans()
		if err != nil {
			return err
		}
		views := []orgView{}
		for _, op := range plans {
			views = append(views, viewOfPlan(cat, op))
		}
		if *asJSON {
			return writeJSON(stdout, views)
		}
		if len(views) == 0 {
			fmt.Fprintf(stdout, "no organisation plans in %s; set one with 'blindex org set --data %s --org O --plan P'\n", c.data, shellQuote(c.data))
			return nil
		}
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ORG\tPLAN\tBYOK\tUPDATED")
		for _, v := range views {
			fmt.Fprintf(tw, "%s\t%s\t%v\t%s\n", v.Org, v.Plan, v.BYOK, v.Updated.UTC().Format(time.RFC3339))
		}
		return tw.Flush()
	})
}
