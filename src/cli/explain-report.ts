import type { Explanation } from "./explain.js";
import type { SignatureCheck } from "./explain-verify.js";

/** Exit codes of `explain`: what `serve` would do, or that the question itself is bad. */
export const EXPLAIN_EXIT = { allowed: 0, denied: 1, badInput: 2 } as const;

export function explainExitCode(explanation: Explanation): number {
  return explanation.decision.allow ? EXPLAIN_EXIT.allowed : EXPLAIN_EXIT.denied;
}

/** The signature line; "NOT verified" is spelled out, since the decision then assumes a good one. */
export function signatureText(signature: SignatureCheck): string {
  switch (signature.status) {
    case "verified":
      return `signature verified offline with the ${signature.keys === "jwks_file" ? "jwks_file" : "disk-cached keys"} (${signature.from})`;
    case "failed":
      return `signature INVALID: does not verify with the ${signature.keys === "jwks_file" ? "jwks_file" : "disk-cached keys"} (${signature.from})`;
    case "not_verified":
      return `signature NOT verified (${signature.why}); the decision assumes a valid signature`;
    case "not_checked":
      return `signature not checked: ${signature.why}`;
    case "no_token":
      return "no token";
  }
}

/** `--json`: the explanation as one JSON document (no token material in it). */
export function formatExplanationJson(e: Explanation): string {
  const signature = { ...e.token.signature, text: signatureText(e.token.signature) };
  return `${JSON.stringify(
    {
      allow: e.decision.allow,
      reason: e.decision.reason,
      status: e.decision.status,
      scope: e.decision.scope,
      why: e.decision.why,
      headers: e.decision.headers,
      config: e.config,
      request: e.request,
      token: {
        origin: e.token.origin,
        file: e.token.file,
        searched: e.token.searched,
        state: e.token.state,
        reason: e.token.reason,
        signature,
        header: e.token.header,
        claims: e.token.claims,
      },
      accepted_audiences: e.acceptedAudiences,
      base_paths: e.basePaths,
      scopes: e.scopes,
      scopes_hypothetical: e.scopesHypothetical,
      now: new Date(e.now).toISOString(),
    },
    null,
    2,
  )}\n`;
}

/** The text output: the answer first, then the token's claims, then each scope's verdict. */
export function formatExplanationText(e: Explanation): string {
  const lines: string[] = [];
  const d = e.decision;
  if (d.allow) lines.push(d.reason === "allowed" ? `ALLOWED by scope ${d.scope ?? "?"}` : `ALLOWED (${d.reason}: no identity sent upstream)`);
  else lines.push(`DENIED ${d.status ?? ""} ${d.reason}${d.why !== null ? `: ${d.why}` : ""}`);
  if (e.token.signature.status === "not_verified") lines.push(`  ${signatureText(e.token.signature)}`);
  lines.push("");
  const r = e.request;
  const shownPath = r.normalizedPath !== null && r.normalizedPath !== r.path ? `${r.path} (normalized ${r.normalizedPath})` : r.path;
  lines.push(`request    ${r.method} ${shownPath}${r.destination !== null ? ` -> ${r.destination}` : ""}, route ${r.route ?? "(none: top level)"}`);
  lines.push(`config     ${e.config}`);
  const t = e.token;
  if (t.origin === null) lines.push("token      none");
  else lines.push(`token      from ${t.origin}${t.file !== null ? ` (${t.file})` : ""}: ${stateText(e)}`);
  if (t.origin !== null) lines.push(`  ${signatureText(t.signature)}`);
  if (t.header !== null) lines.push(`  header   alg ${show(t.header.alg)}, kid ${show(t.header.kid)}`);
  const c = t.claims;
  if (c !== null) {
    const trusted = e.basePaths !== null ? `  (trusted; base path ${e.basePaths.join(", ")})` : "";
    lines.push(`  iss      ${show(c.iss)}${trusted}`);
    lines.push(`  sub      ${show(c.sub)}`);
    const accepted = e.acceptedAudiences !== null ? `  (accepted here: ${e.acceptedAudiences.join(", ") || "none"})` : "";
    lines.push(`  aud      ${show(c.aud)}${accepted}`);
    lines.push(`  profile  ${c.profile ?? "?"}`);
    for (const name of ["iat", "nbf", "exp"] as const) lines.push(`  ${name.padEnd(8)} ${time(c[name], e.now)}`);
    if (c.groups !== undefined) lines.push(`  groups   ${show(c.groups)}`);
  } else if (t.origin !== null) {
    lines.push("  claims   cannot be decoded");
  }
  if (e.scopes.length > 0) {
    lines.push("");
    lines.push(e.scopesHypothetical ? "scopes (each alone, as if the token were usable):" : "scopes (each alone):");
    const width = Math.min(40, Math.max(...e.scopes.map((s) => s.scope.length)));
    for (const s of e.scopes) lines.push(`  ${s.grants ? "[yes]" : "[no] "} ${s.scope.padEnd(width)}  ${s.why}`);
  } else if (t.state === "verified") {
    lines.push("");
    lines.push("scopes: none");
  }
  if (d.allow && Object.keys(d.headers).length > 0) {
    lines.push("");
    lines.push("upstream headers:");
    for (const [name, value] of Object.entries(d.headers)) lines.push(`  ${name}: ${value}`);
  }
  return `${lines.join("\n")}\n`;
}

function show(value: unknown): string {
  if (value === undefined) return "(absent)";
  if (typeof value === "string") return value;
  if (Array.isArray(value) && value.every((v) => typeof v === "string")) return value.join(", ");
  return JSON.stringify(value);
}

/** A NumericDate as UTC and relative to now: `2025-03-01 12:00:00 UTC (in 9 min 58 s)`. */
function time(value: unknown, nowMs: number): string {
  if (value === undefined) return "(absent)";
  if (typeof value !== "number" || !Number.isFinite(value)) return `${JSON.stringify(value)} (not a number)`;
  const iso = new Date(value * 1000).toISOString();
  const delta = Math.round(value - nowMs / 1000);
  const span = duration(Math.abs(delta));
  return `${iso.replace("T", " ").replace(/\.\d+Z$/, "")} UTC (${delta === 0 ? "now" : delta > 0 ? `in ${span}` : `${span} ago`})`;
}

function duration(seconds: number): string {
  const units: Array<[string, number]> = [
    ["d", 86400],
    ["h", 3600],
    ["min", 60],
    ["s", 1],
  ];
  const parts: string[] = [];
  let left = seconds;
  for (const [name, size] of units) {
    if (left >= size && parts.length < 2) {
      parts.push(`${Math.floor(left / size)} ${name}`);
      left %= size;
    } else if (parts.length > 0) break;
  }
  return parts.length === 0 ? "0 s" : parts.join(" ");
}

function stateText(e: Explanation): string {
  const t = e.token;
  if (t.state === "invalid") return `unusable (${t.reason ?? "?"})`;
  if (t.state === "verified" && t.signature.status === "not_verified") return "usable if its signature is valid";
  return t.state === "verified" ? "valid" : t.state;
}
