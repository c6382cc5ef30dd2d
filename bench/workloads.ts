import { mintToken } from "../src/dev-issuer/mint.js";
import { type BenchAlg, type BenchKey, makeKey } from "./keys.js";
import { seededRandom, shuffled, zipfSampler } from "./random.js";

/** The audience of every benchmark token and the one both servers accept. */
export const AUDIENCE = "https://storage.example.org";
/** The `:authority` of every benchmark request. */
export const HOST = "storage.example.org";
/** Tokens outlive any run (a full run plus a soak), so none expires while it is measured. */
const LIFETIME_SECONDS = 6 * 3600;
/** scitokens-authz's default `tokens.cache_entries`; the distinct workloads cycle through more tokens than this. */
export const OUR_TOKEN_CACHE_ENTRIES = 10_000;

export interface Issuer {
  readonly iss: string;
  readonly basePaths: readonly string[];
  readonly key: BenchKey;
}

export interface NamedScope {
  readonly methods: readonly string[];
  readonly paths: readonly string[];
}

/** What both servers must answer: allowed (200), or denied with this HTTP status. */
export interface Expected {
  readonly allowed: boolean;
  readonly status: number;
}

/** One distinct request of a workload; `kind` names what it exercises (a reason code, or `allowed`). */
export interface BenchRequest {
  readonly method: string;
  readonly path: string;
  /** The whole Authorization header value; absent: no header. */
  readonly authorization?: string | undefined;
  readonly kind: string;
  readonly expect: Expected;
}

export interface Workload {
  readonly name: string;
  /** One line for the report. */
  readonly description: string;
  readonly alg: BenchAlg;
  readonly issuers: readonly Issuer[];
  readonly namedScopes: Readonly<Record<string, NamedScope>>;
  /** The distinct requests, each checked on both servers before anything is measured. */
  readonly requests: readonly BenchRequest[];
  /** The order they are sent in (indices into `requests`), cycled: ghz sends them round-robin. */
  readonly sequence: Uint32Array;
  /**
   * The sequence is one pass over distinct tokens, longer than our token cache: sent in
   * order, every Check misses the cache and verifies a signature (an LRU cache never hits
   * on a cycle longer than itself). Runs on one server continue where the last one stopped.
   */
  readonly cyclic: boolean;
}

const ALLOWED: Expected = { allowed: true, status: 200 };
const UNAUTHORIZED: Expected = { allowed: false, status: 401 };
const FORBIDDEN: Expected = { allowed: false, status: 403 };

export const WORKLOAD_NAMES = ["hot-es256", "hot-rs256", "distinct-es256", "distinct-rs256", "mixed-es256", "large-es256"] as const;
export type WorkloadName = (typeof WORKLOAD_NAMES)[number];

export interface BuildOptions {
  /** Tokens of the distinct workloads: more than {@link OUR_TOKEN_CACHE_ENTRIES}. */
  readonly distinctTokens: number;
  readonly seed: number;
}

/** Builds a workload: keys generated, tokens minted (RS256 minting takes about 1 ms a token). */
export async function buildWorkload(name: WorkloadName | "soak", o: BuildOptions): Promise<Workload> {
  switch (name) {
    case "hot-es256":
      return hot("ES256", o.seed);
    case "hot-rs256":
      return hot("RS256", o.seed);
    case "distinct-es256":
      return distinct("ES256", o.distinctTokens);
    case "distinct-rs256":
      return distinct("RS256", o.distinctTokens);
    case "mixed-es256":
      return mixed(o.seed, 0);
    case "large-es256":
      return large(o.seed);
    case "soak":
      return mixed(o.seed, o.distinctTokens);
  }
}

function singleIssuer(alg: BenchAlg): Issuer {
  return { iss: `https://tokens.example.org/bench-${alg.toLowerCase()}`, basePaths: ["/data"], key: makeKey(alg, `bench-${alg.toLowerCase()}-1`) };
}

