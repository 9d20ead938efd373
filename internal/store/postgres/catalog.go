package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/levyhq/levy/internal/store"
	"github.com/levyhq/levy/internal/store/internal/codec"
)

// catalogLock is the advisory lock key that serialises PutCatalog across nodes, so version
// numbers are computed from the latest committed state.
const catalogLock = "levy.catalog"

// CreateAPIKey stores a key; ErrConflict if its ID or hash exists.
func (s *Store) CreateAPIKey(ctx context.Context, k store.APIKey) error {
	const op = "create api key"
	if k.ID == "" {
		return fmt.Errorf("postgres: %s: empty id", op)
	}
	if len(k.Hash) == 0 {
		return fmt.Errorf("postgres: %s: empty hash", op)
	}
	for _, f := range []struct{ n, v string }{{"id", k.ID}, {"name", k.Name}, {"prefix", k.Prefix}} {
		if err := codec.Text(f.n, f.v); err != nil {
			return fmt.Errorf("postgres: %s: %w", op, err)
		}
	}
	scopes, err := codec.Scopes(k.Scopes)
	if err != nil {
		return fmt.Errorf("postgres: %s: %w", op, err)
	}
	created, err := codec.Time(k.CreatedAt)
	if err != nil {
		return fmt.Errorf("postgres: %s: %w", op, err)
	}
	revoked, err := codec.OptTime(k.RevokedAt)
	if err != nil {
		return fmt.Errorf("postgres: %s: %w", op, err)
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO api_keys (id, name, hash, prefix, scopes, created_at, revoked_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, k.ID, k.Name, k.Hash, k.Prefix, scopes, created, revoked)
	return translate(op, err)
}

const apiKeyCols = `id, name, hash, prefix, scopes, created_at, revoked_at`

func scanAPIKey(row pgx.Row) (store.APIKey, error) {
	var (
		k       store.APIKey
		scopes  string
		created int64
		revoked *int64
	)
	if err := row.Scan(&k.ID, &k.Name, &k.Hash, &k.Prefix, &scopes, &created, &revoked); err != nil {
		return k, err
	}
	var err error
	if k.Scopes, err = codec.ParseScopes(scopes); err != nil {
		return k, err
	}
	k.CreatedAt = codec.ParseTime(created)
	k.RevokedAt = codec.ParseOptTime(revoked)
	return k, nil
}

// APIKeyByHash returns the unrevoked key with the hash, or ErrNotFound.
func (s *Store) APIKeyByHash(ctx context.Context, hash []byte) (store.APIKey, error) {
	k, err := scanAPIKey(s.pool.QueryRow(ctx,
		`SELECT `+apiKeyCols+` FROM api_keys WHERE hash = $1 AND revoked_at IS NULL`, hash))
	return k, translate("api key by hash", err)
}

// ListAPIKeys lists every key, revoked ones included, by ID.
func (s *Store) ListAPIKeys(ctx context.Context) ([]store.APIKey, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+apiKeyCols+` FROM api_keys ORDER BY id`)
	if err != nil {
		return nil, translate("list api keys", err)
	}
	ks, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.APIKey, error) { return scanAPIKey(r) })
	return ks, translate("list api keys", err)
}

