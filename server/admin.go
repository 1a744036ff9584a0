package server

import (
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/blindex/blindex/index"
	"github.com/blindex/blindex/tenancy"
	"github.com/blindex/blindex/tokenize"
)

// ---- encryption configurations ----

type configRequest struct {
	Org    string `json:"org"`
	KeyARN string `json:"key_arn"`
	Region string `json:"region"`
}

type configView struct {
	Org       string      `json:"org"`
	KeyARN    string      `json:"key_arn"`
	Region    string      `json:"region"`
	Created   time.Time   `json:"created"`
	Instances int         `json:"instances"`
	Status    *statusView `json:"status,omitempty"`
}

type statusView struct {
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"`
}

func (s *Server) configView(c *call, cfg tenancy.EncryptionConfig) configView {
	v := configView{Org: cfg.Org, KeyARN: cfg.KeyARN, Region: cfg.Region, Created: cfg.Created}
	grp := "byok:" + cfg.Org
	for _, g := range s.groupStates(c.ctx) {
		if g.group == grp {
			v.Instances = g.instances
			v.Status = &statusView{State: g.state, Reason: g.reason}
		}
	}
	return v
}

func (s *Server) handleCreateConfig(c *call) error {
	var req configRequest
	if e := decodeJSON(c.body, &req); e != nil {
		return e
	}
	var missing []string
	if req.Org == "" {
		missing = append(missing, "org")
	}
	if req.KeyARN == "" {
		missing = append(missing, "key_arn")
	}
	if req.Region == "" {
		missing = append(missing, "region")
	}
	if len(missing) > 0 {
		return newErr(http.StatusBadRequest, CodeInvalidRequest, "missing field(s) %s: a configuration is an organisation, its KMS key ARN and the data-residency region", strings.Join(missing, ", "))
	}
	if err := s.cat.CreateConfig(tenancy.EncryptionConfig{Org: req.Org, KeyARN: req.KeyARN, Region: req.Region}); err != nil {
		return err
	}
	cfg, err := s.cat.Config(req.Org)
	if err != nil {
		return err
	}
	s.log.Info("encryption configuration created", "org", req.Org, "region", req.Region)
	writeJSON(c.w, http.StatusCreated, s.configView(c, cfg))
	return nil
}

func (s *Server) handleListConfigs(c *call) error {
	cfgs, err := s.cat.Configs()
	if err != nil {
		return err
	}
	out := make([]configView, 0, len(cfgs))
	for _, cfg := range cfgs {
		out = append(out, s.configView(c, cfg))
	}
	writeJSON(c.w, http.StatusOK, map[string]any{"configs": out})
	return nil
}

func (s *Server) handleShowConfig(c *call) error {
	cfg, err := s.cat.Config(c.r.PathValue("org"))
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, s.configView(c, cfg))
	return nil
}

// ---- instances ----

type instanceRequest struct {
	Name    string          `json:"name"`
	Org     string          `json:"org"`
	Site    string          `json:"site"`
	Product string          `json:"product"`
	Region  string          `json:"region"`
	BYOK    bool            `json:"byok"`
	Mapping json.RawMessage `json:"mapping"`
	// StrictMapping refuses keys of the mapping that bleve does not know
	// (bleve ignores them by default), naming each key's path.
	StrictMapping bool `json:"strict_mapping"`
}

type generationView struct {
	Gen     uint32    `json:"gen"`
	Created time.Time `json:"created"`
}

type instanceView struct {
	Name        string           `json:"name"`
	Org         string           `json:"org,omitempty"`
	Site        string           `json:"site,omitempty"`
	Product     string           `json:"product,omitempty"`
	Region      string           `json:"region,omitempty"`
	BYOK        bool             `json:"byok"`
	KeyID       string           `json:"key_id"`
	Generations []generationView `json:"generations"`
	Current     uint32           `json:"current_generation"`
	Created     time.Time        `json:"created"`
	// SLA is "covered", or "excluded" for a BYOK instance of an
	// early-access product, under the policy in effect.
	SLA       string          `json:"sla"`
	Status    *statusView     `json:"status,omitempty"`
	Documents *uint64         `json:"documents,omitempty"`
	Mapping   json.RawMessage `json:"mapping,omitempty"`
}

