# Writes under /protected/cms/production belong to the WLCG group /cms/production: its
# members may write there without a storage scope, and nobody else may write there even
# with one (reason group_required, declared in the data with its status).
package scitokens.site

import data.scitokens.authz

_production := "/protected/cms/production"

_group := "/cms/production"

_writes := {"PUT", "POST", "PATCH", "DELETE", "MKCOL", "MOVE", "COPY", "PROPPATCH", "LOCK", "UNLOCK"}

_production_write if {
	input.attributes.request.http.method in _writes
	authz.covers(_production, input.path)
}

grant contains "cms-production-group" if {
	_production_write
	_group in input.token.groups
}

deny contains "group_required" if {
	_production_write
	not _group in input.token.groups
}