interface MintAs {
  readonly subject: string;
  readonly scopes: string[];
  readonly audience?: string;
  readonly issuer?: string;
  readonly now?: Date;
  readonly lifetimeSeconds?: number;
}

function mint(issuer: Issuer, o: MintAs): Promise<string> {
  return mintToken({
    privateKey: issuer.key.privateKey,
    alg: issuer.key.alg,
    kid: issuer.key.kid,
    issuer: o.issuer ?? issuer.iss,
    audience: o.audience ?? AUDIENCE,
    subject: o.subject,
    scopes: o.scopes,
    lifetimeSeconds: o.lifetimeSeconds ?? LIFETIME_SECONDS,
    ...(o.now !== undefined ? { now: o.now } : {}),
  });
}

const bearer = (token: string) => `Bearer ${token}`;

/** The 1,000 users' tokens of the hot workloads: read their folder, write its out/ subfolder. */
async function userTokens(issuer: Issuer, users: number): Promise<string[]> {
  const tokens: string[] = [];
  for (let i = 0; i < users; i += 1) tokens.push(await mint(issuer, { subject: `user${i}`, scopes: [`read:/store/user${i}`, `write:/store/user${i}/out`] }));
  return tokens;
}

/** GET (90 %) and PUT (10 %) of each user, the user drawn by Zipf (s = 1) over a shuffled order. */
function zipfSequence(users: number, length: number, seed: number, pick: (user: number, put: boolean) => number): Uint32Array {
  const random = seededRandom(seed);
  const order = shuffled(users, random);
  const rank = zipfSampler(users, 1, random);
  const sequence = new Uint32Array(length);
  for (let i = 0; i < length; i += 1) sequence[i] = pick(order[rank()]!, random() < 0.1);
  return sequence;
}

function userRequests(tokens: readonly string[]): BenchRequest[] {
  return tokens.flatMap((token, i) => [
    { method: "GET", path: `/data/store/user${i}/run${i % 7}/events.root`, authorization: bearer(token), kind: "allowed", expect: ALLOWED },
    { method: "PUT", path: `/data/store/user${i}/out/result${i % 5}.root`, authorization: bearer(token), kind: "allowed", expect: ALLOWED },
  ]);
}

const HOT_USERS = 1000;
const SEQUENCE_LENGTH = 20_000;

async function hot(alg: BenchAlg, seed: number): Promise<Workload> {
  const issuer = singleIssuer(alg);
  const requests = userRequests(await userTokens(issuer, HOT_USERS));
  return {
    name: `hot-${alg.toLowerCase()}`,
    description: `1,000 distinct ${alg} tokens, drawn by Zipf (s = 1); 90 % GET, 10 % PUT; all allowed`,
    alg,
    issuers: [issuer],
    namedScopes: {},
    requests,
    sequence: zipfSequence(HOT_USERS, SEQUENCE_LENGTH, seed, (user, put) => user * 2 + (put ? 1 : 0)),
    cyclic: false,
  };
}

async function distinct(alg: BenchAlg, count: number): Promise<Workload> {
  const issuer = singleIssuer(alg);
  const requests: BenchRequest[] = [];
  for (let i = 0; i < count; i += 1) {
    const user = i % HOT_USERS;
    const token = await mint(issuer, { subject: `user${user}`, scopes: [`read:/store/user${user}`] });
    requests.push({ method: "GET", path: `/data/store/user${user}/run${i % 7}/events.root`, authorization: bearer(token), kind: "allowed", expect: ALLOWED });
  }
  return {
    name: `distinct-${alg.toLowerCase()}`,
    description: `${count.toLocaleString("en")} distinct ${alg} tokens sent in a cycle longer than our token cache: every Check verifies a signature; all allowed`,
    alg,
    issuers: [issuer],
    namedScopes: {},
    requests,
    sequence: Uint32Array.from({ length: count }, (_, i) => i),
    cyclic: true,
  };
}

