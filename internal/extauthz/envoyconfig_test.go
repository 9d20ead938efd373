package extauthz_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
)

// TestEnvoyConfig reads docs/integrations/envoy.yaml as Envoy would (the bootstrap proto, every
// typed_config resolved, protoc-gen-validate rules checked) and checks that its ext_authz
// filter is wired as this package expects: gRPC to a cluster that exists and speaks HTTP/2, API
// v3, the body sent as bytes with partial bodies allowed.
func TestEnvoyConfig(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "docs", "integrations", "envoy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("envoy.yaml: %v", err)
	}
	js, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	var bs bootstrapv3.Bootstrap
	if err := protojson.Unmarshal(js, &bs); err != nil {
		t.Fatalf("envoy.yaml is not a valid Envoy bootstrap: %v", err)
	}
	if err := bs.ValidateAll(); err != nil {
		t.Fatalf("envoy.yaml fails Envoy's validation: %v", err)
	}

	clusters := map[string]bool{}
	for _, c := range bs.GetStaticResources().GetClusters() {
		clusters[c.GetName()] = true
		for name, opt := range c.GetTypedExtensionProtocolOptions() {
			if _, err := opt.UnmarshalNew(); err != nil {
				t.Errorf("cluster %s: protocol options %s: %v", c.GetName(), name, err)
			}
		}
	}
	var found *extauthzv3.ExtAuthz
	var cluster string
	for _, l := range bs.GetStaticResources().GetListeners() {
		for _, fc := range l.GetFilterChains() {
			for _, f := range fc.GetFilters() {
				var hcm hcmv3.HttpConnectionManager
				if err := f.GetTypedConfig().UnmarshalTo(&hcm); err != nil {
					t.Fatalf("filter %s: %v", f.GetName(), err)
				}
				if err := hcm.ValidateAll(); err != nil {
					t.Fatalf("http_connection_manager: %v", err)
				}
				for _, v := range hcm.GetRouteConfig().GetVirtualHosts() {
					for _, r := range v.GetRoutes() {
						if c := r.GetRoute().GetCluster(); !clusters[c] {
							t.Errorf("route to unknown cluster %q", c)
						}
					}
				}
				for _, hf := range hcm.GetHttpFilters() {
					m, err := hf.GetTypedConfig().UnmarshalNew()
					if err != nil {
						t.Fatalf("http filter %s: %v", hf.GetName(), err)
					}
					if v, ok := m.(interface{ ValidateAll() error }); ok {
						if err := v.ValidateAll(); err != nil {
							t.Fatalf("http filter %s: %v", hf.GetName(), err)
						}
					}
					if ea, ok := m.(*extauthzv3.ExtAuthz); ok {
						found, cluster = ea, ea.GetGrpcService().GetEnvoyGrpc().GetClusterName()
					}
				}
			}
		}
	}
	if found == nil {
		t.Fatal("envoy.yaml has no ext_authz filter")
	}
	if !clusters[cluster] {
		t.Fatalf("ext_authz points at cluster %q, which is not defined", cluster)
	}
	wb := found.GetWithRequestBody()
	if found.GetTransportApiVersion().String() != "V3" || wb == nil || !wb.GetPackAsBytes() || !wb.GetAllowPartialMessage() || wb.GetMaxRequestBytes() == 0 {
		t.Fatalf("ext_authz config %v: want transport V3 and with_request_body (pack_as_bytes, allow_partial_message)", found)
	}
}