// viewOf is an instance's view with its SLA boundary under the policy in
// effect.
func (s *Server) viewOf(man *index.Manifest) instanceView {
	v := viewOf(man)
	v.SLA = string(s.cat.SLA(man.Meta))
	return v
}

func viewOf(man *index.Manifest) instanceView {
	v := instanceView{Name: man.Name, Org: man.Meta.Org, Site: man.Meta.Site, Product: man.Meta.Product,
		Region: man.Meta.Region, BYOK: man.Meta.BYOK, KeyID: man.KeyID, Current: man.Current, Created: man.Created}
	for _, g := range man.Generations {
		v.Generations = append(v.Generations, generationView{Gen: g.Gen, Created: g.Created})
	}
	return v
}

// validInstanceName is the rule for names created through the API: 1 to 200
// bytes of letters, digits and . _ - : @, starting with a letter or digit,
// so that a name is always one URL path segment.
func validInstanceName(n string) bool {
	if n == "" || len(n) > 200 {
		return false
	}
	for i, r := range n {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case i > 0 && strings.ContainsRune("._-:@", r):
		default:
			return false
		}
	}
	return true
}

func (s *Server) handleCreateInstance(c *call) error {
	var req instanceRequest
	if e := decodeJSON(c.body, &req); e != nil {
		return e
	}
	if !validInstanceName(req.Name) {
		return newErr(http.StatusBadRequest, CodeInvalidArgument, "field \"name\" must be 1 to 200 characters of letters, digits and . _ - : @, starting with a letter or a digit")
	}
	var m *tokenize.Mapping
	if len(req.Mapping) > 0 && string(req.Mapping) != "null" {
		var err error
		if m, err = tokenize.ParseMappingWithOptions(req.Mapping, tokenize.MappingOptions{Strict: req.StrictMapping}); err != nil {
			return err
		}
	}
	meta := index.Meta{Org: req.Org, Site: req.Site, Product: req.Product, Region: req.Region, BYOK: req.BYOK}
	in, err := s.cat.CreateInstance(c.ctx, req.Name, meta, m)
	if err != nil {
		return err
	}
	man := in.Manifest()
	s.groups.add(req.Name, man.Meta)
	s.neg.forget(req.Name)
	s.log.Info("instance created", "instance", req.Name, "byok", man.Meta.BYOK)
	v := s.viewOf(&man)
	v.Status = s.status(c, req.Name)
	writeJSON(c.w, http.StatusCreated, v)
	return nil
}

func (s *Server) handleListInstances(c *call) error {
	q := c.r.URL.Query()
	limit := 100
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 1000 {
			return newErr(http.StatusBadRequest, CodeInvalidArgument, "limit must be a number from 1 to 1000")
		}
		limit = n
	}
	after := q.Get("after")
	names, err := s.cat.Instances()
	if err != nil {
		return err
	}
	i := sort.SearchStrings(names, after)
	if i < len(names) && names[i] == after {
		i++
	}
	if after == "" {
		i = 0
	}
	out := []instanceView{}
	for ; i < len(names) && len(out) < limit; i++ {
		man, err := s.cat.Manifest(names[i])
		if errors.Is(err, index.ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return err
		}
		out = append(out, s.viewOf(man))
	}
	resp := map[string]any{"instances": out, "total": len(names)}
	if i < len(names) && len(out) > 0 {
		resp["next"] = out[len(out)-1].Name
	}
	writeJSON(c.w, http.StatusOK, resp)
	return nil
}

func (s *Server) status(c *call, name string) *statusView {
	st, err := s.cat.Status(c.ctx, name)
	if err != nil {
		return nil
	}
	return &statusView{State: st.State, Reason: st.Reason}
}

func (s *Server) manifest(name string) (*index.Manifest, error) {
	man, err := s.cat.Manifest(name)
	if errors.Is(err, index.ErrNotFound) {
		return nil, errInstanceNotFound(name)
	}
	return man, err
}

