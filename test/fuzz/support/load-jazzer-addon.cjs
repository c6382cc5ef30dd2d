"use strict";
// Preloaded (`node --require`) by scripts/fuzz.mjs into every fuzzing process: makes sure
// jazzer.js's native libFuzzer addon loads on this machine, then leaves it in the module
// cache where jazzer's own `require` finds it.
//
// Why this exists: @jazzer.js/fuzzer 4.0.0 ships prebuilt addons only (no C++ sources),
// and its linux-x64 build was linked against a newer C library than Debian 12's:
//   - GLIBC_2.38, for __isoc23_strtol and __isoc23_strtoul, which glibc 2.38's headers
//     substitute for strtol/strtoul (the C23 variants also accept a "0b" prefix);
//   - GLIBCXX_3.4.32 (GCC 13's libstdc++), for std::ios_base_library_init(), a symbol
//     that GCC 13's <iostream> references only to pin that version: nothing calls it.
// Debian 12 has glibc 2.36 and GCC 12's libstdc++ (GLIBCXX_3.4.30), so dlopen refuses the
// file. Where it loads, it is used as shipped. Where it does not, a copy in the temp
// directory has exactly these requirements relaxed: the two functions bind to strtol and
// strtoul (libFuzzer parses only its decimal flags with them), the marker symbol is left
// unversioned after checking that no relocation uses it, and the two version needs are
// marked weak (glibc skips a missing weak version). Any other missing version or symbol
// is reported and nothing is patched.
const { createHash } = require("node:crypto");
const { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } = require("node:fs");
const Module = require("node:module");
const { tmpdir } = require("node:os");
const { basename, dirname, join } = require("node:path");

const SHT_RELA = 4;
const SHT_DYNSYM = 11;
const SHT_GNU_VERDEF = 0x6ffffffd;
const SHT_GNU_VERNEED = 0x6ffffffe;
const SHT_GNU_VERSYM = 0x6fffffff;
const VER_FLG_WEAK = 0x2;
const VER_NDX_GLOBAL = 1;
const C23_PREFIX = "__isoc23_";
/** Symbols that may be rebound, by the version they need. */
const RELAXABLE = {
  "GLIBC_2.38": new Set(["__isoc23_strtol", "__isoc23_strtoul", "__isoc23_strtoll", "__isoc23_strtoull"]),
  "GLIBCXX_3.4.32": new Set(["_ZSt21ios_base_library_initv"]),
};
/** Link-time markers: left unversioned, and only if no relocation refers to them. */
const MARKERS = new Set(["_ZSt21ios_base_library_initv"]);

class Elf {
  constructor(bytes) {
    if (bytes.readUInt32BE(0) !== 0x7f454c46 || bytes[4] !== 2 || bytes[5] !== 1) {
      throw new Error("not a 64-bit little-endian ELF file");
    }
    this.bytes = bytes;
    const shoff = Number(bytes.readBigUInt64LE(0x28));
    const size = bytes.readUInt16LE(0x3a);
    this.sections = [];
    for (let i = 0; i < bytes.readUInt16LE(0x3c); i += 1) {
      const at = shoff + i * size;
      this.sections.push({
        type: bytes.readUInt32LE(at + 4),
        offset: Number(bytes.readBigUInt64LE(at + 0x18)),
        size: Number(bytes.readBigUInt64LE(at + 0x20)),
        link: bytes.readUInt32LE(at + 0x28),
        info: bytes.readUInt32LE(at + 0x2c),
        entsize: Number(bytes.readBigUInt64LE(at + 0x38)),
      });
    }
  }

  section(type) {
    return this.sections.find((s) => s.type === type);
  }

  string(section, offset) {
    const start = this.sections[section.link].offset + offset;
    return this.bytes.toString("latin1", start, this.bytes.indexOf(0, start));
  }

  /** Version names a shared library defines (.gnu.version_d). */
  definedVersions() {
    const verdef = this.section(SHT_GNU_VERDEF);
    const names = new Set();
    let at = verdef ? verdef.offset : 0;
    for (let i = 0; verdef && i < verdef.info; i += 1) {
      if (this.bytes.readUInt16LE(at + 6) > 0) {
        names.add(this.string(verdef, this.bytes.readUInt32LE(at + this.bytes.readUInt32LE(at + 12))));
      }
      const next = this.bytes.readUInt32LE(at + 16);
      if (next === 0) break;
      at += next;
    }
    return names;
  }

  /** Versions this object needs (.gnu.version_r): library, version name, index, offset of the entry. */
  neededVersions() {
    const verneed = this.section(SHT_GNU_VERNEED);
    const needs = [];
    let at = verneed ? verneed.offset : 0;
    for (let i = 0; verneed && i < verneed.info; i += 1) {
      const file = this.string(verneed, this.bytes.readUInt32LE(at + 4));
      let aux = at + this.bytes.readUInt32LE(at + 8);
      for (let j = 0; j < this.bytes.readUInt16LE(at + 2); j += 1) {
        needs.push({
          file,
          name: this.string(verneed, this.bytes.readUInt32LE(aux + 8)),
          index: this.bytes.readUInt16LE(aux + 6) & 0x7fff,
          entry: aux,
        });
        const next = this.bytes.readUInt32LE(aux + 12);
        if (next === 0) break;
        aux += next;
      }
      const next = this.bytes.readUInt32LE(at + 12);
      if (next === 0) break;
      at += next;
    }
    return needs;
  }

