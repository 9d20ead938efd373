package gateway

import (
	"net"
	"net/http"
	"time"
)

// NewTransport returns the upstream transport the gateway uses by default, tuned for latency:
// keep-alive connections (many idle ones per host, so bursts do not dial), HTTP/2 when the
// upstream offers it, no transparent compression (the gateway reads usage from the bytes it
// forwards, and the client gets them unchanged), Nagle off (Go's default for TCP), and no
// response-header timeout, since a model may think for minutes before its first byte; the
// client's own deadline bounds a call.
func NewTransport() *http.Transport {
	return &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   10 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   512,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
		WriteBufferSize:       32 << 10,
		ReadBufferSize:        32 << 10,
	}
}
