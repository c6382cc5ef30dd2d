import type { CheckedIssuer, CheckedListener, ValidationReport } from "./validate.js";

/** Exit codes of `validate`: 2 is also what `serve` exits with on a bad configuration. */
export const VALIDATE_EXIT = { valid: 0, internalError: 1, invalid: 2 } as const;

/**
 * The report for a person: one `FILE: key: what was expected, what was found` line per
 * problem (ConfigError's wording), then a summary; when valid, what was checked.
 */
export function formatValidationText(report: ValidationReport): string {
  const { checked } = report;
  if (!report.ok) {
    const lines = report.problems.map(({ file, problem }) => `${file}: ${problem}`);
    for (const what of report.notChecked) lines.push(`not checked: ${what}`);
    const files = new Set(report.problems.map((p) => p.file)).size;
    const count = report.problems.length;
    lines.push(`scitokens-authz validate: ${count} problem${count === 1 ? "" : "s"} in ${files} file${files === 1 ? "" : "s"}: not valid`);
    return `${lines.join("\n")}\n`;
  }
  const routes = ["(top level)", ...checked.routes].join(", ");
  const lines = [
    "scitokens-authz validate: valid (checked offline: no key was fetched, nothing listened)",
    `  config     ${checked.config}`,
    `  data       ${checked.data}`,
    `  policy     ${checked.policy}`,
    ...(checked.bundleRevision !== null
      ? [`  bundle     revision ${checked.bundleRevision || "(none)"}, signature ${checked.signed ? "verified" : "not checked (no policy.bundle.signing)"}`]
      : []),
    `  entrypoint ${checked.entrypoint} (answered ${checked.syntheticInputs} synthetic input${checked.syntheticInputs === 1 ? "" : "s"} within its contract)`,
    ...checked.issuers.map((issuer) => `  issuer     ${issuer.issuer}: ${describeKeys(issuer)}`),
    `  routes     ${routes}`,
    ...(checked.listener !== null ? [`  listener   ${describeListener(checked.listener)}`] : []),
    `  key cache  ${checked.cacheDir ?? "none (keys.cache_dir not set)"}`,
    `  revision   ${checked.revision ?? "unknown"}`,
  ];
  return `${lines.join("\n")}\n`;
}

function describeListener({ address, tls }: CheckedListener): string {
  if (tls === null) return `${address}, plaintext gRPC`;
  const { certificate, mutual, clientCas } = tls;
  const clients = mutual ? `; client certificates required (${clientCas} CA certificate${clientCas === 1 ? "" : "s"})` : "";
  return `${address}, ${mutual ? "mutual TLS" : "TLS"}: certificate ${certificate.subject} by ${certificate.issuer}, valid until ${certificate.notAfter}${clients}`;
}

function describeKeys(issuer: CheckedIssuer): string {
  switch (issuer.source) {
    case "discovery":
      return "keys by OIDC discovery (not fetched)";
    case "jwks_uri":
      return `keys from ${issuer.from} (not fetched)`;
    case "jwks_file":
      return `keys from ${issuer.from} (${issuer.usableKeys ?? 0} usable key${issuer.usableKeys === 1 ? "" : "s"})`;
  }
}

/** The report for operators' CI (`--json`): `{ ok, problems[], checked{}, not_checked[] }`. */
export function formatValidationJson(report: ValidationReport): string {
  const { checked } = report;
  return `${JSON.stringify(
    {
      ok: report.ok,
      problems: report.problems.map(({ file, problem }) => ({ file, problem, line: `${file}: ${problem}` })),
      checked: {
        config: checked.config,
        data: checked.data,
        policy: checked.policy,
        bundle_revision: checked.bundleRevision,
        signature_verified: checked.signed,
        entrypoint: checked.entrypoint,
        synthetic_inputs: checked.syntheticInputs,
        issuers: checked.issuers.map((i) => ({ issuer: i.issuer, source: i.source, from: i.from, usable_keys: i.usableKeys })),
        routes: checked.routes,
        cache_dir: checked.cacheDir,
        listener: checked.listener === null ? null : listenerJson(checked.listener),
        revision: checked.revision,
      },
      not_checked: report.notChecked,
    },
    null,
    2,
  )}\n`;
}

function listenerJson({ address, tls }: CheckedListener): object {
  if (tls === null) return { address, tls: null };
  const { subject, issuer, serial, fingerprint, notBefore, notAfter } = tls.certificate;
  return {
    address,
    tls: { certificate: { subject, issuer, serial, fingerprint, not_before: notBefore, not_after: notAfter }, mutual: tls.mutual, client_cas: tls.clientCas },
  };
}
