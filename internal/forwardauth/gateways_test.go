package forwardauth_test

// End-to-end tests with real nginx and Caddy in front of a local upstream, running the config
// snippets of docs/integrations/ as they are (only addresses are substituted). The binaries are
// looked up on PATH (then /usr/sbin); without them the tests skip loudly, or fail when
// LEVY_TEST_REQUIRE_GATEWAYS=1 (set in CI).

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/levyhq/levy/internal/forwardauth"
)

// RequireGatewaysVar makes a missing nginx or Caddy a failure rather than a skip.
const RequireGatewaysVar = "LEVY_TEST_REQUIRE_GATEWAYS"

// gatewayBinary finds a gateway's binary, or skips (fails under LEVY_TEST_REQUIRE_GATEWAYS=1).
func gatewayBinary(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/" + name); serr == nil {
			return "/usr/sbin/" + name
		}
		if os.Getenv(RequireGatewaysVar) == "1" {
			t.Fatalf("%s not found (%v) and %s=1, so this is a failure: apt-get install -y %s", name, err, RequireGatewaysVar, pkg)
		}
		t.Skipf("SKIPPING: %s not found (%v). Install it (apt-get install -y %s), or set %s=1 to make this a failure.",
			name, err, pkg, RequireGatewaysVar)
	}
	return p
}

// upstream is the API behind the gateway: it records what reached it.
type upstream struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []http.Header
}

func newUpstream(t *testing.T) *upstream {
	u := &upstream{}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		u.mu.Lock()
		u.got = append(u.got, r.Header.Clone())
		u.mu.Unlock()
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "upstream says hi\n")
	}))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *upstream) requests() []http.Header {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.got)
}

func hostPort(t *testing.T, rawURL string) string {
	t.Helper()
	return strings.TrimPrefix(rawURL, "http://")
}

// freePort returns a port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// snippet reads a docs/integrations file and substitutes addresses; each old string must occur.
func snippet(t *testing.T, name string, subst ...string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "integrations", name))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for i := 0; i+1 < len(subst); i += 2 {
		if !strings.Contains(s, subst[i]) {
			t.Fatalf("%s no longer contains %q", name, subst[i])
		}
		s = strings.ReplaceAll(s, subst[i], subst[i+1])
	}
	return s
}

// syncBuffer collects a process's output.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// gatewayProc is a running gateway process (in its own process group).
type gatewayProc struct {
	name string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	err  error
}

var errPortTaken = errors.New("port taken")

// startGateway starts cmd and waits until port accepts connections. It returns errPortTaken when
// the gateway could not bind (another process took the port meanwhile), so the caller can retry.
func startGateway(t *testing.T, name string, cmd *exec.Cmd, port int) (*gatewayProc, error) {
	t.Helper()
	p := &gatewayProc{name: name, cmd: cmd, out: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case <-p.done:
			if strings.Contains(p.out.String(), "in use") {
				return nil, errPortTaken
			}
			t.Fatalf("%s exited at start (%v):\n%s", name, p.err, p.out.String())
		default:
		}
		if c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second); err == nil {
			c.Close()
			return p, nil
		}
		if time.Now().After(deadline) {
			p.kill()
			t.Fatalf("%s did not listen on %d within 20 s:\n%s", name, port, p.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (p *gatewayProc) kill() {
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// stop asks the gateway to shut down gracefully with sig and checks it exits cleanly.
func (p *gatewayProc) stop(t *testing.T, sig syscall.Signal, port int) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Errorf("signal %s: %v", p.name, err)
	}
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		p.kill()
		t.Errorf("%s did not stop within 20 s of %v:\n%s", p.name, sig, p.out.String())
		return
	}
	if p.err != nil {
		t.Errorf("%s exited with %v after %v:\n%s", p.name, p.err, sig, p.out.String())
	}
	if c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second); err == nil {
		c.Close()
		t.Errorf("%s still accepts connections on %d after exiting", p.name, port)
	}
	// No worker is left behind in the process group.
	if err := syscall.Kill(-p.cmd.Process.Pid, 0); err == nil {
		t.Errorf("%s left processes behind in its group", p.name)
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	}
}

