package scitokens.decision_test

# Unit tests for data.scitokens.authz.decision: the token's state (absent, invalid,
# verified), the route settings, MOVE/COPY Destination and the identity headers. The
# grant of a verified token has its own tests (authz_test.rego).

_iss := "https://issuer.example"

_settings := {
	"on_missing": "deny",
	"on_invalid": "deny",
	"cors_preflight": "allow",
	"username_claim": "sub",
	"header_prefix": "x-scitokens-",
	"remove_authorization": false,
}

_data := {
	"audiences": ["https://storage.example.org"],
	"issuers": {_iss: {"base_path": ["/protected"], "restricted_path": null, "audiences": null}},
	"verbs": {
		"read": ["GET", "HEAD", "OPTIONS", "PROPFIND"],
		"write": ["PUT", "MOVE", "COPY", "DELETE"],
		"storage.create": ["PUT", "MKCOL"],
	},
	"named_scopes": {},
	"routes": {"open": object.union(
		{"issuers": null, "audiences": null, "base_path": null, "named_scopes": null},
		object.union(_settings, {
			"on_missing": "passthrough", "on_invalid": "passthrough",
			"header_prefix": "x-open-", "remove_authorization": true,
		}),
	)},
	"settings": _settings,
}

_verified(scope, extra) := object.union(
	{
		"state": "verified",
		"iss": _iss,
		"sub": "alice",
		"jti": "j-1",
		"profile": "scitokens:2.0",
		"aud": ["https://storage.example.org"],
		"scopes": [{"authz": "read", "path": scope, "raw": concat(":", ["read", scope])}],
		"groups": [],
		"claims": {"sub": "alice", "preferred_username": "albert"},
	},
	extra,
)

_input(method, path, token) := {
	"attributes": {"request": {"http": {"method": method, "host": "storage.example.org", "headers": {}}}},
	"path": path,
	"parsed_path": [s | some s in split(path, "/"); s != ""],
	"destination": null,
	"destination_remote": false,
	"route": null,
	"token": token,
}

_decide(inp) := _decide_settings(inp, _settings)

_decide_settings(inp, settings) := d if {
	d := data.scitokens.authz.decision with input as inp
		with data.audiences as _data.audiences
		with data.issuers as _data.issuers
		with data.verbs as _data.verbs
		with data.named_scopes as _data.named_scopes
		with data.routes as _data.routes
		with data.settings as settings
}

_identity := ["x-scitokens-subject", "x-scitokens-issuer", "x-scitokens-scope", "x-scitokens-groups", "x-scitokens-jti"]

_underscored := [
	"x_scitokens_subject", "x_scitokens_issuer", "x_scitokens_scope",
	"x_scitokens_groups", "x_scitokens_jti",
]

# --- No token ------------------------------------------------------------------

test_absent_token_is_token_missing if {
	d := _decide(_input("GET", "/protected/x", {"state": "absent"}))
	d.allow == false
	d.reason == "token_missing"
}

test_absent_cors_preflight_passes_through if {
	inp := object.union(
		_input("OPTIONS", "/protected/x", {"state": "absent"}),
		{"attributes": {"request": {"http": {"headers": {
			"origin": "https://app.example",
			"access-control-request-method": "PUT",
		}}}}},
	)
	d := _decide(inp)
	d.reason == "passthrough"
	d.headers == {}
	d.remove_headers == array.concat(_identity, _underscored)
}

test_absent_options_without_preflight_headers_needs_a_token if {
	_decide(_input("OPTIONS", "/protected/x", {"state": "absent"})).reason == "token_missing"
}

test_absent_route_on_missing_passthrough_removes_the_routes_headers if {
	d := _decide(object.union(_input("GET", "/x", {"state": "absent"}), {"route": "open"}))
	d.reason == "passthrough"
	"x-open-subject" in d.remove_headers
	"x_open_subject" in d.remove_headers
	"authorization" in d.remove_headers
}

# --- Invalid token ---------------------------------------------------------------

test_invalid_token_is_denied_with_its_reason if {
	d := _decide(_input("GET", "/protected/x", {"state": "invalid", "reason": "signature_invalid"}))
	d.allow == false
	d.reason == "signature_invalid"
}

test_invalid_token_passes_through_with_on_invalid if {
	inp := object.union(_input("GET", "/x", {"state": "invalid", "reason": "token_expired"}), {"route": "open"})
	_decide(inp).reason == "passthrough"
}

test_key_unavailable_never_passes_through if {
	inp := object.union(_input("GET", "/x", {"state": "invalid", "reason": "key_unavailable"}), {"route": "open"})
	d := _decide(inp)
	d.allow == false
	d.reason == "key_unavailable"
}

test_invalid_token_with_a_reason_the_policy_does_not_know_is_malformed if {
	_decide(_input("GET", "/protected/x", {"state": "invalid", "reason": "path_outside_base"})).reason == "token_malformed"
}

