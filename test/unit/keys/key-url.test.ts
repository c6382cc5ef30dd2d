import { describe, expect, it } from "vitest";
import { discoveryUrls, keyUrlProblem } from "../../../src/token/keys/key-url.js";

describe("keyUrlProblem", () => {
  it.each([
    ["https://issuer.example.org", true],
    ["https://issuer.example.org:8443/path", true],
    ["http://127.0.0.1:8080/jwks", true],
    ["http://127.10.20.30/jwks", true],
    ["http://localhost:3000/", true],
    ["http://LOCALHOST/", true],
    ["http://[::1]:8080/jwks", true],
    ["http://2130706433/", true], // 127.0.0.1 in integer form, normalised by the URL parser
    ["http://example.org", false],
    ["http://128.0.0.1/", false],
    ["http://localhost.example.org/", false],
    ["http://127.0.0.1.nip.io/", false],
    ["http://[::2]/", false],
    ["ftp://127.0.0.1/jwks", false],
    ["file:///etc/jwks.json", false],
    ["not a url", false],
    ["/relative/jwks", false],
  ])("%s allowed: %s", (url, allowed) => {
    expect(keyUrlProblem(url) === null).toBe(allowed);
  });
});

describe("discoveryUrls", () => {
  it.each([
    ["https://op.example.org", "https://op.example.org/.well-known/openid-configuration", "https://op.example.org/.well-known/oauth-authorization-server"],
    ["https://op.example.org/", "https://op.example.org/.well-known/openid-configuration", "https://op.example.org/.well-known/oauth-authorization-server"],
    [
      "https://cilogon.org/igwn",
      "https://cilogon.org/igwn/.well-known/openid-configuration",
      "https://cilogon.org/.well-known/oauth-authorization-server/igwn",
    ],
    [
      "https://op.example.org/a/b/",
      "https://op.example.org/a/b/.well-known/openid-configuration",
      "https://op.example.org/.well-known/oauth-authorization-server/a/b",
    ],
  ])("%s", (issuer, oidc, rfc8414) => {
    expect(discoveryUrls(issuer)).toEqual([oidc, rfc8414]);
  });
});

describe("keyUrlProblem with the URL that led there", () => {
  it.each([
    ["a loopback jwks_uri from a loopback issuer", "http://127.0.0.1:8484/jwks", "http://127.0.0.1:8484/dev", null],
    ["an https jwks_uri from a remote issuer", "https://keys.example.org/jwks", "https://op.example.org", null],
    ["a plain-http loopback jwks_uri from a remote issuer", "http://127.0.0.1:2379/v2/keys", "https://op.example.org", "reached from a remote URL"],
    ["a redirect to plain-http localhost from a remote URL", "http://localhost:8080/admin", "https://op.example.org/jwks", "reached from a remote URL"],
  ])("%s", (_name, url, from, problem) => {
    const result = keyUrlProblem(url, from);
    if (problem === null) expect(result).toBeNull();
    else expect(result).toContain(problem);
  });
});
