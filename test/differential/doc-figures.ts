import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

// The differential figures docs/semantics.md publishes for the default seed, read back so
// that the differential test can hold the page to what it measures, and the drift test can
// check that the page names every class of every reference implementation.
//
// The page has one row per reference in the table under "### Agreement per reference
// implementation", whose second cell is the oracle id in backticks, and, per reference
// and kind, a table under a heading ending in "(`<oracle id>`, kind `<kind>`)" whose rows
// start with the class id in backticks and its count.

export const SEMANTICS_PAGE = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "docs", "semantics.md");

export interface DocFigures {
  cases: number;
  agreements: number;
  bothAllow: number;
  bothDeny: number;
  disagreements: number;
  /** Class id → cases, over every kind's table of this reference. */
  perClass: Map<string, number>;
  /** Class id → kind, from the heading of the table the class is in. */
  kindOf: Map<string, string>;
}

/** "1,923 (80.1 %)" → 1923; NaN when the cell does not start with a number. */
const count = (text: string): number => Number(/^\**([\d,]+)/.exec(text.trim())?.[1]?.replaceAll(",", "") ?? Number.NaN);

/** The cells of each table row whose first cell is one backticked word: word → the other cells. */
export function tableRows(text: string): Map<string, string[]> {
  const rows = new Map<string, string[]>();
  for (const line of text.split("\n")) {
    const m = /^\| `([^`|]+)` \|(.*)\|\s*$/.exec(line);
    if (m)
      rows.set(
        m[1] ?? "",
        (m[2] ?? "").split("|").map((cell) => cell.trim()),
      );
  }
  return rows;
}

/** The text under the heading that `heading` matches, up to the next heading of any level. */
function under(page: string, heading: RegExp): string {
  const match = heading.exec(page);
  if (!match) return "";
  const rest = page.slice(match.index + match[0].length);
  const end = /^#{1,6} /m.exec(rest);
  return end ? rest.slice(0, end.index) : rest;
}

/**
 * The figures the page gives for oracle `id`, or a description of what is missing. The
 * agreement row's cells after the first two: cases, agreements, both allow, both deny,
 * disagreements, unexplained.
 */
export function docFigures(id: string, page = readFileSync(SEMANTICS_PAGE, "utf8")): DocFigures | string {
  const table = under(page, /^### Agreement per reference implementation\s*$/m);
  if (table === "") return `${SEMANTICS_PAGE}: no "### Agreement per reference implementation" section`;
  const row = table.split("\n").find((line) => line.split("|")[2]?.trim() === `\`${id}\``);
  if (row === undefined) return `${SEMANTICS_PAGE}: no row for \`${id}\` in the agreement table`;
  const cells = row.split("|").slice(3, 9).map(count);
  if (cells.length < 6 || cells.some(Number.isNaN)) return `${SEMANTICS_PAGE}: the agreement row of \`${id}\` needs six numbers: ${row}`;
  const [cases = 0, agreements = 0, bothAllow = 0, bothDeny = 0, disagreements = 0] = cells;
  const perClass = new Map<string, number>();
  const kindOf = new Map<string, string>();
  const headings = new RegExp(`^#{3,4} .*\\(\`${id.replaceAll(".", "\\.")}\`, kind \`([^\`]+)\`\\)\\s*$`, "gm");
  for (const heading of page.matchAll(headings)) {
    const kind = heading[1] ?? "";
    const text = under(page.slice(heading.index), /^.*$/m);
    for (const [classId, rest] of tableRows(text)) {
      perClass.set(classId, count(rest[0] ?? ""));
      kindOf.set(classId, kind);
    }
  }
  return { cases, agreements, bothAllow, bothDeny, disagreements, perClass, kindOf };
}
