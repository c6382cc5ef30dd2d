package scitokens.authz_test

# Unit tests for data.scitokens.authz.grant (a verified token). Every test mocks the whole
# normalized data document (audiences, issuers, verbs, named_scopes) so that a
# data.yaml next to the policy never changes the outcome.

# --- Fixtures --------------------------------------------------------------

_iss := "https://issuer.example"

_read_methods := ["GET", "HEAD", "OPTIONS", "PROPFIND"]

_write_methods := ["PUT", "POST", "PATCH", "DELETE", "MKCOL", "MOVE", "COPY", "PROPPATCH", "LOCK", "UNLOCK"]

_verbs := {
	"read": _read_methods,
	"storage.read": _read_methods,
	"write": _write_methods,
	"storage.modify": _write_methods,
	"storage.create": ["PUT", "MKCOL"],
	"storage.stage": [],
}

_issuers := {
	_iss: {"base_path": ["/protected"], "restricted_path": null, "audiences": null},
	"https://root.example": {"base_path": ["/"], "restricted_path": null, "audiences": null},
	"https://multi.example": {"base_path": ["/a", "/b"], "restricted_path": null, "audiences": null},
	"https://restricted.example": {
		"base_path": ["/data"],
		"restricted_path": ["/public", "/shared/x"],
		"audiences": null,
	},
	"https://restricted-root.example": {"base_path": ["/"], "restricted_path": ["/public"], "audiences": null},
	"https://restricted-none.example": {"base_path": ["/data"], "restricted_path": [], "audiences": null},
	"https://own-aud.example": {"base_path": ["/"], "restricted_path": null, "audiences": ["https://own.example"]},
	"https://no-aud.example": {"base_path": ["/"], "restricted_path": null, "audiences": []},
}

_named := {
	"dqsegdb.read": {"methods": ["GET", "HEAD"], "paths": ["/dq"]},
	"gracedb.read": {"methods": ["GET"], "paths": null},
	"compute.stage": {"methods": ["STAGE"], "paths": ["/protected/stage"]},
}

_audiences := ["https://storage.example.org", "ANY"]

_scope(authz, path) := {"authz": authz, "path": path, "raw": concat(":", [authz, path])} if path != null

_scope(authz, null) := {"authz": authz, "path": null, "raw": authz}

_token(scopes) := {
	"iss": _iss,
	"sub": "alice",
	"profile": "scitokens:2.0",
	"aud": ["https://storage.example.org"],
	"scopes": scopes,
}

_req(method, path, scopes) := {
	"attributes": {"request": {"http": {"method": method, "host": "storage.example.org"}}},
	"path": path,
	"parsed_path": [s | some s in split(path, "/"); s != ""],
	"destination": null,
	"route": null,
	"token": _token(scopes),
}

# _req with token fields replaced (iss, aud, profile, ...).
_req_tok(method, path, scopes, token_patch) := object.union(
	_req(method, path, scopes),
	{"token": object.union(_token(scopes), token_patch)},
)

_move(method, path, destination, scopes) := object.union(_req(method, path, scopes), {"destination": destination})

_decide(inp) := _decide_with(inp, _audiences, _issuers, _verbs, _named)

_decide_with(inp, audiences, issuers, verbs, named) := d if {
	d := data.scitokens.authz.grant with input as inp
		with data.audiences as audiences
		with data.issuers as issuers
		with data.verbs as verbs
		with data.named_scopes as named
}

_allowed(scope, create_only) := {"allow": true, "reason": "allowed", "scope": scope, "create_only": create_only}

_denied(reason) := {"allow": false, "reason": reason, "scope": null, "create_only": false}

# --- Seed example (README worked example) ----------------------------------

test_seed_base_plus_scope_covers_nested_object if {
	_decide(_req("GET", "/protected/important/data", [_scope("read", "/important")])) == _allowed("read:/important", false)
}

test_seed_base_plus_scope_covers_scope_dir_itself if {
	_decide(_req("GET", "/protected/important", [_scope("read", "/important")])) == _allowed("read:/important", false)
}

