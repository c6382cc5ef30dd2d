#!/usr/bin/env node
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { status as Status } from "@grpc/grpc-js";
import { ConfigError } from "../config/config-error.js";
import { configFileFrom } from "../config/environment.js";
import { PACKAGE_ROOT } from "../config/service-config.js";
import type { CheckResponse } from "../gen/envoy/service/auth/v3/external_auth.js";
import { buildCheckRequest, checkChannel, describeResponse, sendCheck } from "./check.js";
import { explain } from "./explain.js";
import { EXPLAIN_EXIT, explainExitCode, formatExplanationJson, formatExplanationText } from "./explain-report.js";
import { TokenSourceError, findToken } from "./explain-token-source.js";
import { importCommand } from "./import.js";
import { policyCommand } from "./policy-diff.js";
import { DEMO, serve } from "./serve.js";
import { tokenCreate } from "./token-create.js";
import { validateConfig } from "./validate.js";
import { VALIDATE_EXIT, formatValidationJson, formatValidationText } from "./validate-report.js";

const USAGE = `scitokens-authz: an Envoy ext_authz service for SciTokens and WLCG tokens

Usage:
  scitokens-authz serve [--config FILE] [--listen HOST:PORT|unix:PATH] [--authz-http HOST:PORT|unix:PATH]
                        [--workers N]
      Without --config: the embedded default (demo policy + a development issuer on loopback),
      which also takes [--dev-issuer-port PORT] (default 8484; 0: any free port) and
      [--state FILE] (where the issuer publishes its key, default .state/dev-issuer.json).
      --authz-http also serves the HTTP authorization endpoint (nginx auth_request, Envoy
      http_service) there, replacing authz_http.listen. --workers N serves Checks from N
      processes (replacing workers; default one per core, 1: a single process; the
      embedded default runs one).
  scitokens-authz validate [--config FILE] [--json]
      Checks the service config, its authorization data and compiled policy as serve would
      at start-up, plus each jwks_file and keys.cache_dir; offline (no key fetch, nothing
      listens). Lists every problem. Exit 0 valid, 2 not valid, 1 internal error.
  scitokens-authz token create [--scope S]... [--aud A]... [--lifetime SECONDS]
                               [--profile scitokens2|wlcg1|scitokens1] [--sub SUBJECT] [--group G]...
                               [--issuer ISS] [--state FILE]
      Mints a token with the running development issuer's key (start \`serve\` first).
  scitokens-authz check --path PATH [--method GET] [--token TOKEN] [--host HOST]
                        [--header NAME:VALUE]... [--route NAME] [--target HOST:PORT|unix:PATH]
                        [--tls-ca FILE] [--tls-cert FILE --tls-key FILE] [--tls-server-name NAME]
      Sends one Envoy-shaped CheckRequest and prints the decision (exit 0 allowed, 1 denied;
      3 when no decision came: the service is down or answered with a gRPC error).
      Plaintext unless a --tls-* option is given: --tls-ca trusts these CA certificates for
      the server's (else the system's), --tls-cert/--tls-key present a client certificate
      (mutual TLS), --tls-server-name checks the server certificate for another name.
  scitokens-authz explain --path PATH [--method GET] [--token TOKEN | --token-file FILE | --no-token]
                          [--route NAME] [--destination URI] [--host HOST] [--header NAME:VALUE]...
                          [--config FILE] [--json]
      Why a request would be allowed or denied, offline: the decision serve would give, the
      token's claims that matter, and for each scope whether it grants the request and why
      not. Without --token/--token-file the token is found by WLCG Bearer Token Discovery
      (BEARER_TOKEN, BEARER_TOKEN_FILE, $XDG_RUNTIME_DIR/bt_u$UID, /tmp/bt_u$UID). Nothing
      is fetched: the signature is verified only with keys on disk (a jwks_file, or the
      keys.cache_dir cache), else it is reported NOT verified and the decision assumes it
      is valid. The token is never printed. Exit 0 allowed, 1 denied, 2 bad input or config.
  scitokens-authz policy diff --base REV|DIR --head REV|DIR --requests FILE [--data FILE]
                              [--policy-dir DIR] [--json]
      Re-evaluates a decision log or decision table under two policies (git revisions or
      folders; the policy folder is --policy-dir, default policies/, of each) and prints
      the decisions that change; offline. Exit 0 none, 1 some, 2 bad input.
  scitokens-authz policy test [DIR] [--data FILE] [--tables GLOB|FILE]... [--json]
      Runs decision tables (default DIR/*.tests.yaml) against the policy in DIR (default
      policies/) with its data (--data, else DIR/data.yaml, else DIR/demo.yaml); offline.
      Prints each failing case and "N passed, M failed". Exit 0 all pass, 1 some fail, 2 bad input.
  scitokens-authz policy build [DIR] [--data FILE] [--output FILE] [--revision REV]
                               [--signing-key PEM [--signing-alg ALG]] [--json]
      Writes an OPA bundle (default build/bundle.tar.gz) for policy.bundle: the Rego of DIR
      (default policies/) compiled to WebAssembly, the authorization data (checked first),
      and a .manifest whose revision is the git commit (-dirty with uncommitted changes).
      --signing-key signs it with OPA (.signatures.json, key id "default"). Exit 0 or 2.
  scitokens-authz import nginx-scitokens|xrootd FILE [--output FILE]
      Converts an nginx-scitokens authorizer.cfg or an XRootD scitokens.cfg into
      authorization data (YAML on stdout or in --output FILE), each value commented with
      the line it came from; stderr says what each setting became, or why it has no
      equivalent. Exit 0 converted, 2 bad input (unreadable or malformed file, no issuer).
  scitokens-authz version | help
`;

