package billing

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/levyhq/levy/internal/catalog"
	"github.com/levyhq/levy/internal/problem"
	"github.com/levyhq/levy/internal/rating"
	"github.com/levyhq/levy/internal/store"
)

// CatalogResult reports an applied catalog.
type CatalogResult struct {
	Version int64         `json:"version"`
	Plans   []PlanVersion `json:"plans"`
}

// PlanVersion is one plan's version after an apply.
type PlanVersion struct {
	Plan    string `json:"plan"`
	Version int64  `json:"version"`
	ID      int64  `json:"id"`
	Changed bool   `json:"changed"`
}

// ApplyCatalog validates a catalog document and stores it as the next catalog version. Every
// plan whose pricing changed (its charges, limits, period, or the meters, costs and currency it
// rates with) gets a new version; customers stay on theirs until moved.
func (s *Service) ApplyCatalog(ctx context.Context, data []byte) (CatalogResult, error) {
	doc, err := catalog.Parse(data)
	if err == nil {
		_, err = catalog.Build(doc)
	}
	if err != nil {
		var ve *catalog.ValidationError
		if errors.As(err, &ve) {
			pe := &problem.Error{Kind: problem.Invalid, Message: "the catalog is invalid"}
			for _, p := range ve.Problems {
				pe.Fields = append(pe.Fields, problem.Field{Field: p.Path, Message: p.Message})
			}
			return CatalogResult{}, pe
		}
		return CatalogResult{}, err
	}
	js, err := json.Marshal(doc)
	if err != nil {
		return CatalogResult{}, err
	}
	params := store.PutCatalogParams{Document: js, CreatedAt: s.now()}
	for i := range doc.Plans {
		h, err := planHash(doc, &doc.Plans[i])
		if err != nil {
			return CatalogResult{}, err
		}
		params.Plans = append(params.Plans, store.PlanHash{Key: doc.Plans[i].Key, ContentHash: h})
	}
	cv, created, err := s.store.PutCatalog(ctx, params)
	if err != nil {
		return CatalogResult{}, fmt.Errorf("store catalog: %w", err)
	}
	res := CatalogResult{Version: cv.Version, Plans: []PlanVersion{}}
	changed := map[string]store.PlanVersion{}
	for _, pv := range created {
		changed[pv.PlanKey] = pv
	}
	for _, ph := range params.Plans {
		if pv, ok := changed[ph.Key]; ok {
			res.Plans = append(res.Plans, PlanVersion{Plan: ph.Key, Version: pv.Version, ID: pv.ID, Changed: true})
			continue
		}
		pv, err := s.store.LatestPlanVersion(ctx, ph.Key)
		if err != nil {
			return res, fmt.Errorf("plan %s: %w", ph.Key, err)
		}
		res.Plans = append(res.Plans, PlanVersion{Plan: ph.Key, Version: pv.Version, ID: pv.ID})
	}
	return res, nil
}

// planHash hashes everything that prices a plan.
func planHash(doc *catalog.Document, p *catalog.PlanDoc) (string, error) {
	b, err := json.Marshal(struct {
		Currency string             `json:"currency"`
		Meters   []catalog.MeterDoc `json:"meters"`
		Costs    []catalog.CostDoc  `json:"costs"`
		Plan     *catalog.PlanDoc   `json:"plan"`
	}{doc.Currency, doc.Meters, doc.Costs, p})
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// LatestCatalog returns the newest catalog document as JSON.
func (s *Service) LatestCatalog(ctx context.Context) (store.CatalogVersion, error) {
	cv, err := s.store.LatestCatalog(ctx)
	if errors.Is(err, store.ErrNotFound) {
		return cv, problem.New(problem.NotFound, "no catalog has been applied yet: PUT /v1/catalog")
	}
	return cv, err
}

// catalogAt returns a compiled catalog version, compiling it once.
func (s *Service) catalogAt(ctx context.Context, version int64) (*catalog.Catalog, error) {
	s.catMu.RLock()
	c := s.catalogs[version]
	s.catMu.RUnlock()
	if c != nil {
		return c, nil
	}
	cv, err := s.store.GetCatalog(ctx, version)
	if err != nil {
		return nil, fmt.Errorf("catalog version %d: %w", version, err)
	}
	c, err = catalog.Load(cv.Document)
	if err != nil {
		return nil, fmt.Errorf("compile catalog version %d: %w", version, err)
	}
	s.catMu.Lock()
	s.catalogs[version] = c
	s.catMu.Unlock()
	return c, nil
}

// plan returns a plan version ready to rate with.
func (s *Service) plan(ctx context.Context, id int64) (*planRef, error) {
	s.catMu.RLock()
	p := s.plans[id]
	s.catMu.RUnlock()
	if p != nil {
		return p, nil
	}
	pv, err := s.store.GetPlanVersion(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("plan version %d: %w", id, err)
	}
	c, err := s.catalogAt(ctx, pv.CatalogVersion)
	if err != nil {
		return nil, err
	}
	pl := c.Plan(pv.PlanKey)
	if pl == nil {
		return nil, fmt.Errorf("plan version %d: plan %q is missing from catalog version %d", id, pv.PlanKey, pv.CatalogVersion)
	}
	p = &planRef{version: pv, cat: c, plan: pl, rater: rating.NewRater(c, pl)}
	s.catMu.Lock()
	if q := s.plans[id]; q != nil {
		p = q
	} else {
		s.plans[id] = p
	}
	s.catMu.Unlock()
	return p, nil
}