test_seed_scope_does_not_cover_sibling_with_common_prefix if {
	_decide(_req("GET", "/protected/importantX", [_scope("read", "/important")])) == _denied("scope_insufficient")
}

test_seed_scope_does_not_cover_parent if {
	_decide(_req("GET", "/protected", [_scope("read", "/important")])) == _denied("scope_insufficient")
}

test_seed_scope_path_is_relative_to_base_not_absolute if {
	_decide(_req("GET", "/protected/x", [_scope("read", "/protected/x")])) == _denied("scope_insufficient")
}

test_seed_with_restricted_public_grants_nothing if {
	issuers := object.union(_issuers, {_iss: {"restricted_path": ["/public"]}})
	inp := _req("GET", "/protected/important/data", [_scope("read", "/important")])
	_decide_with(inp, _audiences, issuers, _verbs, _named) == _denied("scope_insufficient")
}

test_read_root_scope_covers_whole_base if {
	_decide(_req("GET", "/protected/any/where", [_scope("read", "/")])) == _allowed("read:/", false)
}

test_read_root_scope_covers_base_itself if {
	_decide(_req("PROPFIND", "/protected", [_scope("read", "/")])) == _allowed("read:/", false)
}

# --- 1. Issuer -------------------------------------------------------------

test_issuer_unknown_is_untrusted if {
	inp := _req_tok("GET", "/protected/a", [_scope("read", "/")], {"iss": "https://evil.example"})
	_decide(inp) == _denied("issuer_untrusted")
}

test_issuer_trailing_slash_is_not_folded if {
	inp := _req_tok("GET", "/protected/a", [_scope("read", "/")], {"iss": "https://issuer.example/"})
	_decide(inp) == _denied("issuer_untrusted")
}

test_issuer_missing_token_is_untrusted if {
	inp := object.remove(_req("GET", "/protected/a", [_scope("read", "/")]), {"token"})
	_decide(inp) == _denied("issuer_untrusted")
}

test_issuer_untrusted_wins_over_every_later_check if {
	inp := _req_tok("FROB", "/elsewhere", [], {"iss": "https://evil.example", "aud": ["nope"]})
	_decide(inp) == _denied("issuer_untrusted")
}

# --- 2. Audience -----------------------------------------------------------

test_audience_exact_match_in_array if {
	inp := _req_tok(
		"GET", "/protected/a", [_scope("read", "/")],
		{"aud": ["https://other.example", "https://storage.example.org"]},
	)
	_decide(inp) == _allowed("read:/", false)
}

test_audience_string_value_is_accepted_defensively if {
	inp := _req_tok("GET", "/protected/a", [_scope("read", "/")], {"aud": "https://storage.example.org"})
	_decide(inp) == _allowed("read:/", false)
}

test_audience_other_value_mismatch if {
	inp := _req_tok("GET", "/protected/a", [_scope("read", "/")], {"aud": ["https://other.example"]})
	_decide(inp) == _denied("audience_mismatch")
}

test_audience_is_case_and_slash_sensitive if {
	inp := _req_tok(
		"GET", "/protected/a", [_scope("read", "/")],
		{"aud": ["https://storage.example.org/", "https://STORAGE.example.org"]},
	)
	_decide(inp) == _denied("audience_mismatch")
}

test_audience_empty_array_mismatch if {
	inp := _req_tok("GET", "/protected/a", [_scope("read", "/")], {"aud": []})
	_decide(inp) == _denied("audience_mismatch")
}

test_audience_scitokens_any_accepted_when_policy_lists_any if {
	inp := _req_tok("GET", "/protected/a", [_scope("read", "/")], {"aud": ["ANY"]})
	_decide(inp) == _allowed("read:/", false)
}

test_audience_wlcg_any_accepted_when_policy_lists_any if {
	inp := _req_tok(
		"GET", "/protected/a", [_scope("read", "/")],
		{"aud": ["https://wlcg.cern.ch/jwt/v1/any"], "profile": "wlcg:1"},
	)
	_decide(inp) == _allowed("read:/", false)
}

