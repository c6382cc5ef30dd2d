# The benchmark's policy for OPA-Envoy: what a site would write to make OPA-Envoy decide
# like scitokens-authz on the benchmark's requests. The bearer token is verified here with
# io.jwt.decode_verify against the issuer's JWKS (held in data, as scitokens-authz holds
# the keys of a jwks_file), then the audience, the base path and the scopes decide, with
# the same HTTP statuses: 401 for a missing or unusable token, 403 for a valid token that
# does not grant the request. Allowed requests get the identity headers scitokens-authz
# sends upstream (subject, issuer, the first granting scope).
#
# It is equivalent on the benchmark's requests (the bench checks every one before it
# measures), not a reimplementation of docs/semantics.md: no path normalization (§7), no
# token profiles (§1), no clock leeway, no create-only uploads or Destination checks.
#
# Data (data.bench): audience, realm, verbs {authz: [methods]},
# issuers {iss: {jwks: "<JWKS JSON>", base_path: ["/p"]}},
# named_scopes {name: {methods: [...], paths: ["/p"]}}.
package scitokens.bench

import rego.v1

http := input.attributes.request.http

method := http.method

# The request path as components (OPA-Envoy's parsed_path, decoded once, without the query).
request_path := [s | some s in input.parsed_path; s != ""]

token := t if {
	[scheme, t] := split(http.headers.authorization, " ")
	lower(scheme) == "bearer"
	t != ""
}

unverified := io.jwt.decode(token)

issuer := data.bench.issuers[unverified[1].iss]

claims := payload if {
	constraints := {"cert": issuer.jwks, "iss": unverified[1].iss, "aud": data.bench.audience}
	[valid, _, payload] := io.jwt.decode_verify(token, constraints)
	valid
}

components(path) := [s | some s in split(path, "/"); s != ""]

under(path, prefix) if array.slice(path, 0, count(prefix)) == prefix

bases := [components(p) | some p in issuer.base_path]

in_base if {
	some base in bases
	under(request_path, base)
}

scopes := split(claims.scope, " ")

# A path-style scope (read:/p, write:/p, storage.*:/p) grants its verbs under base + /p.
grants(scope) if {
	i := indexof(scope, ":")
	i > 0
	method in data.bench.verbs[substring(scope, 0, i)]
	some base in bases
	under(request_path, array.concat(base, components(substring(scope, i + 1, -1))))
}

# read and write without a path mean /.
grants(scope) if {
	scope in {"read", "write"}
	method in data.bench.verbs[scope]
	in_base
}

# A named scope grants its methods under its paths (absolute request paths).
grants(scope) if {
	rule := data.bench.named_scopes[scope]
	method in rule.methods
	in_base
	some prefix in rule.paths
	under(request_path, components(prefix))
}

granting := [s | some s in scopes; grants(s)]

identity_headers := {
	"x-scitokens-subject": claims.sub,
	"x-scitokens-issuer": claims.iss,
	"x-scitokens-scope": granting[0],
}

# The client's copies of the identity headers never reach the upstream.
removed := ["x-scitokens-subject", "x-scitokens-issuer", "x-scitokens-scope", "x-scitokens-groups", "x-scitokens-jti"]

deny(status, error, reason) := {
	"allowed": false,
	"http_status": status,
	"headers": {
		"www-authenticate": challenge(error),
		"content-type": "application/json",
	},
	"body": json.marshal({"error": error, "reason": reason}),
}

challenge(error) := sprintf("Bearer realm=%q", [data.bench.realm]) if error == ""

challenge(error) := sprintf("Bearer realm=%q, error=%q", [data.bench.realm, error]) if error != ""

result := {"allowed": true, "headers": identity_headers, "request_headers_to_remove": removed} if {
	in_base
	count(granting) > 0
} else := deny(403, "insufficient_scope", "path_outside_base") if {
	claims
	not in_base
} else := deny(403, "insufficient_scope", "scope_insufficient") if {
	claims
} else := deny(401, "invalid_token", "token_invalid") if {
	token
} else := deny(401, "", "token_missing")
