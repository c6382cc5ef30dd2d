import { describe, expect, it } from "vitest";
import { parseAuthzData } from "../../../src/config/authz-data.js";
import { BUILT_POLICY_FILE } from "../../../src/config/service-config.js";
import {
  type InputParts,
  type PolicyToken,
  buildPolicyInput,
  invalidPolicyToken,
  policyInputJson,
  verifiedPolicyToken,
} from "../../../src/envoy/policy-input.js";
import { PolicyEngine } from "../../../src/policy/engine.js";
import { readClaims } from "../../../src/token/claims.js";

// The policy input reaches the WASM policy as JSON text whose token part is serialized
// once per token: the text must be exactly JSON.stringify of the input, whatever it holds.

const ISSUER = "https://issuer.example.org";
const data = parseAuthzData("policy-input.yaml", { audiences: ["https://storage.example.org"], issuers: [{ issuer: ISSUER, base_path: "/" }] });

function verified(claims: Record<string, unknown> = {}): PolicyToken {
  const token = readClaims(
    { iss: ISSUER, sub: "alice", aud: "https://storage.example.org", ver: "scitoken:2.0", scope: "read:/data write:/out", iat: 2e9, exp: 2e9 + 600, ...claims },
    data.issuers.get(ISSUER)!,
  );
  return verifiedPolicyToken(token);
}

const TOKENS: ReadonlyArray<[string, () => PolicyToken]> = [
  ["absent (a frozen constant)", () => Object.freeze({ state: "absent" })],
  ["absent (a fresh object)", () => ({ state: "absent" })],
  ["invalid", () => invalidPolicyToken("signature_invalid")],
  ["verified", () => verified()],
  ["verified with odd claims", () => verified({ "wlcg.groups": ["/a", "/b"], name: 'é "quoted" \\ \u2028', nested: { deep: [1, { x: null }] } })],
];

const REQUESTS: ReadonlyArray<Omit<InputParts, "token">> = [
  {
    method: "GET",
    host: "storage.example.org",
    headers: {},
    path: "/data/f",
    segments: ["data", "f"],
    destination: null,
    destinationRemote: false,
    route: null,
  },
  {
    method: "MOVE",
    host: "h:8443",
    headers: { origin: "https://a.example", "x-request-id": 'a"b' },
    path: "/",
    segments: [],
    destination: "/out/ü",
    destinationRemote: false,
    route: "webdav",
  },
];

describe("policyInputJson", () => {
  it.each(TOKENS.flatMap(([name, token]) => REQUESTS.map((request, i) => [`${name}, request ${i}`, token, request] as const)))(
    "%s: is JSON.stringify of the input",
    (_name, token, request) => {
      const input = buildPolicyInput({ ...request, token: token() });
      expect(policyInputJson(input)).toBe(JSON.stringify(input));
      expect(policyInputJson(input)).toBe(JSON.stringify(input)); // and again, from the token's serialization
    },
  );

  it("gives one frozen view per verified token and per invalid reason", () => {
    const token = readClaims({ iss: ISSUER, ver: "scitoken:2.0", scope: "read:/", iat: 2e9, exp: 2e9 + 600 }, data.issuers.get(ISSUER)!);
    expect(verifiedPolicyToken(token)).toBe(verifiedPolicyToken(token));
    expect(Object.isFrozen(verifiedPolicyToken(token))).toBe(true);
    expect(invalidPolicyToken("token_expired")).toBe(invalidPolicyToken("token_expired"));
    expect(invalidPolicyToken("token_expired")).toEqual({ state: "invalid", reason: "token_expired" });
  });

  it.each([
    ["verified", verified, "allowed"],
    ["invalid", () => invalidPolicyToken("token_expired"), "token_expired"],
    ["absent", () => Object.freeze({ state: "absent" }) as PolicyToken, "token_missing"],
  ] as const)("reaches the policy as text: %s is %s", async (_name, token, reason) => {
    const engine = await PolicyEngine.load(BUILT_POLICY_FILE, data.policyData);
    const input = buildPolicyInput({ ...REQUESTS[0]!, token: token() });
    expect(engine.evaluateJson(policyInputJson(input)).reason).toBe(reason);
  });
});