test_audience_any_rejected_when_policy_lacks_any if {
	inp := _req_tok("GET", "/protected/a", [_scope("read", "/")], {"aud": ["ANY"]})
	_decide_with(inp, ["https://storage.example.org"], _issuers, _verbs, _named) == _denied("audience_mismatch")
}

test_audience_wlcg_any_rejected_when_policy_lacks_any if {
	inp := _req_tok("GET", "/protected/a", [_scope("read", "/")], {"aud": ["https://wlcg.cern.ch/jwt/v1/any"]})
	_decide_with(inp, ["https://storage.example.org"], _issuers, _verbs, _named) == _denied("audience_mismatch")
}

test_audience_wlcg_any_listed_literally_does_not_replace_any if {
	inp := _req_tok("GET", "/protected/a", [_scope("read", "/")], {"aud": ["https://wlcg.cern.ch/jwt/v1/any"]})
	_decide_with(inp, ["https://wlcg.cern.ch/jwt/v1/any"], _issuers, _verbs, _named) == _denied("audience_mismatch")
}

test_audience_policy_any_does_not_mean_any_audience if {
	inp := _req_tok("GET", "/protected/a", [_scope("read", "/")], {"aud": ["https://random.example"]})
	_decide_with(inp, ["ANY"], _issuers, _verbs, _named) == _denied("audience_mismatch")
}

test_audience_any_is_case_sensitive if {
	inp := _req_tok("GET", "/protected/a", [_scope("read", "/")], {"aud": ["any"]})
	_decide(inp) == _denied("audience_mismatch")
}

test_audience_null_scitokens2_always_mismatch if {
	inp := _req_tok("GET", "/", [_scope("read", "/")], {"iss": "https://no-aud.example", "aud": null})
	_decide(inp) == _denied("audience_mismatch")
}

test_audience_null_wlcg1_always_mismatch if {
	inp := _req_tok("GET", "/", [_scope("read", "/")], {"iss": "https://no-aud.example", "aud": null, "profile": "wlcg:1"})
	_decide(inp) == _denied("audience_mismatch")
}

test_audience_null_scitokens1_ok_when_accepted_empty if {
	inp := _req_tok(
		"GET", "/", [_scope("read", "/")],
		{"iss": "https://no-aud.example", "aud": null, "profile": "scitokens:1"},
	)
	_decide(inp) == _allowed("read:/", false)
}

test_audience_missing_claim_scitokens1_ok_when_accepted_empty if {
	base := _req_tok("GET", "/", [_scope("read", "/")], {"iss": "https://no-aud.example", "profile": "scitokens:1"})
	inp := object.union(object.remove(base, {"token"}), {"token": object.remove(base.token, {"aud"})})
	not "aud" in object.keys(inp.token)
	_decide(inp) == _allowed("read:/", false)
}

test_audience_null_scitokens1_mismatch_when_accepted_non_empty if {
	inp := _req_tok("GET", "/protected/a", [_scope("read", "/")], {"aud": null, "profile": "scitokens:1"})
	_decide(inp) == _denied("audience_mismatch")
}

test_audience_null_unknown_profile_mismatch if {
	inp := _req_tok("GET", "/", [_scope("read", "/")], {"iss": "https://no-aud.example", "aud": null, "profile": "other"})
	_decide(inp) == _denied("audience_mismatch")
}

test_audience_present_but_accepted_empty_mismatch if {
	inp := _req_tok(
		"GET", "/", [_scope("read", "/")],
		{"iss": "https://no-aud.example", "aud": ["https://storage.example.org"]},
	)
	_decide(inp) == _denied("audience_mismatch")
}

test_audience_global_empty_accepts_only_missing_aud if {
	ok := _req_tok(
		"GET", "/", [_scope("read", "/")],
		{"iss": "https://root.example", "aud": null, "profile": "scitokens:1"},
	)
	_decide_with(ok, [], _issuers, _verbs, _named) == _allowed("read:/", false)
	bad := _req_tok(
		"GET", "/", [_scope("read", "/")],
		{"iss": "https://root.example", "aud": ["ANY"], "profile": "scitokens:1"},
	)
	_decide_with(bad, [], _issuers, _verbs, _named) == _denied("audience_mismatch")
}

