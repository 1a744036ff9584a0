package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/blindex/blindex/index"
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

func viewOfPlan(cat *index.Catalog, op index.OrgPlan) orgView {
	return orgView{Org: op.Org, Plan: op.Plan, BYOK: cat.Policy().CheckConfig(op.Org, op.Plan) == nil, Updated: op.Updated}
}

func runOrgSet(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("org set", "--data DIR --org O --plan P [--policy FILE]", `
Sets organisation O's plan: one of the plans the policy names (the shipped
default: free, standard, premium, enterprise, enterprise-trial; the last two
offer BYOK). Creates the data directory if needed.
`, stderr)
	var f configFlags
	f.commonFlags.register(fs, false)
	f.register(fs)
	plan := fs.String("plan", "", "the `PLAN`")
	pos, done, code := parseCommand(fs, args)
	if done {
		return code
	}
	err := func() error {
		switch {
		case len(pos) != 0:
			return usageErrorf("org set takes no arguments")
		case f.org == "" || *plan == "":
			return usageErrorf("--org and --plan are required")
		}
		pol, err := f.loadPolicy()
		if err != nil {
			return err
		}
		if err := pol.CheckPlan(*plan); err != nil {
			return inputErrorf("choose a plan the policy names ('blindex policy show' prints it)", "%v", err)
		}
		e, err := openEnv(f.commonFlags, true)
		if err != nil {
			return err
		}
		defer e.Close()
		if err := e.openLocal(f.home, keyCreate); err != nil {
			return err
		}
		cat, err := e.catalog(index.Options{})
		if err != nil {
			return err
		}
		op, err := cat.SetPlan(f.org, *plan)
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
	}()
	return report(stderr, "org set", err)
}

func runOrgShow(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("org show", "--data DIR --org O [--json] [--policy FILE]", `
Prints organisation O's plan and whether it offers BYOK under the policy in
effect.
`, stderr)
	var f configFlags
	f.commonFlags.register(fs, false)
	f.register(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	pos, done, code := parseCommand(fs, args)
	if done {
		return code
	}
	err := func() error {
		switch {
		case len(pos) != 0:
			return usageErrorf("org show takes no arguments")
		case f.org == "":
			return usageErrorf("--org is required")
		}
		e, err := openEnv(f.commonFlags, false)
		if err != nil {
			return err
		}
		defer e.Close()
		cat, err := e.catalog(index.Options{})
		if err != nil {
			return err
		}
		op, err := cat.Plan(f.org)
		if errors.Is(err, index.ErrNotFound) {
			return inputErrorf(fmt.Sprintf("set it with 'blindex org set --data %s --org %s --plan PLAN'", shellQuote(f.data), shellQuote(f.org)),
				"organisation %q has no plan in %s", f.org, f.data)
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
	}()
	return report(stderr, "org show", err)
}

func runOrgList(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("org ls", "--data DIR [--json] [--policy FILE]", `
Lists every organisation's plan and whether it offers BYOK.
`, stderr)
	var c commonFlags
	c.register(fs, false)
	asJSON := fs.Bool("json", false, "print one JSON array")
	pos, done, code := parseCommand(fs, args)
	if done {
		return code
	}
	err := func() error {
		if len(pos) != 0 {
			return usageErrorf("org ls takes no arguments")
		}
		e, err := openEnv(c, false)
		if err != nil {
			return err
		}
		defer e.Close()
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
	}()
	return report(stderr, "org ls", err)
}
