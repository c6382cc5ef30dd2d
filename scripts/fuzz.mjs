#!/usr/bin/env node
// Coverage-guided fuzzing (jazzer.js, which drives libFuzzer) of the bearer, path and
// scope parsers. Each target (test/fuzz/targets/NAME.ts) starts from its seeds
// (test/fuzz/corpus/NAME/) and dictionary (test/fuzz/dictionaries/NAME.dict) and checks
// the invariants of test/fuzz/invariants.ts on every input.
//
//   node scripts/fuzz.mjs [NAME…] [--seconds N] [--runs N] [--seed N] [--keep]
//       fuzz each target (default: all) for N seconds (default 60); --keep keeps the
//       temporary directory with the grown corpus;
//   node scripts/fuzz.mjs --quick
//       the bounded, seeded run of `npm test`: a few seconds per target, output summarized;
//   node scripts/fuzz.mjs NAME --reproduce FILE
//       runs one input through a target without the fuzzer and prints what it violates.
//
// Nothing is written into the checkout: the targets are transpiled, and the seeds copied,
// into a temporary directory, where libFuzzer also writes new inputs and crash files.
// A finding exits 1 and prints each crashing input (as JSON and base64) and the command
// that replays it. Needs dist/ (npm run build). On a Node older than package.json's engines
// it runs with the pinned Node 24 instead (scripts/node-runtime.mjs).
import { spawn } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { useSupportedNode } from "./node-runtime.mjs";
import { transpileTree } from "./transpile.mjs";

await useSupportedNode();

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const fuzzDir = join(root, "test", "fuzz");
const TARGETS = ["bearer", "paths", "scopes"];
/** Longest input libFuzzer builds; above the 16 KiB token limit would only slow it down. */
const MAX_LEN = { bearer: 4096, paths: 1024, scopes: 2048 };
/** --quick: per target, whichever comes first: about 25 s in all on a 2-core machine. */
const QUICK = { seconds: 5, runs: 400_000, seed: 20_240_611 };

function usage(message) {
  if (message) process.stderr.write(`fuzz: ${message}\n`);
  process.stderr.write(
    "usage: node scripts/fuzz.mjs [bearer|paths|scopes …] [--seconds N] [--runs N] [--seed N] [--keep]\n" +
      "       node scripts/fuzz.mjs --quick\n" +
      "       node scripts/fuzz.mjs TARGET --reproduce FILE\n",
  );
  process.exit(2);
}

function parseArgs(argv) {
  const options = { targets: [], seconds: 60, runs: null, seed: null, keep: false, quick: false, reproduce: null };
  const number = (flag, value) => {
    if (!/^\d+$/.test(value ?? "")) usage(`${flag} needs a whole number`);
    return Number(value);
  };
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i];
    if (arg === "--seconds")
      options.seconds = Math.max(1, number(arg, argv[++i])); // 0 would mean forever to libFuzzer
    else if (arg === "--runs") options.runs = number(arg, argv[++i]);
    else if (arg === "--seed") options.seed = number(arg, argv[++i]);
    else if (arg === "--keep") options.keep = true;
    else if (arg === "--quick") options.quick = true;
    else if (arg === "--reproduce") options.reproduce = argv[++i] ?? usage("--reproduce needs a file");
    else if (arg === "--help" || arg === "-h") usage();
    else if (TARGETS.includes(arg)) options.targets.push(arg);
    else usage(`unknown argument ${JSON.stringify(arg)}`);
  }
  if (options.targets.length === 0) options.targets = [...TARGETS];
  if (options.quick) Object.assign(options, { seconds: QUICK.seconds, runs: QUICK.runs, seed: options.seed ?? QUICK.seed });
  if (options.reproduce && options.targets.length !== 1) usage("--reproduce needs exactly one target");
  return options;
}

/**
 * Transpiles test/fuzz/**.ts into `work/test/fuzz/` with Vite's TypeScript transform (Oxc;
 * types are checked by `npm test`'s tsc step, not here). `work/src` links to dist/, so a
 * target's `../../../src/x.js` imports the compiled module that jazzer.js instruments.
 */
async function prepareTargets(work) {
  await transpileTree(root, fuzzDir, work);
}

function show(bytes) {
  const text = bytes.toString("utf8");
  const json = JSON.stringify(text);
  return json.length > 800 ? `${json.slice(0, 800)}… (${bytes.length} bytes)` : json;
}

function reportFindings(target, artifacts) {
  const files = existsSync(artifacts) ? readdirSync(artifacts).map((f) => join(artifacts, f)) : [];
  for (const file of files) {
    const bytes = readFileSync(file);
    process.stderr.write(
      `\nfuzz: ${target}: finding ${file}\n` +
        `  input (UTF-8, as JSON): ${show(bytes)}\n` +
        `  input (base64): ${bytes.toString("base64")}\n` +
        `  replay: node scripts/fuzz.mjs ${target} --reproduce ${file}\n`,
    );
  }
  return files.length;
}