// handleShowInstance answers the manifest's public part, the key status
// and, when the instance can be opened, its document count and mapping.
// A locked instance still answers (its manifest needs no key).
func (s *Server) handleShowInstance(c *call) error {
	man, err := s.manifest(c.name)
	if err != nil {
		return err
	}
	v := s.viewOf(man)
	v.Status = s.status(c, c.name)
	if v.Status == nil || v.Status.State != stateLocked {
		s.withInstance(c, func(in *index.Instance) error {
			n, err := in.DocCount()
			if err != nil {
				return err
			}
			s.docs.set(c.name, n)
			v.Documents = &n
			v.Mapping = in.Mapping().JSON()
			return nil
		})
	}
	writeJSON(c.w, http.StatusOK, v)
	return nil
}

func (s *Server) handleStatus(c *call) error {
	if _, err := s.manifest(c.name); err != nil {
		return err
	}
	st, err := s.cat.Status(c.ctx, c.name)
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, statusView{State: st.State, Reason: st.Reason})
	return nil
}

func (s *Server) handleDeleteInstance(c *call) error {
	man, err := s.manifest(c.name)
	if err != nil {
		return err
	}
	s.jobs.cancel(c.name)
	if err := s.cat.Delete(c.ctx, c.name); err != nil {
		if errors.Is(err, index.ErrNotFound) {
			return errInstanceNotFound(c.name)
		}
		return err
	}
	if err := s.deleted(c.ctx, man.Prefix); err != nil {
		s.log.Warn("the other nodes were not told of a deletion; they close the instance when its ownership passes", "instance", c.name, "error", err)
	}
	revoked, err := s.tokens.revoke(c.name, "")
	s.groups.remove(c.name)
	s.docs.remove(c.name)
	s.neg.forget(c.name)
	s.jobs.forget(c.name)
	s.log.Info("instance deleted (crypto-shredded)", "instance", c.name, "tokens_revoked", revoked)
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, map[string]any{"deleted": c.name, "crypto_shredded": true, "tokens_revoked": revoked})
	return nil
}

func (s *Server) handleRevokeNow(c *call) error {
	if _, err := s.manifest(c.name); err != nil {
		return err
	}
	if err := s.cat.RevokeNow(c.ctx, c.name); err != nil {
		return err
	}
	n, msg := revokeNowScope(s.groups, c.name)
	s.log.Warn("keys revoked now by an administrator", "instance", c.name, "instances_locked", n)
	writeJSON(c.w, http.StatusOK, map[string]any{
		"status":           s.status(c, c.name),
		"instances_locked": n,
		"message":          msg,
	})
	return nil
}

func (s *Server) handleRestore(c *call) error {
	if _, err := s.manifest(c.name); err != nil {
		return err
	}
	s.neg.clear()
	err := s.cat.Restore(c.ctx, c.name)
	s.neg.clear()
	if err != nil {
		return err
	}
	s.log.Info("keys restored by an administrator", "instance", c.name)
	writeJSON(c.w, http.StatusOK, map[string]any{"status": s.status(c, c.name)})
	return nil
}

func (s *Server) handleRotate(c *call) error {
	if s.jobs.isRunning(c.name) {
		return newErr(http.StatusConflict, CodeConflict, "a re-encryption of this instance is running; wait for it to finish (GET .../reencrypt) before rotating again")
	}
	var gen uint32
	err := s.withInstance(c, func(in *index.Instance) error {
		var err error
		gen, err = in.Rotate(c.ctx)
		return err
	})
	if err != nil {
		return err
	}
	s.log.Info("instance key rotated", "instance", c.name, "generation", gen)
	man, err := s.manifest(c.name)
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, map[string]any{"current_generation": gen, "generations": s.viewOf(man).Generations,
		"message": "new writes use the new generation; run POST .../reencrypt to move older records to it and destroy the older generations' keys"})
	return nil
}

func (s *Server) handleEnableBYOK(c *call) error {
	if err := s.cat.EnableBYOK(c.name); err != nil {
		if errors.Is(err, index.ErrNotFound) {
			return errInstanceNotFound(c.name)
		}
		return err
	}
	return newErr(http.StatusInternalServerError, CodeInternal, "BYOK cannot be enabled on an existing instance")
}

// ---- tokens ----

type tokenRequest struct {
	Scope string `json:"scope"`
}

type tokenView struct {
	ID       string    `json:"id"`
	Instance string    `json:"instance"`
	Scope    string    `json:"scope"`
	Created  time.Time `json:"created"`
	Token    string    `json:"token,omitempty"`
}