const DENIAL_VARIANTS = 100;
/** The soak's share of traffic through tokens sent once a cycle: more distinct tokens than the cache holds. */
const CHURN_SHARE = 0.3;

/**
 * 80 % allowed (the hot workload's users) and 20 % denied, spread evenly over eight kinds:
 * valid tokens asking for what they do not grant (403), and unusable or missing ones (401).
 * With `churn`, 30 % of the traffic (out of the allowed part) cycles through that many
 * more distinct tokens, so the token cache keeps evicting (the soak).
 */
async function mixed(seed: number, churn: number): Promise<Workload> {
  const issuer = singleIssuer("ES256");
  const tokens = await userTokens(issuer, HOT_USERS);
  const requests = userRequests(tokens);
  const denials = new Map<string, number[]>();
  const add = (request: BenchRequest) => {
    const list = denials.get(request.kind) ?? [];
    list.push(requests.length);
    denials.set(request.kind, list);
    requests.push(request);
  };
  const stranger: Issuer = { iss: "https://untrusted.example.org", basePaths: ["/data"], key: makeKey("ES256", "stranger-1") };
  const past = new Date(Date.now() - 2 * 3600 * 1000);
  for (let i = 0; i < DENIAL_VARIANTS; i += 1) {
    const token = tokens[i]!;
    const path = `/data/store/user${i}/run0/events.root`;
    add({ method: "PUT", path: `/data/store/user${i}/in/input.root`, authorization: bearer(token), kind: "scope_insufficient", expect: FORBIDDEN });
    add({ method: "GET", path: `/elsewhere/user${i}/f.root`, authorization: bearer(token), kind: "path_outside_base", expect: FORBIDDEN });
    const expired = await mint(issuer, { subject: `user${i}`, scopes: [`read:/store/user${i}`], now: past, lifetimeSeconds: 600 });
    add({ method: "GET", path, authorization: bearer(expired), kind: "token_expired", expect: UNAUTHORIZED });
    add({ method: "GET", path, authorization: bearer(tamperedSignature(token, i)), kind: "signature_invalid", expect: UNAUTHORIZED });
    add({ method: "GET", path, authorization: bearer(malformed(token, i)), kind: "token_malformed", expect: UNAUTHORIZED });
    const untrusted = await mint(stranger, { subject: `user${i}`, scopes: [`read:/store/user${i}`] });
    add({ method: "GET", path, authorization: bearer(untrusted), kind: "issuer_untrusted", expect: UNAUTHORIZED });
    const elsewhere = await mint(issuer, { subject: `user${i}`, scopes: [`read:/store/user${i}`], audience: "https://other.example.org" });
    add({ method: "GET", path, authorization: bearer(elsewhere), kind: "audience_mismatch", expect: UNAUTHORIZED });
  }
  add({ method: "GET", path: "/data/store/user0/run0/events.root", kind: "token_missing", expect: UNAUTHORIZED });
  const churnStart = requests.length;
  for (let i = 0; i < churn; i += 1) {
    const user = i % HOT_USERS;
    const token = await mint(issuer, { subject: `user${user}`, scopes: [`read:/store/user${user}`] });
    requests.push({ method: "GET", path: `/data/store/user${user}/run${i % 7}/events.root`, authorization: bearer(token), kind: "allowed", expect: ALLOWED });
  }
  const kinds = [...denials.values()];
  const random = seededRandom(seed + 1);
  const length = churn > 0 ? Math.ceil(churn / CHURN_SHARE) : SEQUENCE_LENGTH;
  const allowed = zipfSequence(HOT_USERS, length, seed, (user, put) => user * 2 + (put ? 1 : 0));
  let churned = 0;
  const sequence = allowed.map((hotIndex) => {
    const u = random();
    if (u < 0.2) {
      const list = kinds[Math.floor(random() * kinds.length)]!;
      return list[Math.floor(random() * list.length)]!;
    }
    if (churn > 0 && u < 0.2 + CHURN_SHARE) return churnStart + (churned++ % churn);
    return hotIndex;
  });
  return {
    name: churn > 0 ? "soak" : "mixed-es256",
    description:
      churn > 0
        ? `the mixed workload (20 % denials), with 30 % of the traffic cycling through ${churn.toLocaleString("en")} more tokens than the hot 1,000, so the token cache keeps evicting`
        : "the hot workload's 1,000 ES256 tokens (80 %) and 20 % denials: insufficient scope and outside the base path (403), expired, bad signature, malformed, untrusted issuer, wrong audience, no token (401)",
    alg: "ES256",
    issuers: [issuer],
    namedScopes: {},
    requests,
    sequence,
    cyclic: false,
  };
}