// startNginx runs docs/integrations/nginx.conf in front of up, checking with a.
func startNginx(t *testing.T, a *authServer, up *upstream) (baseURL string) {
	bin := gatewayBinary(t, "nginx", "nginx")
	dir := t.TempDir()
	for attempt := 0; ; attempt++ {
		port := freePort(t)
		site := snippet(t, "nginx.conf",
			"server 127.0.0.1:7070;", "server "+hostPort(t, a.srv.URL)+";",
			"server 127.0.0.1:9000;", "server "+hostPort(t, up.srv.URL)+";",
			"listen 8080;", "listen 127.0.0.1:"+strconv.Itoa(port)+";")
		sitePath := filepath.Join(dir, "levy-site.conf")
		user := ""
		if os.Geteuid() == 0 {
			user = "user root root;" // workers keep access to the temporary directory
		}
		mainConf := fmt.Sprintf(`%s
daemon off;
worker_processes 1;
pid %[2]s/nginx.pid;
error_log stderr warn;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path %[2]s/body;
    proxy_temp_path %[2]s/proxy;
    fastcgi_temp_path %[2]s/fastcgi;
    uwsgi_temp_path %[2]s/uwsgi;
    scgi_temp_path %[2]s/scgi;
    include %[3]s;
}
`, user, dir, sitePath)
		confPath := filepath.Join(dir, "nginx.conf")
		if err := os.WriteFile(sitePath, []byte(site), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(confPath, []byte(mainConf), 0o600); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(bin, "-t", "-q", "-p", dir, "-e", "stderr", "-c", confPath).CombinedOutput(); err != nil {
			t.Fatalf("nginx -t: %v\n%s", err, out)
		}
		p, err := startGateway(t, "nginx", exec.Command(bin, "-p", dir, "-e", "stderr", "-c", confPath), port)
		if errors.Is(err, errPortTaken) && attempt < 3 {
			continue
		}
		t.Cleanup(func() { p.stop(t, syscall.SIGQUIT, port) })
		return "http://127.0.0.1:" + strconv.Itoa(port)
	}
}

// startCaddy runs docs/integrations/Caddyfile in front of up, checking with a.
func startCaddy(t *testing.T, a *authServer, up *upstream) (baseURL string) {
	bin := gatewayBinary(t, "caddy", "caddy")
	dir := t.TempDir()
	for attempt := 0; ; attempt++ {
		port := freePort(t)
		site := snippet(t, "Caddyfile",
			"forward_auth 127.0.0.1:7070", "forward_auth "+hostPort(t, a.srv.URL),
			"reverse_proxy 127.0.0.1:9000", "reverse_proxy "+hostPort(t, up.srv.URL),
			":8080 {", "http://127.0.0.1:"+strconv.Itoa(port)+" {")
		conf := "{\n\tadmin off\n\tauto_https off\n}\n\n" + site
		confPath := filepath.Join(dir, "Caddyfile")
		if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "run", "--config", confPath, "--adapter", "caddyfile")
		// Caddy keeps its state under HOME / XDG dirs: keep them in the test's directory.
		cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir+"/data", "XDG_CONFIG_HOME="+dir+"/config")
		p, err := startGateway(t, "caddy", cmd, port)
		if errors.Is(err, errPortTaken) && attempt < 3 {
			continue
		}
		t.Cleanup(func() { p.stop(t, syscall.SIGINT, port) })
		return "http://127.0.0.1:" + strconv.Itoa(port)
	}
}