func (s *Server) handleCreateToken(c *call) error {
	var req tokenRequest
	if e := decodeJSON(c.body, &req); e != nil {
		return e
	}
	if req.Scope != ScopeRead && req.Scope != ScopeWrite {
		return newErr(http.StatusBadRequest, CodeInvalidArgument, "field \"scope\" must be \"read\" (get and search) or \"write\" (read, plus put, delete and bulk)")
	}
	man, err := s.manifest(c.name)
	if err != nil {
		return err
	}
	tok, rec, err := s.tokens.create(c.name, man.Prefix, req.Scope)
	if err != nil {
		return err
	}
	s.log.Info("instance token created", "instance", c.name, "token_id", rec.ID, "scope", rec.Scope)
	writeJSON(c.w, http.StatusCreated, tokenView{ID: rec.ID, Instance: rec.Instance, Scope: rec.Scope, Created: rec.Created, Token: tok})
	return nil
}

func (s *Server) handleListTokens(c *call) error {
	if _, err := s.manifest(c.name); err != nil {
		return err
	}
	recs, err := s.tokens.list(c.name)
	if err != nil {
		return err
	}
	out := make([]tokenView, 0, len(recs))
	for _, r := range recs {
		out = append(out, tokenView{ID: r.ID, Instance: r.Instance, Scope: r.Scope, Created: r.Created})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	writeJSON(c.w, http.StatusOK, map[string]any{"tokens": out})
	return nil
}

func (s *Server) handleRevokeToken(c *call) error {
	if _, err := s.manifest(c.name); err != nil {
		return err
	}
	id := c.r.PathValue("id")
	n, err := s.tokens.revoke(c.name, id)
	if err != nil {
		return err
	}
	if n == 0 {
		return newErr(http.StatusNotFound, CodeNotFound, "this instance has no token with that id; list them with GET /v1/instances/{name}/tokens")
	}
	s.log.Info("instance token revoked", "instance", c.name, "token_id", id)
	writeJSON(c.w, http.StatusOK, map[string]any{"revoked": id})
	return nil
}

// ---- organisation plans and the BYOK policy ----

type planRequest struct {
	Plan string `json:"plan"`
}

type planView struct {
	Org     string    `json:"org"`
	Plan    string    `json:"plan"`
	BYOK    bool      `json:"byok"` // the plan offers BYOK under the policy in effect
	Updated time.Time `json:"updated"`
}

func (s *Server) planView(op tenancy.OrgPlan) planView {
	return planView{Org: op.Org, Plan: op.Plan, BYOK: s.cat.Policy().CheckConfig(op.Org, op.Plan) == nil, Updated: op.Updated}
}

// handleSetPlan sets an organisation's plan: PUT /v1/orgs/{org}
// {"plan": "enterprise"}, the API's `blindex org set`.
func (s *Server) handleSetPlan(c *call) error {
	var req planRequest
	if e := decodeJSON(c.body, &req); e != nil {
		return e
	}
	if req.Plan == "" {
		return newErr(http.StatusBadRequest, CodeInvalidRequest, "missing field plan: one of the plans the policy names (GET /v1/policy)")
	}
	op, err := s.cat.SetPlan(c.r.PathValue("org"), req.Plan)
	if err != nil {
		return err
	}
	s.log.Info("organisation plan set", "org", op.Org, "plan", op.Plan)
	writeJSON(c.w, http.StatusOK, s.planView(op))
	return nil
}

func (s *Server) handleShowPlan(c *call) error {
	op, err := s.cat.Plan(c.r.PathValue("org"))
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, s.planView(op))
	return nil
}

func (s *Server) handleListPlans(c *call) error {
	ops, err := s.cat.Plans()
	if err != nil {
		return err
	}
	out := make([]planView, 0, len(ops))
	for _, op := range ops {
		out = append(out, s.planView(op))
	}
	writeJSON(c.w, http.StatusOK, map[string]any{"orgs": out})
	return nil
}

// handleShowPolicy answers the policy in effect in the policy file's
// format, as `blindex policy show` prints it.
func (s *Server) handleShowPolicy(c *call) error {
	c.w.Header().Set("Content-Type", "application/json")
	c.w.WriteHeader(http.StatusOK)
	_, err := c.w.Write(s.cat.Policy().JSON())
	return err
}