/** The token with one character of its signature changed (same length, still base64url). */
function tamperedSignature(token: string, variant: number): string {
  const at = token.lastIndexOf(".") + 5 + (variant % 20);
  const replacement = token[at] === "A" ? "B" : "A";
  return `${token.slice(0, at)}${replacement}${token.slice(at + 1)}`;
}

/** Not a JWT in five ways: garbage, two segments, non-base64url segments, truncated, empty segments. */
function malformed(token: string, variant: number): string {
  const [header = "", payload = ""] = token.split(".");
  switch (variant % 5) {
    case 0:
      return `not-a-jwt-${variant}`;
    case 1:
      return `${header}.${payload}`;
    case 2:
      return `${header}.${payload}.sig!nature@${variant}`;
    case 3:
      return `${header}.${payload.slice(0, payload.length - 7 - (variant % 13))}.c2ln`;
    default:
      return `..${variant}`;
  }
}

const ISSUERS = 50;
const APPS = 250;

/**
 * 50 issuers (each its own key and base path /voN) and 500 named scopes (appK.read: GET,
 * HEAD; appK.write: PUT, DELETE; each limited to /voN/appK): the policy's data is large,
 * the tokens are the hot workload's kind (1,000, Zipf).
 */
async function large(seed: number): Promise<Workload> {
  const issuers: Issuer[] = Array.from({ length: ISSUERS }, (_, j) => ({
    iss: `https://vo${j}.example.org`,
    basePaths: [`/vo${j}`],
    key: makeKey("ES256", `vo${j}-1`),
  }));
  const namedScopes: Record<string, NamedScope> = {};
  for (let k = 0; k < APPS; k += 1) {
    const paths = [`/vo${k % ISSUERS}/app${k}`];
    namedScopes[`app${k}.read`] = { methods: ["GET", "HEAD"], paths };
    namedScopes[`app${k}.write`] = { methods: ["PUT", "DELETE"], paths };
  }
  const requests: BenchRequest[] = [];
  for (let i = 0; i < HOT_USERS; i += 1) {
    const j = i % ISSUERS;
    const round = Math.floor(i / ISSUERS);
    const reads = j + ISSUERS * (round % (APPS / ISSUERS));
    const writes = j + ISSUERS * ((round + 1) % (APPS / ISSUERS));
    const token = await mint(issuers[j]!, { subject: `user${i}`, scopes: [`app${reads}.read`, `app${writes}.write`, "read:/public"] });
    requests.push(
      { method: "GET", path: `/vo${j}/app${reads}/data/f${i % 10}`, authorization: bearer(token), kind: "allowed", expect: ALLOWED },
      { method: "PUT", path: `/vo${j}/app${writes}/upload/f${i % 10}`, authorization: bearer(token), kind: "allowed", expect: ALLOWED },
    );
  }
  return {
    name: "large-es256",
    description: "50 issuers (ES256, one key each) and 500 named-scope rules; 1,000 tokens by Zipf, 90 % GET, 10 % PUT, all allowed",
    alg: "ES256",
    issuers,
    namedScopes,
    requests,
    sequence: zipfSequence(HOT_USERS, SEQUENCE_LENGTH, seed, (user, put) => user * 2 + (put ? 1 : 0)),
    cyclic: false,
  };
}