/** libFuzzer's last status line and its "Done N runs in S second(s)". */
function summarize(output) {
  const status = [...output.matchAll(/^#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+) corp: (\d+)\/(\S+)/gm)].at(-1);
  const done = /^Done (\d+) runs in (\d+) second/m.exec(output);
  const runs = done?.[1] ?? status?.[1] ?? "?";
  const seconds = done?.[2] ?? "?";
  return `${runs} runs in ${seconds} s, coverage ${status?.[2] ?? "?"} edges, corpus ${status?.[4] ?? "?"} inputs`;
}

async function fuzzTarget(target, work, options) {
  const corpus = join(work, "corpus", target);
  const artifacts = join(work, "artifacts", target);
  cpSync(join(fuzzDir, "corpus", target), corpus, { recursive: true });
  mkdirSync(artifacts, { recursive: true });
  const libFuzzer = [
    `-artifact_prefix=${artifacts}/`,
    `-dict=${join(fuzzDir, "dictionaries", `${target}.dict`)}`,
    `-max_len=${MAX_LEN[target]}`,
    `-max_total_time=${options.seconds}`,
    ...(options.runs !== null ? [`-runs=${options.runs}`] : []),
    ...(options.seed !== null ? [`-seed=${options.seed}`] : []),
  ];
  const args = [
    "--enable-source-maps",
    "--require",
    join(fuzzDir, "support", "load-jazzer-addon.cjs"),
    join(root, "node_modules", "@jazzer.js", "core", "dist", "cli.js"),
    join(work, "test", "fuzz", "targets", `${target}.js`),
    corpus,
    "--sync",
    "--includes",
    `${join(root, "dist")}/`,
    "--",
    ...libFuzzer,
  ];
  process.stderr.write(`fuzz: ${target}: ${options.quick ? `up to ${options.seconds} s or ${options.runs} runs` : `${options.seconds} s`}, corpus ${corpus}\n`);
  const { status, output } = await runChild(process.execPath, args, { cwd: work, capture: options.quick });
  const crashed = existsSync(artifacts) && readdirSync(artifacts).length > 0;
  if (status === 0 && !crashed && !interrupted) {
    if (options.quick) process.stderr.write(`fuzz: ${target}: no finding (${summarize(output)})\n`);
    return true;
  }
  if (options.quick) {
    const lines = output.trimEnd().split("\n");
    process.stderr.write(`fuzz: ${target}: the fuzzer's last ${Math.min(lines.length, 120)} lines:\n${lines.slice(-120).join("\n")}\n`);
  }
  const findings = reportFindings(target, artifacts);
  process.stderr.write(`fuzz: ${target}: ${interrupted ? "interrupted" : "FAILED"} (exit ${status}, ${findings} crash file(s))\n`);
  return false;
}

let interrupted = false;
let running = null;

/**
 * Runs the fuzzer. On SIGINT or SIGTERM it is sent SIGINT, on which libFuzzer stops after
 * the current input and prints its statistics (it ignores SIGTERM while fuzzing), and
 * SIGKILL if it is still running 10 s later.
 */
function runChild(command, args, { cwd, capture }) {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, { cwd, stdio: capture ? ["ignore", "pipe", "pipe"] : "inherit" });
    const chunks = [];
    if (capture) {
      child.stdout.on("data", (chunk) => chunks.push(chunk));
      child.stderr.on("data", (chunk) => chunks.push(chunk));
    }
    running = child;
    child.on("error", reject);
    child.on("close", (code, signal) => {
      running = null;
      resolvePromise({ status: code ?? signal, output: Buffer.concat(chunks).toString("utf8") });
    });
  });
}

function stop() {
  interrupted = true;
  if (!running) return;
  running.kill("SIGINT");
  setTimeout(() => running?.kill("SIGKILL"), 10_000).unref();
}
process.on("SIGINT", stop);
process.on("SIGTERM", stop);

async function reproduce(target, file, work) {
  const { fuzz } = await import(pathToFileURL(join(work, "test", "fuzz", "targets", `${target}.js`)).href);
  const bytes = readFileSync(file);
  process.stderr.write(`fuzz: ${target}: input ${show(bytes)}\n`);
  try {
    fuzz(bytes);
  } catch (error) {
    process.stderr.write(`fuzz: ${target}: ${error instanceof Error ? error.stack : String(error)}\n`);
    return false;
  }
  process.stderr.write(`fuzz: ${target}: no invariant violated\n`);
  return true;
}

const options = parseArgs(process.argv.slice(2));
process.setSourceMapsEnabled(true); // for --reproduce, which runs a target in this process
if (!existsSync(join(root, "dist", "token", "bearer.js"))) {
  process.stderr.write("fuzz: dist/ is missing: run `npm run build` first\n");
  process.exit(1);
}
const work = mkdtempSync(join(tmpdir(), "scitokens-authz-fuzz-"));
let ok = false;
try {
  await prepareTargets(work);
  if (options.reproduce) {
    ok = await reproduce(options.targets[0], resolve(options.reproduce), work);
  } else {
    const started = Date.now();
    ok = true;
    for (const target of options.targets) {
      if (interrupted) break;
      ok = (await fuzzTarget(target, work, options)) && ok;
    }
    ok &&= !interrupted;
    process.stderr.write(
      `fuzz: ${options.targets.length} target(s) in ${Math.round((Date.now() - started) / 1000)} s: ${ok ? "no finding" : interrupted ? "interrupted" : "FAILED"}\n`,
    );
  }
} finally {
  if (ok && !options.keep) rmSync(work, { recursive: true, force: true });
  else if (!options.reproduce) process.stderr.write(`fuzz: kept ${work} (corpus/ and artifacts/ per target)\n`);
  else rmSync(work, { recursive: true, force: true });
}
process.exit(ok ? 0 : interrupted ? 130 : 1);