test_audience_issuer_override_accepts_its_own if {
	inp := _req_tok("GET", "/x", [_scope("read", "/")], {"iss": "https://own-aud.example", "aud": ["https://own.example"]})
	_decide(inp) == _allowed("read:/", false)
}

test_audience_issuer_override_replaces_global_list if {
	inp := _req_tok(
		"GET", "/x", [_scope("read", "/")],
		{"iss": "https://own-aud.example", "aud": ["https://storage.example.org"]},
	)
	_decide(inp) == _denied("audience_mismatch")
}

test_audience_issuer_override_without_any_rejects_any if {
	inp := _req_tok("GET", "/x", [_scope("read", "/")], {"iss": "https://own-aud.example", "aud": ["ANY"]})
	_decide(inp) == _denied("audience_mismatch")
}

test_audience_mismatch_wins_over_path_method_and_scope if {
	inp := _req_tok("FROB", "/elsewhere", [], {"aud": ["https://other.example"]})
	_decide(inp) == _denied("audience_mismatch")
}

# --- 3. Base path ----------------------------------------------------------

test_base_path_outside_denied if {
	_decide(_req("GET", "/public/a", [_scope("read", "/")])) == _denied("path_outside_base")
}

test_base_path_is_component_wise if {
	_decide(_req("GET", "/protectedX/a", [_scope("read", "/")])) == _denied("path_outside_base")
}

test_base_path_root_request_outside_non_root_base if {
	_decide(_req("GET", "/", [_scope("read", "/")])) == _denied("path_outside_base")
}

test_base_path_root_base_covers_everything if {
	inp := _req_tok("GET", "/anything/at/all", [_scope("read", "/anything")], {"iss": "https://root.example"})
	_decide(inp) == _allowed("read:/anything", false)
}

test_base_path_root_base_covers_root_request if {
	inp := _req_tok("GET", "/", [_scope("read", "/")], {"iss": "https://root.example"})
	_decide(inp) == _allowed("read:/", false)
}

test_base_path_second_of_several_bases if {
	inp := _req_tok("GET", "/b/x/y", [_scope("read", "/x")], {"iss": "https://multi.example"})
	_decide(inp) == _allowed("read:/x", false)
}

test_base_path_outside_all_of_several_bases if {
	inp := _req_tok("GET", "/c/x", [_scope("read", "/")], {"iss": "https://multi.example"})
	_decide(inp) == _denied("path_outside_base")
}

test_base_path_missing_request_path_denied if {
	inp := object.remove(_req("GET", "/protected/a", [_scope("read", "/")]), {"path"})
	_decide(inp) == _denied("path_outside_base")
}

test_base_path_relative_request_path_denied_even_under_root_base if {
	inp := object.union(_req_tok("GET", "/x", [_scope("read", "/")], {"iss": "https://root.example"}), {"path": "x"})
	_decide(inp) == _denied("path_outside_base")
}

test_base_path_checked_before_method if {
	_decide(_req("FROB", "/public", [_scope("read", "/")])) == _denied("path_outside_base")
}

# --- 4. Method -------------------------------------------------------------

test_method_unmapped_denied if {
	_decide(_req("FROB", "/protected/a", [_scope("write", "/")])) == _denied("method_unmapped")
}

test_method_is_case_sensitive if {
	_decide(_req("get", "/protected/a", [_scope("read", "/")])) == _denied("method_unmapped")
}

test_method_mapped_only_by_named_scope_is_not_unmapped if {
	_decide(_req("STAGE", "/protected/a", [_scope("read", "/")])) == _denied("scope_insufficient")
}

test_method_mapped_by_operator_verbs if {
	verbs := object.union(_verbs, {"storage.stage": ["STAGE", "BRINGONLINE"]})
	inp := _req("BRINGONLINE", "/protected/tape/f", [_scope("storage.stage", "/tape")])
	_decide_with(inp, _audiences, _issuers, verbs, _named) == _allowed("storage.stage:/tape", false)
}

