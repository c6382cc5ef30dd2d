# syntax=docker/dockerfile:1
# scitokens-authz as a container image. At the top of the checkout:
#
#   docker build -t scitokens-authz .
#
# Stages:
#   opa      the pinned OPA CLI, built with Go as scripts/setup.mjs builds it without one on PATH
#   build    setup without the test tools (Regal, envoy-check): npm ci, the Envoy gRPC stubs
#            and descriptor set, policies/*.rego compiled to build/policy.wasm by that OPA,
#            dist/ by tsc
#   packages the production Node packages only
#   (final)  Node, those packages, dist/, build/ and policies/: no Go, no OPA, no compiler;
#            runs as uid 1000, not root
#
# Configuration: mount a folder holding service.yaml (and the authorization data it names) at
# /etc/scitokens-authz, or point SCITOKENS_AUTHZ_CONFIG at another file; SCITOKENS_AUTHZ_LISTEN,
# _LOG_LEVEL, _KEYS_CACHE_DIR and _DECISION_LOG replace single settings (README, "Environment
# variables"). The default policy.wasm is the one built here, /app/build/policy.wasm.
#
# HEALTHCHECK asks GET /readyz of the admin listener: set http.listen in service.yaml (without
# it the container is reported unhealthy, saying so). The image has no OPA: `policy build`,
# `policy diff` and `policy test` run from a checkout.

ARG NODE_IMAGE=node:24-bookworm-slim
ARG GO_IMAGE=golang:1.26-bookworm

FROM ${GO_IMAGE} AS opa
# The version in package.json, config.opaVersion (a test holds them equal).
ARG OPA_VERSION=1.22.2
RUN CGO_ENABLED=0 GOBIN=/out go install github.com/open-policy-agent/opa@v${OPA_VERSION} \
    && /out/opa version

FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
COPY --from=opa /out/opa .tools/bin/opa
COPY tsconfig.json buf.yaml ./
COPY proto proto
COPY scripts scripts
COPY policies policies
COPY src src
RUN node scripts/setup.mjs --no-test-tools

FROM ${NODE_IMAGE} AS packages
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

FROM ${NODE_IMAGE}
ENV NODE_ENV=production \
    SCITOKENS_AUTHZ_CONFIG=/etc/scitokens-authz/service.yaml
# Folders the service may write, owned by its user: keys.cache_dir, a bundle's persist_dir,
# or (the compose demo) a named volume mounted there, which Docker creates with this owner.
RUN install -d -o 1000 -g 1000 /var/lib/scitokens-authz /var/cache/scitokens-authz
WORKDIR /app
COPY package.json ./
COPY policies policies
COPY --from=packages /app/node_modules node_modules
COPY --from=build /src/dist dist
COPY --from=build /src/build build
COPY deploy/docker/healthcheck.mjs deploy/docker/healthcheck.mjs
USER 1000:1000
EXPOSE 9292
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["node", "/app/deploy/docker/healthcheck.mjs"]
ENTRYPOINT ["node", "/app/dist/cli/main.js"]
CMD ["serve"]
