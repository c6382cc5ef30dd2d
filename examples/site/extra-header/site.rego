# Extra headers for the upstream of every allowed request: the storage node's name, the
# token's VO when it carries one (a string claim `vo`), and the request id a front proxy
# set (a header the data lists in policy_headers, so the policy may read it). Identity
# headers cannot be replaced this way.
package scitokens.site

headers := object.union(object.union({"x-storage-node": "node-1"}, _vo), _request_id)

_vo := {"x-token-vo": vo} if {
	vo := input.token.claims.vo
	is_string(vo)
} else := {}

_request_id := {"x-authz-request-id": id} if {
	id := input.attributes.request.http.headers["x-request-id"]
} else := {}