test_method_unmapped_without_any_scope_still_unmapped if {
	_decide(_req("TRACE", "/protected/a", [])) == _denied("method_unmapped")
}

# --- 5. Grants: path-style -------------------------------------------------

test_grant_read_does_not_allow_put if {
	_decide(_req("PUT", "/protected/a", [_scope("read", "/")])) == _denied("scope_insufficient")
}

test_grant_write_does_not_allow_get if {
	_decide(_req("GET", "/protected/a", [_scope("write", "/")])) == _denied("scope_insufficient")
}

test_grant_write_allows_delete if {
	_decide(_req("DELETE", "/protected/out/f", [_scope("write", "/out")])) == _allowed("write:/out", false)
}

test_grant_storage_read_allows_head if {
	_decide(_req("HEAD", "/protected/a/b", [_scope("storage.read", "/a")])) == _allowed("storage.read:/a", false)
}

test_grant_storage_modify_allows_proppatch if {
	_decide(_req("PROPPATCH", "/protected/a/b", [_scope("storage.modify", "/a")])) == _allowed("storage.modify:/a", false)
}

test_grant_storage_stage_grants_nothing_by_default if {
	_decide(_req("GET", "/protected/a", [_scope("storage.stage", "/")])) == _denied("scope_insufficient")
}

test_grant_no_scopes_insufficient if {
	_decide(_req("GET", "/protected/a", [])) == _denied("scope_insufficient")
}

test_grant_unknown_authz_ignored if {
	scopes := [_scope("Read", "/"), _scope("storage.readX", "/"), _scope("compute.read", null)]
	_decide(_req("GET", "/protected/a", scopes)) == _denied("scope_insufficient")
}

test_grant_unknown_authz_ignored_next_to_a_granting_scope if {
	_decide(_req("GET", "/protected/a", [_scope("bogus", "/"), _scope("read", "/a")])) == _allowed("read:/a", false)
}

test_grant_path_style_scope_without_path_is_ignored if {
	_decide(_req("GET", "/protected/a", [_scope("read", null)])) == _denied("scope_insufficient")
}

test_grant_first_granting_scope_in_token_order if {
	scopes := [_scope("write", "/"), _scope("read", "/a/b"), _scope("read", "/a")]
	_decide(_req("GET", "/protected/a/b/c", scopes)) == _allowed("read:/a/b", false)
}

test_grant_other_path_scope_does_not_widen if {
	scopes := [_scope("read", "/a"), _scope("write", "/b")]
	_decide(_req("PUT", "/protected/a/f", scopes)) == _denied("scope_insufficient")
}

test_grant_under_second_base_joins_scope_path if {
	inp := _req_tok("PUT", "/a/up/f", [_scope("write", "/up")], {"iss": "https://multi.example"})
	_decide(inp) == _allowed("write:/up", false)
}

# --- 5. Grants: restricted_path --------------------------------------------

test_restricted_inside_restriction_allowed if {
	inp := _req_tok("GET", "/data/public/f", [_scope("read", "/")], {"iss": "https://restricted.example"})
	_decide(inp) == _allowed("read:/", false)
}

test_restricted_outside_restriction_insufficient if {
	inp := _req_tok("GET", "/data/private/f", [_scope("read", "/")], {"iss": "https://restricted.example"})
	_decide(inp) == _denied("scope_insufficient")
}

test_restricted_is_relative_to_base if {
	inp := _req_tok("GET", "/public/f", [_scope("read", "/")], {"iss": "https://restricted-root.example"})
	_decide(inp) == _allowed("read:/", false)
	inp2 := _req_tok("GET", "/data/public/f", [_scope("read", "/")], {"iss": "https://restricted-root.example"})
	_decide(inp2) == _denied("scope_insufficient")
}

test_restricted_is_component_wise if {
	inp := _req_tok("GET", "/data/publicity", [_scope("read", "/")], {"iss": "https://restricted.example"})
	_decide(inp) == _denied("scope_insufficient")
}

