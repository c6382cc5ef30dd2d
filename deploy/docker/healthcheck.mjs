#!/usr/bin/env node
import { configFileFrom } from "../../dist/config/environment.js";
// The image's HEALTHCHECK: asks the service's own readiness endpoint, GET /readyz of the
// admin listener (`http.listen`), found in the configuration `serve` reads
// (SCITOKENS_AUTHZ_CONFIG, its environment overrides applied, by the service's own loader).
// Exit 0 when it answers 200; 1 otherwise, with one line saying why (`docker inspect` shows
// it): not ready and its status, no answer, or no `http.listen` in the configuration.
// It sits at deploy/docker/ in the checkout and in the image, beside ../../dist.
import { loadServiceConfig } from "../../dist/config/index.js";

const TIMEOUT_MS = 3000;

function fail(message) {
  process.stdout.write(`scitokens-authz healthcheck: ${message}\n`);
  process.exit(1);
}

const file = configFileFrom(undefined);
if (file === undefined) fail("no configuration: SCITOKENS_AUTHZ_CONFIG is not set");
let config;
try {
  config = await loadServiceConfig(file);
} catch (error) {
  fail(`${file}: ${error instanceof Error ? error.message : String(error)}`);
}
if (config.httpListen === null) fail(`no health endpoint: ${file} sets no http.listen`);

// A wildcard address is asked on loopback, from inside the container.
const { host, port } = config.httpListen;
const address = host === "0.0.0.0" ? "127.0.0.1" : host === "[::]" || host === "::" ? "[::1]" : host;
const url = `http://${address}:${port}/readyz`;
let response;
try {
  response = await fetch(url, { signal: AbortSignal.timeout(TIMEOUT_MS) });
} catch (error) {
  fail(`no answer from ${url}: ${error instanceof Error ? (error.cause?.message ?? error.message) : String(error)}`);
}
const body = await response.text();
if (response.status !== 200) {
  let status = "";
  try {
    status = ` (${JSON.parse(body).status})`;
  } catch {}
  fail(`${url}: ${response.status}${status}`);
}
process.stdout.write(`scitokens-authz healthcheck: ${url}: 200\n`);
