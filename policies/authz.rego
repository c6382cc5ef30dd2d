# METADATA
# title: scitokens-authz decision
# description: |
#   Decides every Envoy Check from the normalized request and the token's state
#   (absent, invalid with its reason, or verified), as docs/semantics.md §5-§11
#   describe. TypeScript builds `input`, sets the normalized data and turns the
#   decision into the CheckResponse; policies/README.md has the contract.
package scitokens.authz

# --- Decision ----------------------------------------------------------------

# METADATA
# description: |
#   The decision for one Check (policies/README.md, "Decision"). Deny by default:
#   reached only when the input has no token state the policy knows.
# entrypoint: true
default decision := {"allow": false, "reason": "token_missing", "scope": null, "create_only": false}

decision := _without_token if input.token.state == "absent"

decision := _with_invalid_token if input.token.state == "invalid"

decision := _with_verified_token if input.token.state == "verified"

# §10: a site's allow rule, a CORS preflight, on_missing: passthrough, or token_missing.
_without_token := _passthrough if {
	count(_site_allows) > 0
} else := _passthrough if {
	_cors_preflight
	_setting("cors_preflight") == "allow"
} else := _passthrough if {
	_setting("on_missing") == "passthrough"
} else := _deny("token_missing")

_cors_preflight if {
	_method == "OPTIONS"
	is_string(_request_headers.origin)
	is_string(_request_headers["access-control-request-method"])
}

_request_headers := object.get(input.attributes.request.http, "headers", {})

# §10: an unusable token passes through with on_invalid: passthrough; never a key
# outage (the token may be fine) and never a valid token's missing grant.
_with_invalid_token := _passthrough if {
	_setting("on_invalid") == "passthrough"
	input.token.reason in _unusable_token_reasons
} else := _deny(input.token.reason) if {
	input.token.reason in _token_reasons
} else := _deny("token_malformed")

_unusable_token_reasons := {
	"token_malformed", "token_too_large", "profile_unknown", "alg_not_allowed",
	"issuer_untrusted", "key_not_found", "signature_invalid", "token_expired",
	"token_not_yet_valid", "token_issued_in_future", "claim_invalid", "scope_invalid",
}

_token_reasons := _unusable_token_reasons | {"key_unavailable"}

# §9: MOVE and COPY need a Destination on this server, then the grant (§5-§9). A
# token for another audience or issuer is unusable here: with on_invalid:
# passthrough it passes through (§10).
_with_verified_token := _deny(min(_site_denials)) if {
	count(_site_denials) > 0
} else := _deny("scope_insufficient") if {
	_method in _destination_methods
	object.get(input, "destination_remote", false) == true
} else := _deny("path_invalid") if {
	_method in _destination_methods
	object.get(input, "destination", null) == null
} else := _passthrough if {
	grant.reason in {"audience_mismatch", "issuer_untrusted"}
	_setting("on_invalid") == "passthrough"
} else := object.union(grant, {"headers": _allowed_headers, "remove_headers": _identity_removed}) if {
	grant.allow == true
} else := _site_granted if {
	grant.reason == "scope_insufficient"
	count(_site_grants) > 0
} else := grant

# --- Site rules ------------------------------------------------------------------

# A site extends the shipped decision without forking it, in its own Rego under
# package scitokens.site (policies/README.md, "Extending the policy"):
# - `allow` (a set of rule names): a request without a token is passed through;
# - `deny` (a set of reasons, declared in the data's `reasons`): a verified token's
#   request is denied with the smallest of them, before the grant;
# - `grant` (a set of rule names): a verified token's request that no scope grants
#   (scope_insufficient) is allowed, with its identity;
# - `headers` (an object): more headers for the upstream of an allowed request.
# Site rules see `input` and `data`; `covers(prefix, path)` helps them match paths.

_site_allows := {name | some name in data.scitokens.site.allow}

_site_denials := {reason | some reason in data.scitokens.site.deny}

_site_grants := {name | some name in data.scitokens.site.grant}

default _site_headers := {}

_site_headers := h if {
	h := data.scitokens.site.headers
	is_object(h)
}

# A site header never stands in for an identity header (set or removed above).
_allowed_headers := object.union(
	{name: value | some name, value in _site_headers; not name in _all_identity_removed},
	_identity_headers,
)