// RevokeAPIKey marks a key revoked at the given time; revoking a revoked key keeps the first
// revocation time. ErrNotFound if there is no such key.
func (s *Store) RevokeAPIKey(ctx context.Context, id string, at time.Time) error {
	const op = "revoke api key"
	n, err := codec.Time(at)
	if err != nil {
		return fmt.Errorf("postgres: %s: %w", op, err)
	}
	if codec.Text("id", id) != nil {
		return fmt.Errorf("postgres: %s %q: %w", op, id, store.ErrNotFound)
	}
	tag, err := s.pool.Exec(ctx, `UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2`, n, id)
	if err != nil {
		return translate(op, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: %s %q: %w", op, id, store.ErrNotFound)
	}
	return nil
}

// PutCatalog stores the next catalog version and a new version of every changed plan, in one
// transaction serialised across nodes by an advisory lock.
func (s *Store) PutCatalog(ctx context.Context, p store.PutCatalogParams) (store.CatalogVersion, []store.PlanVersion, error) {
	const op = "put catalog"
	fail := func(err error) (store.CatalogVersion, []store.PlanVersion, error) {
		return store.CatalogVersion{}, nil, err
	}
	doc := string(p.Document)
	if err := codec.Text("document", doc); err != nil {
		return fail(fmt.Errorf("postgres: %s: %w", op, err))
	}
	created, err := codec.Time(p.CreatedAt)
	if err != nil {
		return fail(fmt.Errorf("postgres: %s: %w", op, err))
	}
	for i, ph := range p.Plans {
		if ph.Key == "" {
			return fail(fmt.Errorf("postgres: %s: plan %d: empty key", op, i))
		}
		if err := errors.Join(codec.Text("plan key", ph.Key), codec.Text("content hash", ph.ContentHash)); err != nil {
			return fail(fmt.Errorf("postgres: %s: plan %d: %w", op, i, err))
		}
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fail(translate(op, err))
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext($1))`, catalogLock); err != nil {
		return fail(translate(op, err))
	}
	cv := store.CatalogVersion{Document: []byte(doc), CreatedAt: codec.ParseTime(created)}
	if err := tx.QueryRow(ctx, `INSERT INTO catalog_versions (version, document, created_at)
		VALUES ((SELECT COALESCE(MAX(version), 0) + 1 FROM catalog_versions), $1, $2)
		RETURNING version`, doc, created).Scan(&cv.Version); err != nil {
		return fail(translate(op, err))
	}
	var pvs []store.PlanVersion
	for _, ph := range p.Plans {
		var (
			last int64
			hash string
		)
		err := tx.QueryRow(ctx, `SELECT version, content_hash FROM plan_versions
			WHERE plan_key = $1 ORDER BY version DESC LIMIT 1`, ph.Key).Scan(&last, &hash)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return fail(translate(op, err))
		}
		if err == nil && hash == ph.ContentHash {
			continue
		}
		pv := store.PlanVersion{PlanKey: ph.Key, Version: last + 1, CatalogVersion: cv.Version,
			ContentHash: ph.ContentHash, CreatedAt: cv.CreatedAt}
		if err := tx.QueryRow(ctx, `INSERT INTO plan_versions
			(plan_key, version, catalog_version, content_hash, created_at) VALUES ($1, $2, $3, $4, $5)
			RETURNING id`, pv.PlanKey, pv.Version, pv.CatalogVersion, pv.ContentHash, created).Scan(&pv.ID); err != nil {
			return fail(translate(op, err))
		}
		pvs = append(pvs, pv)
	}
	if err := tx.Commit(ctx); err != nil {
		return fail(translate(op, err))
	}
	return cv, pvs, nil
}

func scanCatalog(row pgx.Row) (store.CatalogVersion, error) {
	var (
		cv      store.CatalogVersion
		doc     string
		created int64
	)
	if err := row.Scan(&cv.Version, &doc, &created); err != nil {
		return cv, err
	}
	cv.Document = []byte(doc)
	cv.CreatedAt = codec.ParseTime(created)
	return cv, nil
}

// LatestCatalog returns the newest catalog version, or ErrNotFound.
func (s *Store) LatestCatalog(ctx context.Context) (store.CatalogVersion, error) {
	cv, err := scanCatalog(s.pool.QueryRow(ctx,
		`SELECT version, document, created_at FROM catalog_versions ORDER BY version DESC LIMIT 1`))
	return cv, translate("latest catalog", err)
}

// GetCatalog returns one catalog version, or ErrNotFound.
func (s *Store) GetCatalog(ctx context.Context, version int64) (store.CatalogVersion, error) {
	cv, err := scanCatalog(s.pool.QueryRow(ctx,
		`SELECT version, document, created_at FROM catalog_versions WHERE version = $1`, version))
	return cv, translate(fmt.Sprintf("get catalog %d", version), err)
}

const planVersionCols = `id, plan_key, version, catalog_version, content_hash, created_at`

func scanPlanVersion(row pgx.Row) (store.PlanVersion, error) {
	var (
		pv      store.PlanVersion
		created int64
	)
	if err := row.Scan(&pv.ID, &pv.PlanKey, &pv.Version, &pv.CatalogVersion, &pv.ContentHash, &created); err != nil {
		return pv, err
	}
	pv.CreatedAt = codec.ParseTime(created)
	return pv, nil
}

// GetPlanVersion returns a plan version by ID, or ErrNotFound.
func (s *Store) GetPlanVersion(ctx context.Context, id int64) (store.PlanVersion, error) {
	pv, err := scanPlanVersion(s.pool.QueryRow(ctx,
		`SELECT `+planVersionCols+` FROM plan_versions WHERE id = $1`, id))
	return pv, translate(fmt.Sprintf("get plan version %d", id), err)
}

// LatestPlanVersion returns the newest version of a plan, or ErrNotFound.
func (s *Store) LatestPlanVersion(ctx context.Context, planKey string) (store.PlanVersion, error) {
	if codec.Text("plan key", planKey) != nil {
		return store.PlanVersion{}, fmt.Errorf("postgres: latest plan version %q: %w", planKey, store.ErrNotFound)
	}
	pv, err := scanPlanVersion(s.pool.QueryRow(ctx,
		`SELECT `+planVersionCols+` FROM plan_versions WHERE plan_key = $1 ORDER BY version DESC LIMIT 1`, planKey))
	return pv, translate(fmt.Sprintf("latest plan version %q", planKey), err)
}

// ListPlanVersions lists every plan version by plan key, then version.
func (s *Store) ListPlanVersions(ctx context.Context) ([]store.PlanVersion, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+planVersionCols+` FROM plan_versions ORDER BY plan_key, version`)
	if err != nil {
		return nil, translate("list plan versions", err)
	}
	pvs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.PlanVersion, error) { return scanPlanVersion(r) })
	return pvs, translate("list plan versions", err)
}

// PutCustomer upserts a customer and, with Subscribe, appends a subscription, in one
// transaction. Nil Metadata or Limits keep the stored values (on create: empty metadata, no
// limits); a non-nil empty Limits clears them. A nil TierOverride and SetLowBalance false keep
// the stored override and threshold (on create: none). ErrNotFound if the plan version does not
// exist.
func (s *Store) PutCustomer(ctx context.Context, p store.PutCustomerParams) (store.Customer, error) {
	const op = "put customer"
	if p.ID == "" {
		return store.Customer{}, fmt.Errorf("postgres: %s: empty id", op)
	}
	if err := codec.Text("id", p.ID); err != nil {
		return store.Customer{}, fmt.Errorf("postgres: %s: %w", op, err)
	}
	meta, err := codec.Metadata(p.Metadata)
	if err != nil {
		return store.Customer{}, fmt.Errorf("postgres: %s %q: %w", op, p.ID, err)
	}
	limits, err := codec.OptText("limits", p.Limits)
	if err != nil {
		return store.Customer{}, fmt.Errorf("postgres: %s %q: %w", op, p.ID, err)
	}
	if limits != nil && !json.Valid([]byte(*limits)) {
		return store.Customer{}, fmt.Errorf("postgres: %s %q: limits are not JSON", op, p.ID)
	}
	now, err := codec.Time(p.Now)
	if err != nil {
		return store.Customer{}, fmt.Errorf("postgres: %s %q: %w", op, p.ID, err)
	}
	start, err := codec.Time(p.Start)
	if err != nil {
		return store.Customer{}, fmt.Errorf("postgres: %s %q: start: %w", op, p.ID, err)
	}
	tier, low, err := codec.CustomerTier(p)
	if err != nil {
		return store.Customer{}, fmt.Errorf("postgres: %s %q: %w", op, p.ID, err)
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return store.Customer{}, translate(op, err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `INSERT INTO customers (id, metadata, limits, created_at, updated_at,
			tier_override, low_balance)
		VALUES ($1, $2, $3, $4, $4, $7, $9::text::numeric)
		ON CONFLICT (id) DO UPDATE SET
			metadata      = CASE WHEN $5::boolean THEN excluded.metadata ELSE customers.metadata END,
			limits        = CASE WHEN $6::boolean THEN excluded.limits ELSE customers.limits END,
			tier_override = CASE WHEN $8::boolean THEN excluded.tier_override ELSE customers.tier_override END,
			low_balance   = CASE WHEN $10::boolean THEN excluded.low_balance ELSE customers.low_balance END,
			updated_at    = excluded.updated_at`,
		p.ID, meta, limits, now, p.Metadata != nil, p.Limits != nil,
		tier, p.TierOverride != nil, low, p.SetLowBalance); err != nil {
		return store.Customer{}, translate(op, err)
	}
	if p.Subscribe {
		if _, err := tx.Exec(ctx, `INSERT INTO subscriptions (customer_id, plan_version_id, starts_at, created_at)
			VALUES ($1, $2, $3, $4)`, p.ID, p.PlanVersionID, start, now); err != nil {
			return store.Customer{}, translate(fmt.Sprintf("%s %q: subscribe to plan version %d", op, p.ID, p.PlanVersionID), err)
		}
	}
	c, err := getCustomer(ctx, tx, p.ID)
	if err != nil {
		return store.Customer{}, translate(op, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return store.Customer{}, translate(op, err)
	}
	return c, nil
}

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

const customerCols = `id, metadata, limits, created_at, updated_at, tier_override, low_balance::text`

func scanCustomer(row pgx.Row) (store.Customer, error) {
	var (
		c                store.Customer
		meta             string
		limits, low      *string
		created, updated int64
	)
	if err := row.Scan(&c.ID, &meta, &limits, &created, &updated, &c.TierOverride, &low); err != nil {
		return c, err
	}
	var err error
	if c.Metadata, err = codec.ParseMetadata(meta); err != nil {
		return c, err
	}
	if c.LowBalance, err = codec.ParseOptDecimal(low); err != nil {
		return c, err
	}
	c.Limits = codec.ParseOptText(limits)
	c.CreatedAt = codec.ParseTime(created)
	c.UpdatedAt = codec.ParseTime(updated)
	return c, nil
}

func getCustomer(ctx context.Context, q querier, id string) (store.Customer, error) {
	if codec.Text("id", id) != nil {
		return store.Customer{}, pgx.ErrNoRows
	}
	c, err := scanCustomer(q.QueryRow(ctx, `SELECT `+customerCols+` FROM customers WHERE id = $1`, id))
	if err != nil {
		return c, err
	}
	cs := []store.Customer{c}
	if err := loadSubscriptions(ctx, q, cs); err != nil {
		return c, err
	}
	return cs[0], nil
}

// loadSubscriptions fills in the subscriptions of cs, oldest start first.
func loadSubscriptions(ctx context.Context, q querier, cs []store.Customer) error {
	if len(cs) == 0 {
		return nil
	}
	idx := make(map[string]int, len(cs))
	ids := make([]string, len(cs))
	for i, c := range cs {
		idx[c.ID] = i
		ids[i] = c.ID
	}
	rows, err := q.Query(ctx, `SELECT customer_id, id, plan_version_id, starts_at, created_at
		FROM subscriptions WHERE customer_id = ANY($1::text[])
		ORDER BY customer_id, starts_at, id`, ids)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			cid            string
			sub            store.Subscription
			start, created int64
		)
		if err := rows.Scan(&cid, &sub.ID, &sub.PlanVersionID, &start, &created); err != nil {
			return err
		}
		sub.Start = codec.ParseTime(start)
		sub.CreatedAt = codec.ParseTime(created)
		if i, ok := idx[cid]; ok {
			cs[i].Subscriptions = append(cs[i].Subscriptions, sub)
		}
	}
	return rows.Err()
}

// GetCustomer returns a customer with its subscriptions (by start, then ID), or ErrNotFound.
func (s *Store) GetCustomer(ctx context.Context, id string) (store.Customer, error) {
	c, err := getCustomer(ctx, s.pool, id)
	return c, translate(fmt.Sprintf("get customer %q", id), err)
}

// ListCustomers lists customers (with their subscriptions) by ID after the cursor; limit ≤ 0
// means all.
func (s *Store) ListCustomers(ctx context.Context, after string, limit int) ([]store.Customer, error) {
	const op = "list customers"
	if err := codec.Text("cursor", after); err != nil {
		return nil, fmt.Errorf("postgres: %s: %w", op, err)
	}
	rows, err := s.pool.Query(ctx, `SELECT `+customerCols+` FROM customers WHERE id > $1 ORDER BY id LIMIT $2`,
		after, limitArg(limit))
	if err != nil {
		return nil, translate(op, err)
	}
	cs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Customer, error) { return scanCustomer(r) })
	if err != nil {
		return nil, translate(op, err)
	}
	return cs, translate(op, loadSubscriptions(ctx, s.pool, cs))
}