class UsageError extends Error {}

/** `check`'s exit codes: a decision (allowed, denied), or none (the service could not be asked). */
const CHECK_EXIT = { allowed: 0, denied: 1, noDecision: 3 } as const;

/** A gRPC failure in one line: the status name and what grpc-js says, e.g. UNAVAILABLE (connection refused). */
function grpcFailure(error: unknown): string {
  const code = (error as { code?: unknown }).code;
  const details = (error as { details?: unknown }).details;
  const name = typeof code === "number" ? (Status[code] ?? `status ${code}`) : null;
  const text = typeof details === "string" && details !== "" ? details : error instanceof Error ? error.message : String(error);
  return name !== null ? `${name} (${text})` : text;
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case "serve": {
      const { values } = parseArgs({
        args: rest,
        options: {
          config: { type: "string" },
          listen: { type: "string" },
          "authz-http": { type: "string" },
          "dev-issuer-port": { type: "string" },
          state: { type: "string" },
          workers: { type: "string" },
        },
        strict: true,
      });
      await serve({
        workers: values.workers,
        config: configFileFrom(values.config),
        listen: values.listen,
        authzHttp: values["authz-http"],
        devIssuerPort: values["dev-issuer-port"],
        stateFile: values.state,
      });
      return 0;
    }
    case "validate": {
      const { values } = parseArgs({ args: rest, options: { config: { type: "string" }, json: { type: "boolean", default: false } }, strict: true });
      const report = await validateConfig(configFileFrom(values.config));
      process.stdout.write(values.json ? formatValidationJson(report) : formatValidationText(report));
      return report.ok ? VALIDATE_EXIT.valid : VALIDATE_EXIT.invalid;
    }
    case "token": {
      const [sub, ...args] = rest;
      if (sub !== "create") throw new UsageError(`unknown token subcommand ${JSON.stringify(sub ?? "")}: expected "token create"`);
      const { values } = parseArgs({
        args,
        options: {
          scope: { type: "string", multiple: true },
          aud: { type: "string", multiple: true },
          lifetime: { type: "string", default: "600" },
          profile: { type: "string", default: "scitokens2" },
          sub: { type: "string" },
          group: { type: "string", multiple: true },
          state: { type: "string", default: DEMO.stateFile },
          issuer: { type: "string" },
        },
        strict: true,
      });
      const lifetime = Number(values.lifetime);
      if (!Number.isInteger(lifetime) || lifetime <= 0) throw new UsageError(`--lifetime: expected a positive whole number of seconds, got ${values.lifetime}`);
      const profile = values.profile;
      if (profile !== "scitokens2" && profile !== "wlcg1" && profile !== "scitokens1") {
        throw new UsageError(`--profile: expected scitokens2, wlcg1 or scitokens1, got ${profile}`);
      }
      const token = await tokenCreate({
        stateFile: resolve(values.state),
        scopes: values.scope ?? [],
        audiences: values.aud ?? [DEMO.audience],
        lifetimeSeconds: lifetime,
        profile,
        subject: values.sub,
        groups: values.group ?? [],
        issuer: values.issuer,
      });
      process.stdout.write(`${token}\n`);
      return 0;
    }
    case "check": {
      const { values } = parseArgs({
        args: rest,
        options: {
          target: { type: "string", default: DEMO.listen },
          method: { type: "string", default: "GET" },
          path: { type: "string" },
          host: { type: "string", default: "storage.example.org" },
          token: { type: "string" },
          header: { type: "string", multiple: true },
          route: { type: "string" },
          "tls-ca": { type: "string" },
          "tls-cert": { type: "string" },
          "tls-key": { type: "string" },
          "tls-server-name": { type: "string" },
        },
        strict: true,
      });
      if (values.path === undefined) throw new UsageError("--path is required");
      if ((values["tls-cert"] === undefined) !== (values["tls-key"] === undefined)) {
        throw new UsageError("--tls-cert and --tls-key go together: a client certificate and its private key");
      }
      const channel = await checkChannel({
        caFile: values["tls-ca"],
        certFile: values["tls-cert"],
        keyFile: values["tls-key"],
        serverName: values["tls-server-name"],
      });
      const headers: Record<string, string> = {};
      for (const h of values.header ?? []) {
        const colon = h.indexOf(":");
        if (colon <= 0) throw new UsageError(`--header: expected NAME:VALUE, got ${JSON.stringify(h)}`);
        headers[h.slice(0, colon).trim().toLowerCase()] = h.slice(colon + 1).trim();
      }
      const request = buildCheckRequest({
        target: values.target,
        method: values.method,
        path: values.path,
        host: values.host,
        token: values.token,
        headers,
        route: values.route,
      });
      let response: CheckResponse;
      try {
        response = await sendCheck(values.target, request, undefined, channel);
      } catch (error) {
        // The service could not be asked: not a decision (exit 3, not 1).
        process.stderr.write(`scitokens-authz check: no decision from ${values.target}: ${grpcFailure(error)}\n`);
        return CHECK_EXIT.noDecision;
      }
      process.stdout.write(`${describeResponse(response)}\n`);
      return response.status?.code === 0 ? CHECK_EXIT.allowed : CHECK_EXIT.denied;
    }
    case "explain":
      return runExplain(rest);
    case "policy":
      return policyCommand(rest);
    case "import":
      return importCommand(rest, process.stdout, process.stderr);
    case "version":
    case "--version": {
      const pkg = JSON.parse(readFileSync(resolve(PACKAGE_ROOT, "package.json"), "utf8")) as { version: string };
      process.stdout.write(`scitokens-authz ${pkg.version} (Node ${process.versions.node})\n`);
      return 0;
    }
    case undefined:
    case "help":
    case "--help":
    case "-h":
      process.stdout.write(USAGE);
      return 0;
    default:
      throw new UsageError(`unknown command ${JSON.stringify(command)}`);
  }
}