_site_granted := {
	"allow": true,
	"reason": "allowed",
	"scope": concat("", ["site:", min(_site_grants)]),
	"create_only": false,
	"headers": _allowed_headers,
	"remove_headers": _identity_removed,
}

# covers(P, R): R is P or below P, on whole path components (§7); for site rules.
covers(prefix, path) if _covers(prefix, path)

# §11: passthrough is an allow without identity; client-sent copies are removed.
_passthrough := {
	"allow": true,
	"reason": "passthrough",
	"scope": null,
	"create_only": false,
	"headers": {},
	"remove_headers": _all_identity_removed,
}

# --- Grant (a verified token): the first failing check wins --------------------

# The default is only reached if the allowed branch cannot be built (a malformed
# scope); it denies.
default grant := {"allow": false, "reason": "scope_insufficient", "scope": null, "create_only": false}

grant := _deny("issuer_untrusted") if {
	not _issuer
} else := _deny("issuer_untrusted") if {
	not _route_issuer_ok
} else := _deny("audience_mismatch") if {
	not _audience_ok
} else := _deny("path_outside_base") if {
	not _request_in_base
} else := _deny("method_unmapped") if {
	not _method_mapped
} else := _deny("scope_insufficient") if {
	count(_granting) == 0
} else := {
	"allow": true,
	"reason": "allowed",
	"scope": object.get(_first_granting, "raw", null),
	"create_only": _create_only,
}

_deny(reason) := {"allow": false, "reason": reason, "scope": null, "create_only": false}

# --- Request ---------------------------------------------------------------

_issuer := data.issuers[input.token.iss]

# --- Route section (selected by Envoy's context_extensions.route) ------------

# The named route's overrides; {} for the top-level section. A key that is null (or
# absent) in the route falls back to the issuer's or the top-level value.
default _route := {}

_route := data.routes[input.route]

_route_override(key) := v if {
	v := object.get(_route, key, null)
	v != null
}

_route_issuer_ok if not _route_override("issuers")

_route_issuer_ok if input.token.iss in _route_override("issuers")

_base_paths := b if {
	b := _route_override("base_path")
} else := _issuer.base_path

default _named_scopes := {}

_named_scopes := n if {
	n := _route_override("named_scopes")
} else := data.named_scopes

_method := input.attributes.request.http.method

_request_path := p if {
	p := input.path
	_valid_path(p)
}

_valid_path(p) if {
	is_string(p)
	startswith(p, "/")
}

# MOVE and COPY also need the grant on the Destination path (SEMANTICS §9).
_destination_methods := {"MOVE", "COPY"}

_needs_destination if {
	_method in _destination_methods
	object.get(input, "destination", null) != null
}

# --- §5 Audience -----------------------------------------------------------

_any_audiences := {"ANY", "https://wlcg.cern.ch/jwt/v1/any"}

# Profiles in which `aud` is optional; SciTokens 2 and WLCG 1 require it.
_aud_optional_profiles := {"scitokens:1"}

default _accepted_audiences := []

_accepted_audiences := a if {
	a := _route_override("audiences")
} else := a if {
	a := object.get(_issuer, "audiences", null)
	a != null
} else := data.audiences

_token_aud := object.get(input.token, "aud", null)

_token_aud_values := [_token_aud] if {
	is_string(_token_aud)
} else := _token_aud if {
	is_array(_token_aud)
}

_audience_ok if {
	_token_aud == null
	input.token.profile in _aud_optional_profiles
	count(_accepted_audiences) == 0
}

_audience_ok if {
	some a in _token_aud_values
	not a in _any_audiences
	a in _accepted_audiences
}

_audience_ok if {
	"ANY" in _accepted_audiences
	some a in _token_aud_values
	a in _any_audiences
}

# --- §7 Path matching ------------------------------------------------------

# covers(P, R): P is R or an ancestor of R, on whole path components.
_covers("/", _)

_covers(prefix, p) if p == prefix

_covers(prefix, p) if startswith(p, concat("", [prefix, "/"]))

# join(b, p): scope and restricted paths are relative to a base path.
_join(b, p) := p if {
	b == "/"
} else := b if {
	p == "/"
} else := concat("", [b, p])

# --- §8 Base and restricted paths ------------------------------------------

_request_in_base if {
	some b in _base_paths
	_covers(b, _request_path)
}