test_unknown_token_state_denies if {
	_decide(_input("GET", "/protected/x", {"state": "weird"})).allow == false
	_decide(object.remove(_input("GET", "/protected/x", {}), {"token"})).allow == false
}

# --- Verified token ----------------------------------------------------------------

test_verified_allowed_carries_identity_headers if {
	d := _decide(_input("GET", "/protected/data/f", _verified("/data", {})))
	d.reason == "allowed"
	d.scope == "read:/data"
	d.headers == {
		"x-scitokens-subject": "alice",
		"x-scitokens-issuer": _iss,
		"x-scitokens-scope": "read:/data",
		"x-scitokens-jti": "j-1",
	}
	d.remove_headers == array.concat(["x-scitokens-groups"], _underscored)
}

test_verified_denied_has_no_headers if {
	d := _decide(_input("PUT", "/protected/data/f", _verified("/data", {})))
	d.reason == "scope_insufficient"
	not d.headers
}

test_move_without_destination_is_path_invalid if {
	token := object.union(_verified("/", {}), {"scopes": [{"authz": "write", "path": "/", "raw": "write:/"}]})
	_decide(_input("MOVE", "/protected/a", token)).reason == "path_invalid"
}

test_move_to_another_host_is_scope_insufficient if {
	token := object.union(_verified("/", {}), {"scopes": [{"authz": "write", "path": "/", "raw": "write:/"}]})
	inp := object.union(_input("COPY", "/protected/a", token), {"destination_remote": true})
	_decide(inp).reason == "scope_insufficient"
}

test_move_within_the_grant_is_allowed if {
	token := object.union(_verified("/", {}), {"scopes": [{"authz": "write", "path": "/", "raw": "write:/"}]})
	inp := object.union(_input("MOVE", "/protected/a", token), {"destination": "/protected/b"})
	_decide(inp).reason == "allowed"
}

test_another_audience_passes_through_with_on_invalid if {
	token := _verified("/", {"aud": ["https://elsewhere.example"]})
	_decide(object.union(_input("GET", "/x", token), {"route": "open"})).reason == "passthrough"
	_decide(_input("GET", "/protected/x", token)).reason == "audience_mismatch"
}

test_create_only_put_gets_if_none_match if {
	create := {"authz": "storage.create", "path": "/up", "raw": "storage.create:/up"}
	token := object.union(_verified("/", {}), {"scopes": [create]})
	_decide(_input("PUT", "/protected/up/f", token)).headers["if-none-match"] == "*"
	not _decide(_input("MKCOL", "/protected/up/d", token)).headers["if-none-match"]
}

test_username_claim_of_the_route if {
	settings := object.union(_settings, {"username_claim": "preferred_username"})
	d := _decide_settings(_input("GET", "/protected/x", _verified("/", {})), settings)
	d.headers["x-scitokens-subject"] == "albert"
}

test_groups_with_a_comma_are_not_sent if {
	d := _decide(_input("GET", "/protected/x", _verified("/", {"groups": ["/cms", "/a,b"]})))
	not d.headers["x-scitokens-groups"]
	"x-scitokens-groups" in d.remove_headers
}

# --- Site rules (package scitokens.site) ---------------------------------------------

test_site_allow_passes_a_request_without_token if {
	d := _decide(_input("GET", "/protected/public/x", {"state": "absent"})) with data.scitokens.site.allow as {"public"}
	d.reason == "passthrough"
	d.headers == {}
}

test_site_deny_comes_before_the_grant if {
	denials := {"zz_later", "group_required"}
	d := _decide(_input("GET", "/protected/data/f", _verified("/data", {}))) with data.scitokens.site.deny as denials
	d.allow == false
	d.reason == "group_required"
}

test_site_deny_does_not_apply_without_token if {
	denials := {"group_required"}
	d := _decide(_input("GET", "/protected/data/f", {"state": "absent"})) with data.scitokens.site.deny as denials
	d.reason == "token_missing"
}

test_site_grant_allows_what_no_scope_grants if {
	d := _decide(_input("PUT", "/protected/data/f", _verified("/data", {}))) with data.scitokens.site.grant as {"writers"}
	d.reason == "allowed"
	d.scope == "site:writers"
	d.headers["x-scitokens-subject"] == "alice"
	"x-scitokens-scope" in d.remove_headers
}

test_site_grant_does_not_override_the_base_path if {
	d := _decide(_input("PUT", "/elsewhere/f", _verified("/data", {}))) with data.scitokens.site.grant as {"writers"}
	d.reason == "path_outside_base"
}

test_site_headers_never_replace_identity_headers if {
	site := {"x-site": "1", "x-scitokens-subject": "root", "x-scitokens-groups": "/admins", "x_scitokens_jti": "x"}
	d := _decide(_input("GET", "/protected/data/f", _verified("/data", {}))) with data.scitokens.site.headers as site
	d.headers["x-site"] == "1"
	d.headers["x-scitokens-subject"] == "alice"
	not d.headers["x-scitokens-groups"]
	not d.headers.x_scitokens_jti
}