test_restricted_intersects_narrower_scope if {
	inp := _req_tok("GET", "/data/shared/x/y/z", [_scope("read", "/shared/x/y")], {"iss": "https://restricted.example"})
	_decide(inp) == _allowed("read:/shared/x/y", false)
}

test_restricted_wider_scope_only_grants_intersection if {
	scopes := [_scope("read", "/shared")]
	ok := _req_tok("GET", "/data/shared/x/f", scopes, {"iss": "https://restricted.example"})
	_decide(ok) == _allowed("read:/shared", false)
	bad := _req_tok("GET", "/data/shared/y/f", scopes, {"iss": "https://restricted.example"})
	_decide(bad) == _denied("scope_insufficient")
}

test_restricted_empty_list_grants_nothing if {
	inp := _req_tok("GET", "/data/f", [_scope("read", "/")], {"iss": "https://restricted-none.example"})
	_decide(inp) == _denied("scope_insufficient")
}

test_restricted_applies_to_named_scopes if {
	inp := _req_tok("GET", "/data/private/f", [_scope("gracedb.read", null)], {"iss": "https://restricted.example"})
	_decide(inp) == _denied("scope_insufficient")
	inp2 := _req_tok("GET", "/data/public/f", [_scope("gracedb.read", null)], {"iss": "https://restricted.example"})
	_decide(inp2) == _allowed("gracedb.read", false)
}

# --- 5. Grants: named scopes -----------------------------------------------

test_named_scope_grants_method_under_its_prefix if {
	inp := _req_tok("GET", "/dq/segments", [_scope("dqsegdb.read", null)], {"iss": "https://root.example"})
	_decide(inp) == _allowed("dqsegdb.read", false)
}

test_named_scope_prefix_is_component_wise if {
	inp := _req_tok("GET", "/dqx", [_scope("dqsegdb.read", null)], {"iss": "https://root.example"})
	_decide(inp) == _denied("scope_insufficient")
}

test_named_scope_outside_its_prefix_insufficient if {
	_decide(_req("GET", "/protected/a", [_scope("dqsegdb.read", null)])) == _denied("scope_insufficient")
}

test_named_scope_other_method_insufficient if {
	inp := _req_tok("PUT", "/dq/segments", [_scope("dqsegdb.read", null)], {"iss": "https://root.example"})
	_decide(inp) == _denied("scope_insufficient")
}

test_named_scope_null_paths_grants_anywhere_under_base if {
	_decide(_req("GET", "/protected/deep/x", [_scope("gracedb.read", null)])) == _allowed("gracedb.read", false)
}

test_named_scope_never_reaches_outside_base if {
	# The request path itself is outside the base: base check comes first.
	inp := _req_tok("GET", "/dq/segments", [_scope("dqsegdb.read", null)], {"iss": _iss})
	_decide(inp) == _denied("path_outside_base")
}

test_named_scope_unmapped_name_ignored if {
	_decide(_req("GET", "/protected/a", [_scope("gracedb.write", null)])) == _denied("scope_insufficient")
}

test_named_scope_empty_named_scopes if {
	inp := _req("GET", "/protected/a", [_scope("gracedb.read", null)])
	_decide_with(inp, _audiences, _issuers, _verbs, {}) == _denied("scope_insufficient")
}

test_named_scope_only_method_mapped_by_named_scope if {
	_decide(_req("STAGE", "/protected/stage/job", [_scope("compute.stage", null)])) == _allowed("compute.stage", false)
}

test_named_scope_cannot_shadow_path_style_authz if {
	named := object.union(_named, {"read": {"methods": ["PUT"], "paths": null}})
	inp := _req("PUT", "/protected/a", [_scope("read", "/")])
	_decide_with(inp, _audiences, _issuers, _verbs, named) == _denied("scope_insufficient")
}

# --- 5. Grants: MOVE / COPY destination ------------------------------------

test_move_requires_grant_on_destination if {
	inp := _move("MOVE", "/protected/a/f", "/protected/b/f", [_scope("write", "/a")])
	_decide(inp) == _denied("scope_insufficient")
}