_restricted := object.get(_issuer, "restricted_path", null)

_restricted_ok(_, _) if _restricted == null

_restricted_ok(b, p) if {
	some r in _restricted
	_covers(_join(b, r), p)
}

# --- §9 Methods ------------------------------------------------------------

_method_mapped if {
	some methods in data.verbs
	_method in methods
}

_method_mapped if {
	some named in _named_scopes
	_method in named.methods
}

# --- §6/§9 Grants ----------------------------------------------------------

_path_style(authz) if data.verbs[authz]

# Path-style scope: method mapped to its authz, path under base + scope path
# (and under base + a restricted path, when the issuer has any).
_grants_path(scope, p) if {
	_method in data.verbs[scope.authz]
	is_string(scope.path)
	some b in _base_paths
	_covers(_join(b, scope.path), p)
	_restricted_ok(b, p)
}

# Named scope: method mapped to it, path under one of its prefixes (or
# anywhere when it has none), and never outside base or restricted paths.
_grants_path(scope, p) if {
	not _path_style(scope.authz)
	named := _named_scopes[scope.authz]
	_method in named.methods
	_named_path_ok(object.get(named, "paths", null), p)
	some b in _base_paths
	_covers(b, p)
	_restricted_ok(b, p)
}

_named_path_ok(null, _)

_named_path_ok(prefixes, p) if {
	some prefix in prefixes
	_covers(prefix, p)
}

# Indexes (token order) of the scopes that grant this request.
_granting contains i if {
	not _needs_destination
	some i, scope in input.token.scopes
	_grants_path(scope, _request_path)
}

_granting contains i if {
	_needs_destination
	_valid_path(input.destination)
	some i, scope in input.token.scopes
	_grants_path(scope, _request_path)
	_grants_path(scope, input.destination)
}

_first_granting := input.token.scopes[min(_granting)]

# Only storage.create grants: the service makes the upload create-only
# (If-None-Match: *), so an existing object is never overwritten.
default _create_only := false

_create_only if {
	count(_granting) > 0
	not _grant_beyond_create
}

_grant_beyond_create if {
	some i in _granting
	input.token.scopes[i].authz != "storage.create"
}

# --- §11 Route settings and identity headers ---------------------------------

# A setting of the route section, else the top-level one (the service fills both).
_setting(key) := v if {
	v := object.get(_route, key, null)
	v != null
} else := data.settings[key]

_identity_suffixes := ["subject", "issuer", "scope", "groups", "jti"]

_identity_name(suffix) := concat("", [_setting("header_prefix"), suffix])

_verified := input.token

# The claim named by username_claim, when it is a string.
_identity_value("subject") := v if {
	v := object.get(object.get(_verified, "claims", {}), _setting("username_claim"), null)
	is_string(v)
}

_identity_value("issuer") := _verified.iss

_identity_value("scope") := grant.scope if is_string(grant.scope)

# Comma-joined; a group holding a comma could not be split back, so then no header.
_identity_value("groups") := concat(",", groups) if {
	groups := object.get(_verified, "groups", [])
	count(groups) > 0
	every g in groups { not contains(g, ",") }
}

_identity_value("jti") := v if {
	v := _verified.jti
	is_string(v)
}

_identity_set[_identity_name(s)] := _identity_value(s) if some s in _identity_suffixes

# Only storage.create grants an upload: it must not overwrite (If-None-Match: *).
default _upload_headers := {}

_upload_headers := {"if-none-match": "*"} if {
	grant.create_only == true
	_method == "PUT"
}

_identity_headers := object.union(_identity_set, _upload_headers)

# The identity names not set, their underscore spellings (CGI/WSGI upstreams read
# them as the same variable), and Authorization when the route removes it.
_identity_removed := array.concat(
	[n | some s in _identity_suffixes; n := _identity_name(s); not _identity_set[n]],
	_always_removed,
)

_all_identity_removed := array.concat([_identity_name(s) | some s in _identity_suffixes], _always_removed)

_always_removed := array.concat(
	[u | some s in _identity_suffixes; n := _identity_name(s); u := replace(n, "-", "_"); u != n],
	_authorization_removed,
)

default _authorization_removed := []

_authorization_removed := ["authorization"] if {
	_setting("remove_authorization") == true
}
