package gateway

import (
	"context"
	"crypto/sha256"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/levyhq/levy/internal/billing"
	"github.com/levyhq/levy/internal/problem"
	"github.com/levyhq/levy/internal/store"
)

// CustomerResolver maps the Levy API key a client sends to the customer it acts for. Errors are
// problems: Unauthorized for a missing, unknown or revoked key (401 to the client), Forbidden
// for a key that may not use the gateway (403); any other error answers 503.
type CustomerResolver interface {
	Customer(ctx context.Context, apiKey string) (customerID string, err error)
}

// KeyStore is the part of the durable store a KeyNameResolver reads; store.Store satisfies it.
type KeyStore interface {
	APIKeyByHash(ctx context.Context, hash []byte) (store.APIKey, error)
}

// CustomerKeyPrefix starts the name of an API key bound to a customer: a key named
// "customer:cust_abc" acts for customer cust_abc.
const CustomerKeyPrefix = "customer:"

// CustomerFromKeyName returns the customer a key name binds: the rest of a name that starts
// with CustomerKeyPrefix, when it is a valid customer ID (billing.ValidCustomerID).
func CustomerFromKeyName(name string) (string, bool) {
	id, ok := strings.CutPrefix(name, CustomerKeyPrefix)
	if !ok || !billing.ValidCustomerID(id) {
		return "", false
	}
	return id, true
}

// KeyNameResolver is the CustomerResolver backed by Levy's API keys: the key must be stored
// (not revoked), carry the authorize or ingest scope, and be named "customer:<customerId>".
// Admin keys are refused: they are operator keys, never handed to a consumer. Keys are looked up
// by their SHA-256 hash, as the HTTP API stores them. Positive answers are cached for TTL, so a
// revocation takes effect within TTL; failures are not cached.
type KeyNameResolver struct {
	keys KeyStore
	ttl  time.Duration
	now  func() time.Time

	mu    sync.Mutex
	cache map[[32]byte]resolved
}

type resolved struct {
	customer string
	expires  time.Time
}

// maxCachedKeys bounds the resolver's cache; it is emptied when full.
const maxCachedKeys = 10000

// NewKeyNameResolver returns a resolver over ks; ttl ≤ 0 means 10 seconds.
func NewKeyNameResolver(ks KeyStore, ttl time.Duration) *KeyNameResolver {
	if ttl <= 0 {
		ttl = 10 * time.Second
	}
	return &KeyNameResolver{keys: ks, ttl: ttl, now: time.Now, cache: map[[32]byte]resolved{}}
}

// Customer implements CustomerResolver.
func (r *KeyNameResolver) Customer(ctx context.Context, apiKey string) (string, error) {
	if apiKey == "" {
		return "", errMissingKey
	}
	h := sha256.Sum256([]byte(apiKey))
	now := r.now()
	r.mu.Lock()
	c, ok := r.cache[h]
	r.mu.Unlock()
	if ok && now.Before(c.expires) {
		return c.customer, nil
	}
	k, err := r.keys.APIKeyByHash(ctx, h[:])
	if errors.Is(err, store.ErrNotFound) {
		return "", problem.New(problem.Unauthorized, "unknown or revoked Levy API key")
	}
	if err != nil {
		return "", err
	}
	if !slices.Contains(k.Scopes, store.ScopeAuthorize) && !slices.Contains(k.Scopes, store.ScopeIngest) {
		return "", problem.New(problem.Forbidden, "this Levy API key lacks the authorize or ingest scope the gateway requires")
	}
	id, ok := CustomerFromKeyName(k.Name)
	if !ok {
		return "", problem.New(problem.Forbidden, "this Levy API key is not bound to a customer: name it %q", CustomerKeyPrefix+"<customerId>")
	}
	r.mu.Lock()
	if len(r.cache) >= maxCachedKeys {
		r.cache = map[[32]byte]resolved{}
	}
	r.cache[h] = resolved{customer: id, expires: now.Add(r.ttl)}
	r.mu.Unlock()
	return id, nil
}

var errMissingKey = problem.New(problem.Unauthorized, "missing Levy API key: send it as the provider API key (Authorization: Bearer or x-api-key)")