test_move_allowed_when_same_scope_covers_both if {
	inp := _move("MOVE", "/protected/a/f", "/protected/a/g", [_scope("write", "/a")])
	_decide(inp) == _allowed("write:/a", false)
}

test_copy_requires_one_scope_covering_both_paths if {
	inp := _move("COPY", "/protected/a/f", "/protected/b/f", [_scope("write", "/a"), _scope("write", "/b")])
	_decide(inp) == _denied("scope_insufficient")
}

test_copy_allowed_by_wider_scope_after_narrow_ones if {
	scopes := [_scope("write", "/a"), _scope("write", "/b"), _scope("storage.modify", "/")]
	inp := _move("COPY", "/protected/a/f", "/protected/b/f", scopes)
	_decide(inp) == _allowed("storage.modify:/", false)
}

test_move_destination_outside_base_insufficient if {
	inp := _move("MOVE", "/protected/a/f", "/elsewhere/f", [_scope("write", "/")])
	_decide(inp) == _denied("scope_insufficient")
}

test_move_destination_must_respect_restricted_path if {
	inp := object.union(
		_move("MOVE", "/data/public/f", "/data/private/f", [_scope("write", "/")]),
		{"token": {"iss": "https://restricted.example"}},
	)
	_decide(inp) == _denied("scope_insufficient")
}

test_move_null_destination_checks_source_only if {
	_decide(_req("MOVE", "/protected/a/f", [_scope("write", "/a")])) == _allowed("write:/a", false)
}

test_move_invalid_destination_denied if {
	inp := _move("MOVE", "/protected/a/f", "a/g", [_scope("write", "/")])
	_decide(inp) == _denied("scope_insufficient")
}

test_destination_ignored_for_other_methods if {
	inp := _move("PUT", "/protected/a/f", "/elsewhere", [_scope("write", "/a")])
	_decide(inp) == _allowed("write:/a", false)
}

test_named_scope_move_destination_must_be_under_its_prefix if {
	named := object.union(_named, {"dq.admin": {"methods": ["MOVE"], "paths": ["/dq"]}})
	ok := _req_tok("MOVE", "/dq/a", [_scope("dq.admin", null)], {"iss": "https://root.example"})
	inside := object.union(ok, {"destination": "/dq/b"})
	_decide_with(inside, _audiences, _issuers, _verbs, named) == _allowed("dq.admin", false)
	outside := object.union(ok, {"destination": "/other"})
	_decide_with(outside, _audiences, _issuers, _verbs, named) == _denied("scope_insufficient")
}

test_named_scope_null_paths_move_destination_stays_in_base if {
	named := object.union(_named, {"any.mover": {"methods": ["MOVE"], "paths": null}})
	inp := _move("MOVE", "/protected/a", "/elsewhere/a", [_scope("any.mover", null)])
	_decide_with(inp, _audiences, _issuers, _verbs, named) == _denied("scope_insufficient")
}

# --- 6. Allowed: create_only -----------------------------------------------

test_create_only_when_only_storage_create_grants if {
	_decide(_req("PUT", "/protected/up/f", [_scope("storage.create", "/up")])) == _allowed("storage.create:/up", true)
}

test_create_only_for_mkcol if {
	_decide(_req("MKCOL", "/protected/up/d", [_scope("storage.create", "/up")])) == _allowed("storage.create:/up", true)
}

test_create_only_storage_create_cannot_delete if {
	_decide(_req("DELETE", "/protected/up/f", [_scope("storage.create", "/up")])) == _denied("scope_insufficient")
}

test_create_only_false_when_modify_also_grants if {
	scopes := [_scope("storage.create", "/up"), _scope("storage.modify", "/up/f")]
	_decide(_req("PUT", "/protected/up/f", scopes)) == _allowed("storage.create:/up", false)
}

test_create_only_true_when_modify_grants_elsewhere_only if {
	scopes := [_scope("storage.modify", "/other"), _scope("storage.create", "/up")]
	_decide(_req("PUT", "/protected/up/f", scopes)) == _allowed("storage.create:/up", true)
}

