# Anonymous read of a public prefix: GET and HEAD under /protected/public need no token.
# Requests with a token are decided as usual (a valid token still needs a scope).
package scitokens.site

import data.scitokens.authz

allow contains "public-read" if {
	input.token.state == "absent"
	input.attributes.request.http.method in {"GET", "HEAD"}
	authz.covers("/protected/public", input.path)
}
