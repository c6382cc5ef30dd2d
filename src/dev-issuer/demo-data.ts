import { parseDocument, visit } from "yaml";

/**
 * The demo authorization data (policies/demo.yaml, as YAML text) with every occurrence of
 * the development issuer's default URL replaced by `issuer`, comments kept. `serve` uses it
 * when the development issuer runs elsewhere than its default address (`--dev-issuer-port`),
 * so that the demo still trusts the issuer that signs its tokens.
 */
export function demoDataFor(text: string, defaultIssuer: string, issuer: string): string {
  const doc = parseDocument(text);
  visit(doc, {
    Scalar(_key, node) {
      if (node.value === defaultIssuer) node.value = issuer;
    },
  });
  return doc.toString();
}
