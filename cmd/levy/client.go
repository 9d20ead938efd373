package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// clientFlags are the flags of commands that talk to a running server.
type clientFlags struct {
	url  *string
	key  *string
	data *string
}

func addClientFlags(fs *flag.FlagSet) clientFlags {
	return clientFlags{
		url:  fs.String("url", envOr("LEVY_URL", "http://127.0.0.1:7070"), "server URL (LEVY_URL)"),
		key:  fs.String("key", os.Getenv("LEVY_API_KEY"), "API key (LEVY_API_KEY; default: <data>/admin.key, then LEVY_ADMIN_KEY)"),
		data: fs.String("data", envOr("LEVY_DATA", "./levy-data"), "data directory holding admin.key (LEVY_DATA)"),
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func (c clientFlags) apiKey() string {
	if *c.key != "" {
		return *c.key
	}
	if b, err := os.ReadFile(filepath.Join(*c.data, "admin.key")); err == nil {
		return strings.TrimSpace(string(b))
	}
	return os.Getenv("LEVY_ADMIN_KEY")
}

// call sends one request and decodes a JSON answer into out (when not nil). A non-2xx answer
// becomes an error carrying the problem document's detail and field errors.
func (c clientFlags) call(ctx context.Context, method, path, contentType string, body []byte, out any) error {
	_, data, err := c.send(ctx, method, path, contentType, "", body)
	if err != nil {
		return err
	}
	if out != nil && len(data) > 0 {
		return json.Unmarshal(data, out)
	}
	return nil
}

// send sends one request and returns the answer's status and body. A non-2xx answer becomes an
// error carrying the problem document's detail and field errors.
func (c clientFlags) send(ctx context.Context, method, path, contentType, accept string, body []byte) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(*c.url, "/")+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	req.Header.Set("Authorization", "Bearer "+c.apiKey())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("read the answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, data, problemError(resp, data)
	}
	return resp.StatusCode, data, nil
}

// problemError turns a non-2xx answer into an error: the problem document's detail and each
// field error on its own line, or the status and body when the answer is not a problem.
func problemError(resp *http.Response, data []byte) error {
	var p struct {
		Detail string `json:"detail"`
		Errors []struct {
			Index *int   `json:"index"`
			Field string `json:"field"`
			Msg   string `json:"message"`
		} `json:"errors"`
	}
	if json.Unmarshal(data, &p) == nil && p.Detail != "" {
		var b strings.Builder
		fmt.Fprintf(&b, "%s (%d)", p.Detail, resp.StatusCode)
		for _, e := range p.Errors {
			b.WriteString("\n  ")
			if e.Index != nil {
				fmt.Fprintf(&b, "[%d] ", *e.Index)
			}
			if e.Field != "" {
				b.WriteString(e.Field + ": ")
			}
			b.WriteString(e.Msg)
		}
		return fmt.Errorf("%s", b.String())
	}
	return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(data)))
}

// parseWithArg parses flags around exactly one positional argument (a customer or invoice ID),
// which may come before, between or after the flags. It prints the usage and returns errUsage
// when the argument is missing or there are more.
func parseWithArg(fs *flag.FlagSet, args []string, what string) (string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return "", errUsage
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(pos) != 1 || pos[0] == "" {
		fmt.Fprintf(fs.Output(), "levy %s: give one %s\n", fs.Name(), what)
		fs.Usage()
		return "", errUsage
	}
	return pos[0], nil
}

// writeRaw writes an answer as it came (--json, --csv).
func writeRaw(w io.Writer, data []byte) error {
	_, err := w.Write(data)
	return err
}

func runApply(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("apply", stderr, "Usage: levy apply -f catalog.yaml [--url URL] [--key KEY]\n\n"+
		"Sends a catalog to a running server (PUT /v1/catalog). Plans whose pricing changed get a new version.")
	file := fs.String("f", "", "catalog file (YAML or JSON; - reads standard input)")
	cf := addClientFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *file == "" {
		fmt.Fprintln(stderr, "levy apply: -f is required")
		fs.Usage()
		return errUsage
	}
	var data []byte
	var err error
	if *file == "-" {
		data, err = io.ReadAll(os.Stdin)
	} else {
		data, err = os.ReadFile(*file)
	}
	if err != nil {
		return err
	}
	var res struct {
		Version int64 `json:"version"`
		Plans   []struct {
			Plan    string `json:"plan"`
			Version int64  `json:"version"`
			Changed bool   `json:"changed"`
		} `json:"plans"`
	}
	if err := cf.call(ctx, http.MethodPut, "/v1/catalog", "application/yaml", data, &res); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "catalog version %d applied\n", res.Version)
	for _, p := range res.Plans {
		state := "unchanged"
		if p.Changed {
			state = "new version"
		}
		fmt.Fprintf(stdout, "  plan %-20s v%d  %s\n", p.Plan, p.Version, state)
	}
	return nil
}

func runKeys(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	usage := "Usage: levy keys create --name NAME --scopes ingest,read | levy keys list | levy keys revoke ID"
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return errUsage
	}
	fs := newFlagSet("keys "+args[0], stderr, usage)
	cf := addClientFlags(fs)
	switch args[0] {
	case "create":
		name := fs.String("name", "", "a name for the key")
		scopes := fs.String("scopes", "", "comma-separated scopes: admin, ingest, authorize, read")
		if err := parseFlags(fs, args[1:]); err != nil {
			return err
		}
		body, _ := json.Marshal(map[string]any{"name": *name, "scopes": strings.Split(*scopes, ",")})
		var k struct {
			ID     string   `json:"id"`
			Secret string   `json:"secret"`
			Scopes []string `json:"scopes"`
		}
		if err := cf.call(ctx, http.MethodPost, "/v1/keys", "application/json", body, &k); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "created %s (%s); the secret is shown only once:\n%s\n", k.ID, strings.Join(k.Scopes, ","), k.Secret)
		return nil
	case "list":
		if err := parseFlags(fs, args[1:]); err != nil {
			return err
		}
		var out struct {
			Keys []struct {
				ID        string     `json:"id"`
				Name      string     `json:"name"`
				Prefix    string     `json:"prefix"`
				Scopes    []string   `json:"scopes"`
				RevokedAt *time.Time `json:"revokedAt"`
			} `json:"keys"`
		}
		if err := cf.call(ctx, http.MethodGet, "/v1/keys", "", nil, &out); err != nil {
			return err
		}
		for _, k := range out.Keys {
			state := "active"
			if k.RevokedAt != nil {
				state = "revoked " + k.RevokedAt.Format(time.RFC3339)
			}
			fmt.Fprintf(stdout, "%s  %-14s  %-24s  %-20s  %s\n", k.ID, k.Prefix+"…", k.Name, strings.Join(k.Scopes, ","), state)
		}
		return nil
	case "revoke":
		// The ID may come before or after the flags.
		rest, id := args[1:], ""
		if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
			id, rest = rest[0], rest[1:]
		}
		if err := fs.Parse(rest); err != nil {
			return errUsage
		}
		if id == "" && fs.NArg() == 1 {
			id = fs.Arg(0)
		} else if fs.NArg() > 0 {
			id = ""
		}
		if id == "" {
			fmt.Fprintln(stderr, "levy keys revoke: give one key ID, e.g. levy keys revoke key_0123456789abcdef")
			return errUsage
		}
		if err := cf.call(ctx, http.MethodDelete, "/v1/keys/"+url.PathEscape(id), "", nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "revoked %s\n", id)
		return nil
	}
	fmt.Fprintln(stderr, usage)
	return errUsage
}
