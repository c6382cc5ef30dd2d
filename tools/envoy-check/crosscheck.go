package main

import (
	"fmt"
	"strings"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	netextauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/ext_authz/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
)

// clusterReferences lists, by message, the fields that name a cluster Envoy must know when
// it loads the configuration.
var clusterReferences = map[protoreflect.FullName][]protoreflect.Name{
	"envoy.config.route.v3.RouteAction":                                                    {"cluster"},
	"envoy.config.route.v3.WeightedCluster.ClusterWeight":                                  {"name"},
	"envoy.config.route.v3.RouteAction.RequestMirrorPolicy":                                {"cluster"},
	"envoy.config.core.v3.GrpcService.EnvoyGrpc":                                           {"cluster_name"},
	"envoy.config.core.v3.HttpUri":                                                         {"cluster"},
	"envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy":                               {"cluster"},
	"envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy.WeightedCluster.ClusterWeight": {"name"},
}

var routerType = string((&routerv3.Router{}).ProtoReflect().Descriptor().FullName())

// crossCheck finds what Envoy refuses when it loads a configuration that each message alone
// does not show: names of clusters that are not defined (or defined twice), a router that
// is not the last HTTP filter, ext_authz on another transport API than V3.
func crossCheck(bootstrap *bootstrapv3.Bootstrap, root node) []problem {
	var problems []problem
	clusters := map[string]bool{}
	for i, c := range bootstrap.GetStaticResources().GetClusters() {
		at := path{}.key("static_resources").key("clusters").index(i).key("name")
		if clusters[c.GetName()] {
			problems = append(problems, problem{at: at, msg: fmt.Sprintf("cluster %q is defined more than once", c.GetName())})
		}
		clusters[c.GetName()] = true
	}
	// Clusters may also come from a management server (CDS): names cannot be checked then.
	dynamicClusters := bootstrap.GetDynamicResources().GetCdsConfig() != nil || bootstrap.GetDynamicResources().GetCdsResourcesLocator() != ""
	walk(root.msg, root.at, func(n node) {
		for _, name := range clusterReferences[n.msg.Descriptor().FullName()] {
			fd := n.msg.Descriptor().Fields().ByName(name)
			if fd == nil || !n.msg.Has(fd) || dynamicClusters {
				continue
			}
			if cluster := n.msg.Get(fd).String(); !clusters[cluster] {
				problems = append(problems, problem{at: n.at.key(string(name)), msg: fmt.Sprintf("no cluster named %q in static_resources.clusters (defined: %s)", cluster, names(bootstrap))})
			}
		}
		switch m := n.msg.Interface().(type) {
		case *hcmv3.HttpConnectionManager:
			problems = append(problems, routerLast(m, n.at)...)
		case *extauthzv3.ExtAuthz:
			if v := m.GetTransportApiVersion(); v != corev3.ApiVersion_V3 {
				problems = append(problems, problem{at: n.at.key("transport_api_version"), msg: fmt.Sprintf("expected V3 (the only version the service speaks), found %s", v)})
			}
		case *netextauthzv3.ExtAuthz:
			if v := m.GetTransportApiVersion(); v != corev3.ApiVersion_V3 {
				problems = append(problems, problem{at: n.at.key("transport_api_version"), msg: fmt.Sprintf("expected V3, found %s", v)})
			}
		}
	})
	return problems
}

// routerLast: Envoy refuses an HTTP filter chain whose terminal filter, the router, is not
// last, and a chain without it sends nothing upstream.
func routerLast(hcm *hcmv3.HttpConnectionManager, at path) []problem {
	filters := hcm.GetHttpFilters()
	filtersAt := at.key("http_filters")
	if len(filters) == 0 {
		return []problem{{at: filtersAt, msg: "no HTTP filter: the router (envoy.filters.http.router) must be the last one"}}
	}
	for i, f := range filters[:len(filters)-1] {
		if isRouter(f) {
			return []problem{{at: filtersAt.index(i), msg: fmt.Sprintf("the router must be the last HTTP filter, found before %s", filterNames(filters[i+1:]))}}
		}
	}
	if last := filters[len(filters)-1]; !isRouter(last) {
		return []problem{{at: filtersAt.index(len(filters) - 1), msg: fmt.Sprintf("the last HTTP filter must be the router (envoy.filters.http.router), found %s", last.GetName())}}
	}
	return nil
}

func isRouter(f *hcmv3.HttpFilter) bool {
	if tc := f.GetTypedConfig(); tc != nil {
		return typeName(tc) == routerType
	}
	return f.GetName() == "envoy.filters.http.router"
}

func typeName(a *anypb.Any) string {
	return a.GetTypeUrl()[strings.LastIndex(a.GetTypeUrl(), "/")+1:]
}

func filterNames(filters []*hcmv3.HttpFilter) string {
	out := make([]string, len(filters))
	for i, f := range filters {
		out[i] = f.GetName()
	}
	return strings.Join(out, ", ")
}

func names(bootstrap *bootstrapv3.Bootstrap) string {
	var out []string
	for _, c := range bootstrap.GetStaticResources().GetClusters() {
		out = append(out, c.GetName())
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}