  /** Dynamic symbols that need the version with this index. */
  symbolsNeeding(index) {
    const dynsym = this.section(SHT_DYNSYM);
    const versym = this.section(SHT_GNU_VERSYM);
    const found = [];
    for (let i = 0; i < dynsym.size / dynsym.entsize; i += 1) {
      const versymAt = versym.offset + i * 2;
      if ((this.bytes.readUInt16LE(versymAt) & 0x7fff) !== index) continue;
      const symbolAt = dynsym.offset + i * dynsym.entsize;
      found.push({ number: i, name: this.string(dynsym, this.bytes.readUInt32LE(symbolAt)), symbolAt, versymAt });
    }
    return found;
  }

  /** True when a relocation against the dynamic symbol table refers to symbol `number`. */
  relocates(number) {
    const dynsymIndex = this.sections.indexOf(this.section(SHT_DYNSYM));
    return this.sections.some((s) => {
      if (s.type !== SHT_RELA || s.link !== dynsymIndex) return false;
      for (let at = s.offset; at < s.offset + s.size; at += s.entsize) {
        if (Number(this.bytes.readBigUInt64LE(at + 8) >> 32n) === number) return true;
      }
      return false;
    });
  }
}

/** The shared libraries this process has loaded, by file name (libstdc++.so.6.0.30 …). */
function loadedLibraries() {
  const paths = new Set();
  for (const line of readFileSync("/proc/self/maps", "utf8").split("\n")) {
    const path = line.slice(line.indexOf("/"));
    if (line.includes("/") && path.includes(".so")) paths.add(path);
  }
  return [...paths];
}

function libraryFor(soname, libraries) {
  return libraries.find((p) => basename(p) === soname || basename(p).startsWith(`${soname}.`));
}

/** A copy of the addon with the versions this process lacks relaxed, or an Error saying why not. */
function relaxedCopy(original) {
  const elf = new Elf(readFileSync(original));
  const libraries = loadedLibraries();
  const defined = new Map();
  const missing = elf.neededVersions().filter((need) => {
    const library = libraryFor(need.file, libraries);
    if (!library) return false;
    if (!defined.has(library)) defined.set(library, new Elf(readFileSync(library)).definedVersions());
    return !defined.get(library).has(need.name);
  });
  if (missing.length === 0) return new Error("no missing symbol version found to relax");
  for (const need of missing) {
    const allowed = RELAXABLE[need.name];
    for (const symbol of elf.symbolsNeeding(need.index)) {
      if (!allowed?.has(symbol.name)) {
        return new Error(`${symbol.name}@${need.name} (${need.file}) is not available here and is not one this loader knows how to relax`);
      }
      if (MARKERS.has(symbol.name)) {
        if (elf.relocates(symbol.number)) return new Error(`${symbol.name} is relocated, not only referenced`);
      } else {
        // "__isoc23_strtol" → "strtol": the same string table entry, 9 bytes further on.
        elf.bytes.writeUInt32LE(elf.bytes.readUInt32LE(symbol.symbolAt) + C23_PREFIX.length, symbol.symbolAt);
      }
      elf.bytes.writeUInt16LE(VER_NDX_GLOBAL, symbol.versymAt);
    }
    elf.bytes.writeUInt16LE(elf.bytes.readUInt16LE(need.entry + 4) | VER_FLG_WEAK, need.entry + 4);
  }
  const digest = createHash("sha256").update(elf.bytes).digest("hex").slice(0, 16);
  const dir = join(tmpdir(), "scitokens-authz-fuzz-addon");
  const copy = join(dir, `${basename(original, ".node")}-relaxed-${digest}.node`);
  if (!existsSync(copy)) {
    mkdirSync(dir, { recursive: true });
    const partial = `${copy}.${process.pid}.partial`;
    writeFileSync(partial, elf.bytes);
    renameSync(partial, copy);
  }
  return { copy, relaxed: missing.map((need) => need.name) };
}

function prebuiltAddon() {
  const core = require.resolve("@jazzer.js/core", { paths: [process.cwd(), __dirname] });
  const fuzzerPackage = require.resolve("@jazzer.js/fuzzer/package.json", { paths: [dirname(core)] });
  return join(dirname(fuzzerPackage), "prebuilds", `fuzzer-${process.platform}-${process.arch}.node`);
}

function load() {
  const original = prebuiltAddon();
  try {
    require(original);
    return;
  } catch (error) {
    if (process.platform !== "linux" || !/version `[^']+' not found/.test(String(error?.message))) throw error;
    const made = relaxedCopy(original);
    if (made instanceof Error) {
      throw new Error(`jazzer.js's addon does not load here (${error.message}), and cannot be relaxed: ${made.message}`);
    }
    const addon = new Module(original, module);
    addon.filename = original;
    process.dlopen(addon, made.copy);
    addon.loaded = true;
    require.cache[original] = addon;
    if (process.env.SCITOKENS_AUTHZ_FUZZ_VERBOSE) {
      process.stderr.write(`fuzz: jazzer.js addon loaded from ${made.copy} (relaxed: ${made.relaxed.join(", ")})\n`);
    }
  }
}

load();