// call sends one API call through the gateway.
func call(t *testing.T, c *http.Client, url, body string, kv ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(kv); i += 2 {
		req.Header.Set(kv[i], kv[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// exercise runs the scenario every gateway must pass. quotaHeaders: the gateway shows the
// client its X-RateLimit-* headers on ALLOW (the nginx snippet does; Caddy's forward_auth
// copies Levy's headers onto the request only).
func exercise(t *testing.T, gw string, a *authServer, up *upstream, quotaHeaders bool) {
	c := &http.Client{Timeout: 10 * time.Second}
	api := gw + "/v1/chat/completions"
	key := a.levy.Customer(t, "cust_gw", "limited") // 3 requests a minute
	auth := []string{"Authorization", "Bearer " + key, forwardauth.HeaderModel, "gpt-5-mini", forwardauth.HeaderMaxTokens, "100"}
	body := `{"model":"gpt-5-mini","messages":[{"role":"user","content":"hi"}]}`

	// Allowed calls reach the upstream with Levy's identity headers, whatever the client claims.
	seen := map[string]bool{}
	for i := range 3 {
		resp, got := call(t, c, api, body, append(auth, forwardauth.HeaderCustomerID, "someone_else", forwardauth.HeaderReservationID, "rsv_forged")...)
		if resp.StatusCode != http.StatusOK || got != "upstream says hi\n" {
			t.Fatalf("call %d: %d %q", i+1, resp.StatusCode, got)
		}
		if quotaHeaders {
			wantHeader(t, resp, "X-RateLimit-Limit", "3")
			wantHeader(t, resp, "X-RateLimit-Remaining", strconv.Itoa(2-i))
		}
		reqs := up.requests()
		if len(reqs) != i+1 {
			t.Fatalf("upstream got %d requests after %d allowed calls", len(reqs), i+1)
		}
		h := reqs[i]
		if h.Get(forwardauth.HeaderCustomerID) != "cust_gw" || len(h.Values(forwardauth.HeaderCustomerID)) != 1 {
			t.Fatalf("upstream saw customer %q, want cust_gw only", h.Values(forwardauth.HeaderCustomerID))
		}
		rsv, corr := h.Get(forwardauth.HeaderReservationID), h.Get(forwardauth.HeaderCorrelationOut)
		if !strings.HasPrefix(rsv, "rsv_") || len(h.Values(forwardauth.HeaderReservationID)) != 1 || corr == "" || seen[rsv] || seen[corr] {
			t.Fatalf("upstream saw reservation %q, correlation %q (one each, new per call)", h.Values(forwardauth.HeaderReservationID), corr)
		}
		seen[rsv], seen[corr] = true, true
	}

	// The 4th call within the minute is denied at the client with 429 and Retry-After, and
	// never reaches the upstream.
	resp, got := call(t, c, api, body, auth...)
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("4th call: %d %q, want 429", resp.StatusCode, got)
	}
	wantHeader(t, resp, "Retry-After", "20")
	wantHeader(t, resp, forwardauth.HeaderDenyReason, "requests_per_minute")
	wantHeader(t, resp, "X-RateLimit-Remaining", "0")
	if !strings.Contains(got, "requests_per_minute") {
		t.Errorf("deny body %q does not name the reason", got)
	}
	if n := len(up.requests()); n != 3 {
		t.Fatalf("upstream got %d requests, want 3", n)
	}

	// Retry-After later, the call passes again.
	a.levy.Clock.Advance(20 * time.Second)
	if resp, got = call(t, c, api, body, auth...); resp.StatusCode != http.StatusOK {
		t.Fatalf("after Retry-After: %d %q", resp.StatusCode, got)
	}

	// No key, a bad key: 401 with Levy's challenge. Bad headers: 400. None reaches upstream.
	for _, tc := range []struct {
		kv     []string
		status int
	}{
		{[]string{forwardauth.HeaderModel, "gpt-5-mini"}, 401},
		{[]string{"X-Api-Key", "levy_wrong", forwardauth.HeaderModel, "gpt-5-mini"}, 401},
		{[]string{"Authorization", "Bearer " + key}, 400},
		{append(slices.Clone(auth), forwardauth.HeaderMaxTokens, "lots"), 400},
	} {
		resp, got := call(t, c, api, body, tc.kv...)
		if resp.StatusCode != tc.status {
			t.Fatalf("%v: %d %q, want %d", tc.kv, resp.StatusCode, got, tc.status)
		}
		if tc.status == 401 {
			wantHeader(t, resp, "WWW-Authenticate", `Bearer realm="levy"`)
		}
	}
	if n := len(up.requests()); n != 4 {
		t.Fatalf("upstream got %d requests, want 4", n)
	}

	// The gateway passes the body's length: 30,000 bytes estimate 10,000 input tokens, the
	// whole of the tokens plan's minute; one more byte's worth is denied.
	tkey := a.levy.Customer(t, "cust_tok", "tokens")
	big := `{"p":"` + strings.Repeat("x", 30000-8) + `"}`
	tauth := []string{"Authorization", "Bearer " + tkey, forwardauth.HeaderModel, "gpt-5-mini", forwardauth.HeaderMaxTokens, "0"}
	if resp, got = call(t, c, api, big, tauth...); resp.StatusCode != http.StatusOK {
		t.Fatalf("30,000-byte body: %d %q", resp.StatusCode, got)
	}
	if resp, got = call(t, c, api, "{}", tauth...); resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get(forwardauth.HeaderDenyReason) != "tokens_per_minute" {
		t.Fatalf("past the token limit: %d %v %q", resp.StatusCode, resp.Header, got)
	}
}

// latency logs the p50 and p99 of allowed calls through the gateway and straight to the
// upstream (informational, never asserted).
func latency(t *testing.T, name, gw string, a *authServer, up *upstream) {
	const n = 300
	key := a.levy.Customer(t, "cust_lat", "open")
	c := &http.Client{Timeout: 10 * time.Second}
	measure := func(url string, kv ...string) []time.Duration {
		out := make([]time.Duration, 0, n)
		for i := range n + 20 {
			start := time.Now()
			resp, _ := call(t, c, url, "{}", kv...)
			d := time.Since(start)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("latency call %d: %d", i, resp.StatusCode)
			}
			if i >= 20 { // warm-up
				out = append(out, d)
			}
		}
		slices.Sort(out)
		return out
	}
	via := measure(gw+"/v1/chat/completions", "Authorization", "Bearer "+key, forwardauth.HeaderModel, "gpt-5-mini")
	direct := measure(up.srv.URL + "/v1/chat/completions")
	pct := func(d []time.Duration, p int) time.Duration { return d[(len(d)-1)*p/100] }
	t.Logf("%s latency of allowed calls over %d sequential requests (loopback, informational): through %s p50 %v p99 %v; direct p50 %v p99 %v; added p50 %v",
		name, n, name, pct(via, 50), pct(via, 99), pct(direct, 50), pct(direct, 99), pct(via, 50)-pct(direct, 50))
}

func TestNginx(t *testing.T) {
	a := newAuthServer(t, nil)
	up := newUpstream(t)
	gw := startNginx(t, a, up)
	exercise(t, gw, a, up, true)
	latency(t, "nginx", gw, a, up)
}

func TestCaddy(t *testing.T) {
	a := newAuthServer(t, nil)
	up := newUpstream(t)
	gw := startCaddy(t, a, up)
	exercise(t, gw, a, up, false)
	latency(t, "caddy", gw, a, up)
}
