package httpapi

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/levyhq/levy/internal/problem"
	"github.com/levyhq/levy/internal/store"
)

// Authenticator checks API keys. Keys are stored as SHA-256 hashes; the configured admin key is
// compared in constant time. Positive lookups are cached for a few seconds; a revocation on this
// node takes effect at once, on other nodes within the cache time.
type Authenticator struct {
	store    store.Store
	adminKey []byte
	ttl      time.Duration
	now      func() time.Time

	mu    sync.Mutex
	cache map[[32]byte]cachedKey
}

type cachedKey struct {
	key     store.APIKey
	expires time.Time
}

// NewAuthenticator returns an authenticator; adminKey may be empty.
func NewAuthenticator(st store.Store, adminKey string) *Authenticator {
	return &Authenticator{store: st, adminKey: []byte(adminKey), ttl: 10 * time.Second, now: time.Now, cache: map[[32]byte]cachedKey{}}
}

// HashKey is the stored form of a secret.
func HashKey(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// NewSecret returns a fresh API key secret and an ID for it.
func NewSecret() (secret, id string) {
	var b [32]byte
	rand.Read(b[:])
	var i [8]byte
	rand.Read(i[:])
	return "levy_" + hex.EncodeToString(b[:]), "key_" + hex.EncodeToString(i[:])
}

// Check returns the key's scopes or an Unauthorized error.
func (a *Authenticator) Check(ctx context.Context, secret string) ([]store.Scope, error) {
	if secret == "" {
		return nil, problem.New(problem.Unauthorized, "missing API key: send Authorization: Bearer <key>")
	}
	if len(a.adminKey) > 0 && subtle.ConstantTimeCompare([]byte(secret), a.adminKey) == 1 {
		return []store.Scope{store.ScopeAdmin}, nil
	}
	h := sha256.Sum256([]byte(secret))
	now := a.now()
	a.mu.Lock()
	c, ok := a.cache[h]
	a.mu.Unlock()
	if ok && now.Before(c.expires) {
		return c.key.Scopes, nil
	}
	k, err := a.store.APIKeyByHash(ctx, h[:])
	if errors.Is(err, store.ErrNotFound) {
		return nil, problem.New(problem.Unauthorized, "unknown or revoked API key")
	}
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	if len(a.cache) > 10000 {
		a.cache = map[[32]byte]cachedKey{}
	}
	a.cache[h] = cachedKey{key: k, expires: now.Add(a.ttl)}
	a.mu.Unlock()
	return k.Scopes, nil
}

// Forget drops cached entries of a revoked key.
func (a *Authenticator) Forget(id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for h, c := range a.cache {
		if c.key.ID == id {
			delete(a.cache, h)
		}
	}
}

// allows reports whether scopes grant need (admin grants everything).
func allows(scopes []store.Scope, need store.Scope) bool {
	return slices.Contains(scopes, store.ScopeAdmin) || slices.Contains(scopes, need)
}

func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// require wraps a handler with an API key check for one scope.
func (a *API) require(need store.Scope, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		scopes, err := a.auth.Check(r.Context(), bearer(r))
		if err != nil {
			if problem.KindOf(err) == problem.Unauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer realm="levy"`)
			}
			a.writeError(w, r, err)
			return
		}
		if !allows(scopes, need) {
			a.writeError(w, r, problem.New(problem.Forbidden, "this API key lacks the %q scope", need))
			return
		}
		h(w, r)
	}
}

// ParseScopes validates scope names.
func ParseScopes(names []string) ([]store.Scope, error) {
	if len(names) == 0 {
		return nil, problem.Invalidf("scopes", "at least one of admin, ingest, authorize, read")
	}
	var out []store.Scope
	for _, n := range names {
		s := store.Scope(n)
		switch s {
		case store.ScopeAdmin, store.ScopeIngest, store.ScopeAuthorize, store.ScopeRead:
			if !slices.Contains(out, s) {
				out = append(out, s)
			}
		default:
			return nil, problem.Invalidf("scopes", "unknown scope %q (admin, ingest, authorize, read)", n)
		}
	}
	return out, nil
}