/** `explain`: bad options, an unreadable token file or configuration are bad input (exit 2). */
async function runExplain(args: string[]): Promise<number> {
  try {
    const { values } = parseArgs({
      args,
      options: {
        config: { type: "string" },
        method: { type: "string", default: "GET" },
        path: { type: "string" },
        host: { type: "string", default: "storage.example.org" },
        route: { type: "string" },
        destination: { type: "string" },
        header: { type: "string", multiple: true },
        token: { type: "string" },
        "token-file": { type: "string" },
        "no-token": { type: "boolean", default: false },
        json: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
      strict: true,
      allowPositionals: false,
    });
    if (values.help) {
      process.stdout.write(USAGE);
      return 0;
    }
    if (values.path === undefined) throw new UsageError("--path is required");
    const given = [values.token !== undefined, values["token-file"] !== undefined, values["no-token"]].filter(Boolean).length;
    if (given > 1) throw new UsageError("give at most one of --token, --token-file and --no-token");
    const headers: Record<string, string> = {};
    for (const h of values.header ?? []) {
      const colon = h.indexOf(":");
      if (colon <= 0) throw new UsageError(`--header: expected NAME:VALUE, got ${JSON.stringify(h)}`);
      headers[h.slice(0, colon).trim().toLowerCase()] = h.slice(colon + 1).trim();
    }
    const token = await findToken({ token: values.token, tokenFile: values["token-file"], none: values["no-token"] });
    const explanation = await explain({
      configFile: configFileFrom(values.config),
      token,
      request: {
        method: values.method,
        path: values.path,
        host: values.host,
        route: values.route ?? null,
        destination: values.destination ?? null,
        headers,
      },
    });
    process.stdout.write(values.json ? formatExplanationJson(explanation) : formatExplanationText(explanation));
    return explainExitCode(explanation);
  } catch (error) {
    const usage = error instanceof UsageError || (error as { code?: string }).code?.startsWith("ERR_PARSE_ARGS");
    if (!usage && !(error instanceof TokenSourceError) && !(error instanceof ConfigError)) throw error;
    const prefix = error instanceof ConfigError ? "configuration error: " : "";
    process.stderr.write(`scitokens-authz explain: ${prefix}${(error as Error).message}\n${usage ? `\n${USAGE}` : ""}`);
    return EXPLAIN_EXIT.badInput;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    if (error instanceof ConfigError) {
      process.stderr.write(`scitokens-authz: configuration error: ${error.message}\n`);
      process.exitCode = 2;
    } else if (error instanceof UsageError || String((error as { code?: unknown }).code ?? "").startsWith("ERR_PARSE_ARGS")) {
      process.stderr.write(`scitokens-authz: ${(error as Error).message}\n\n${USAGE}`);
      process.exitCode = 64;
    } else {
      process.stderr.write(`scitokens-authz: ${(error as Error).message ?? String(error)}\n`);
      process.exitCode = 1;
    }
  },
);
