import { Document, type Node, YAMLMap, YAMLSeq } from "yaml";
import type { ImportedData, Sourced } from "./conversion.js";

/** A scalar, or a flow list for several values, commented with where it came from. */
function valueNode(doc: Document, source: Sourced<string | readonly string[]>, asList: boolean): Node {
  const { value } = source;
  const node =
    typeof value === "string" || (!asList && value.length === 1) ? doc.createNode(typeof value === "string" ? value : value[0]) : doc.createNode([...value]);
  if (node instanceof YAMLSeq) node.flow = true;
  node.comment = ` ${source.from}`;
  return node as Node;
}

/**
 * The authorization data as YAML (the schema of src/config/authz-data.ts), every value
 * followed by a comment naming the file, line and setting it came from, and each issuer
 * preceded by its section.
 */
export function authzDataYaml(data: ImportedData, header: readonly string[]): string {
  const doc = new Document(new YAMLMap());
  const root = doc.contents as YAMLMap;
  root.set("audiences", valueNode(doc, data.audiences, true));
  const issuers = new YAMLSeq();
  for (const entry of data.issuers) {
    const map = new YAMLMap();
    map.commentBefore = ` ${entry.from}`;
    map.set("issuer", valueNode(doc, entry.issuer, false));
    map.set("base_path", valueNode(doc, entry.basePath, false));
    if (entry.restrictedPath !== undefined) map.set("restricted_path", valueNode(doc, entry.restrictedPath, true));
    issuers.items.push(map);
  }
  root.set("issuers", issuers);
  if (data.usernameClaim !== undefined) root.set("username_claim", valueNode(doc, data.usernameClaim, false));
  root.set("on_missing", valueNode(doc, data.onMissing, false));
  root.set("on_invalid", valueNode(doc, data.onInvalid, false));
  doc.commentBefore = header.map((line) => ` ${line}`).join("\n");
  return doc.toString({ lineWidth: 0, flowCollectionPadding: false });
}