test_create_only_true_with_several_create_scopes if {
	scopes := [_scope("storage.create", "/up"), _scope("storage.create", "/")]
	_decide(_req("PUT", "/protected/up/f", scopes)) == _allowed("storage.create:/up", true)
}

test_create_only_false_for_write if {
	_decide(_req("PUT", "/protected/up/f", [_scope("write", "/up")])) == _allowed("write:/up", false)
}

# --- Decision shape --------------------------------------------------------

test_decision_always_defined_for_empty_input if {
	_decide({}) == _denied("issuer_untrusted")
}

test_decision_denies_with_empty_data if {
	d := _decide_with(_req("GET", "/protected/a", [_scope("read", "/")]), [], {}, {}, {})
	d == _denied("issuer_untrusted")
}

test_decision_has_exactly_the_contract_keys if {
	d := _decide(_req("GET", "/protected/a", [_scope("read", "/")]))
	object.keys(d) == {"allow", "reason", "scope", "create_only"}
}

# --- Route sections (context_extensions.route) -----------------------------

_routes := {
	"dqsegdb": {
		"issuers": ["https://root.example"],
		"audiences": ["https://segments.ligo.org"],
		"base_path": ["/dq"],
		"named_scopes": {"dqsegdb.read": {"methods": ["GET", "HEAD"], "paths": null}},
	},
	"webdav": {"issuers": null, "audiences": null, "base_path": null, "named_scopes": null},
}

_on_route(inp, route) := object.union(inp, {"route": route})

_decide_routes(inp) := d if {
	d := data.scitokens.authz.grant with input as inp
		with data.audiences as _audiences
		with data.issuers as _issuers
		with data.verbs as _verbs
		with data.named_scopes as _named
		with data.routes as _routes
}

_dq_token_patch := {"iss": "https://root.example", "aud": ["https://segments.ligo.org"]}

test_route_named_scope_with_route_audience_and_base if {
	inp := _on_route(_req_tok("GET", "/dq/segments", [_scope("dqsegdb.read", null)], _dq_token_patch), "dqsegdb")
	d := _decide_routes(inp)
	d.allow
	d.scope == "dqsegdb.read"
}

test_route_issuer_not_allowed_on_route if {
	tok := _req_tok("GET", "/dq/segments", [_scope("dqsegdb.read", null)], {"aud": ["https://segments.ligo.org"]})
	inp := _on_route(tok, "dqsegdb")
	_decide_routes(inp).reason == "issuer_untrusted"
}

test_route_audience_overrides_global if {
	tok := _req_tok("GET", "/dq/segments", [_scope("dqsegdb.read", null)], {"iss": "https://root.example"})
	inp := _on_route(tok, "dqsegdb")
	_decide_routes(inp).reason == "audience_mismatch"
}

test_route_base_path_overrides_issuer if {
	inp := _on_route(_req_tok("GET", "/other", [_scope("read", "/")], _dq_token_patch), "dqsegdb")
	_decide_routes(inp).reason == "path_outside_base"
}

test_route_named_scopes_replace_global if {
	# gracedb.read is a global named scope, but the route defines its own set.
	inp := _on_route(_req_tok("GET", "/dq/x", [_scope("gracedb.read", null)], _dq_token_patch), "dqsegdb")
	_decide_routes(inp).reason == "scope_insufficient"
}

test_route_path_scopes_relative_to_route_base if {
	inp := _on_route(_req_tok("GET", "/dq/a/b", [_scope("read", "/a")], _dq_token_patch), "dqsegdb")
	_decide_routes(inp).allow
}

test_route_with_null_overrides_behaves_like_top_level if {
	top := _decide_routes(_req("GET", "/protected/x", [_scope("read", "/")]))
	routed := _decide_routes(_on_route(_req("GET", "/protected/x", [_scope("read", "/")]), "webdav"))
	top == routed
	routed.allow
}

test_route_global_named_scope_on_a_route_without_override if {
	inp := _on_route(_req("GET", "/protected/anything", [_scope("gracedb.read", null)]), "webdav")
	_decide_routes(inp).allow
}
