import { describe, expect, it } from "vitest";
import { IniSyntaxError, parseIni } from "../../../src/migration/ini.js";

// The INI reader behind `scitokens-authz import`: what Python's ConfigParser
// (nginx-scitokens) and inih (XRootD) both accept, with line numbers.

const bytes = (text: string) => new TextEncoder().encode(text);

/** Every setting as `[section] key=value@line` (the parts joined by |). */
function flat(text: string, preambleAllowed = true): string[] {
  const doc = parseIni(bytes(text), { preambleAllowed });
  const show = (section: string, s: { key: string; parts: readonly { text: string }[]; line: number }) =>
    `[${section}] ${s.key}=${s.parts.map((p) => p.text).join("|")}@${s.line}`;
  return [...doc.preamble.map((s) => show("", s)), ...doc.sections.flatMap((section) => section.settings.map((s) => show(section.name, s)))];
}

function problems(text: string, preambleAllowed = true): string[] {
  try {
    parseIni(bytes(text), { preambleAllowed });
  } catch (error) {
    if (error instanceof IniSyntaxError) return error.problems.map((p) => `${p.line}: ${p.message}`);
    throw error;
  }
  return [];
}

describe("parseIni", () => {
  it.each([
    ["key = value", "[Global]\naudience = testing\n", ["[Global] audience=testing@2"]],
    ["key: value (inih and ConfigParser both split at the first = or :)", "[Global]\nonmissing: deny\n", ["[Global] onmissing=deny@2"]],
    ["a URL value keeps its colons", "[Issuer A]\nissuer = https://a.example.org:8443/x\n", ["[Issuer A] issuer=https://a.example.org:8443/x@2"]],
    ["keys compare in lower case", "[Global]\nAudience = x\n", ["[Global] audience=x@2"]],
    ["an inline ; after whitespace ends the value", "[G]\nrestricted_path = /a /b ; the rest is the site's\n", ["[G] restricted_path=/a /b@2"]],
    ["a ; inside a value stays", "[G]\naudience = a;b\n", ["[G] audience=a;b@2"]],
    ["a # inside a value stays", '[G]\naudience_json = ["x#y"]\n', ['[G] audience_json=["x#y"]@2']],
    ["whole-line comments with # and ;", "# c\n; c\n[G]\n  # indented comment\na = 1\n", ["[G] a=1@5"]],
    [
      "section names keep dots, slashes and spaces",
      "[Issuer https://chtc.cs.wisc.edu/icecube]\nissuer = x\n",
      ["[Issuer https://chtc.cs.wisc.edu/icecube] issuer=x@2"],
    ],
    ["an indented line continues the value", "[G]\nbase_path = /a,\n  /b\n\n  /c\nnext = 1\n", ["[G] base_path=/a,|/b|/c@2", "[G] next=1@6"]],
    ["an indented line after a header is a setting", "[G]\n  a = 1\n", ["[G] a=1@2"]],
    ["a byte-order mark and CRLF line ends", "\uFEFF[G]\r\na = 1\r\n", ["[G] a=1@2"]],
    ["an empty value", "[Issuer A]\nissuer =\n", ["[Issuer A] issuer=@2"]],
    ["settings before any header (inih)", "a = 1\n[G]\n", ["[] a=1@1"]],
  ])("%s", (_name, text, expected) => {
    expect(flat(text)).toEqual(expected);
  });

  it("keeps a repeated header as a second section", () => {
    const doc = parseIni(bytes("[A]\nx = 1\n[B]\n[A]\nx = 2\n"), { preambleAllowed: true });
    expect(doc.sections.map((s) => `${s.name}@${s.line}`)).toEqual(["A@1", "B@3", "A@4"]);
  });

  it.each([
    [
      "a line that is not a setting",
      "[G]\nthis is not ini\n",
      ['2: expected a section header like [Global], a setting like "key = value" or a comment, found "this is not ini"'],
    ],
    ["a header without ]", "[Global\na = 1\n", ['1: expected a section header like [Global], found "[Global" without its closing ]']],
    [
      "every such line",
      "<html>\n<body>\n",
      [
        '1: expected a section header like [Global], a setting like "key = value" or a comment, found "<html>"',
        '2: expected a section header like [Global], a setting like "key = value" or a comment, found "<body>"',
      ],
    ],
    ["a NUL byte", "[G]\na = 1\n\u0000\n", ["3: a NUL byte: this is not a text file"]],
  ])("refuses %s, by line", (_name, text, expected) => {
    expect(problems(text)).toEqual(expected);
  });

  it("refuses bytes that are not UTF-8, at their line", () => {
    const raw = new Uint8Array([...bytes("[G]\n"), 0xff, 0xfe, 0x0a]);
    expect(() => parseIni(raw, { preambleAllowed: true })).toThrow(/line 2: bytes that are not UTF-8/);
  });

  it("refuses settings before any header when asked (Python's ConfigParser)", () => {
    expect(problems("audience = testing\n[Global]\n", false)).toEqual(['1: found the setting "audience" before any [section] header']);
  });
});
