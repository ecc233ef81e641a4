// git's allowed_signers format (ssh-keygen(1), ALLOWED SIGNERS) and the revoked-keys list, parsed
// into data with a `file:line` for every entry and every problem. Pure apart from decoding keys.
import { closest } from "../manifest/suggest.ts";
import { isCertType, parseCertificate } from "./cert.ts";
import { KEY_TYPES, TrustInputError, fingerprintOf, parseKeyText } from "./wire.ts";

export interface AllowedSigner {
  principals: string[];
  /** SHA256:… of the key. */
  fingerprint: string;
  keyType: string;
  certAuthority: boolean;
  namespaces: string[] | null;
  /** Seconds since the epoch, or null when unbounded. */
  validAfter: number | null;
  validBefore: number | null;
  /** Where it was listed: "/etc/agent/allowed_signers:3". */
  source: string;
}

export interface SignersProblem { file: string; line: number; message: string }
export type ParsedList<T> = { entries: T[]; problems: SignersProblem[] };

const OPTIONS = ["cert-authority", "namespaces", "valid-after", "valid-before"];

/** Split a line on blanks, keeping "quoted strings" (with their quotes) inside one field. */
function fields(line: string): string[] {
  const out: string[] = [];
  let cur = "", quoted = false;
  for (const ch of line) {
    if (ch === '"') quoted = !quoted;
    if (!quoted && (ch === " " || ch === "\t")) { if (cur) out.push(cur); cur = ""; continue; }
    cur += ch;
  }
  if (quoted) throw new TrustInputError("a quote is not closed");
  if (cur) out.push(cur);
  return out;
}

/** Split options on commas outside quotes. */
function splitOptions(s: string): string[] {
  const out: string[] = [];
  let cur = "", quoted = false;
  for (const ch of s) {
    if (ch === '"') quoted = !quoted;
    if (!quoted && ch === ",") { out.push(cur); cur = ""; continue; }
    cur += ch;
  }
  out.push(cur);
  return out;
}

/**
 * ssh-keygen's timestamps: YYYYMMDD or YYYYMMDDHHMM[SS], a trailing Z for UTC, else the node's
 * local time zone (as ssh-keygen reads them). Seconds since the epoch, or null when malformed.
 */
export function parseSshTime(s: string): number | null {
  const m = /^(\d{4})(\d{2})(\d{2})(?:(\d{2})(\d{2})(\d{2})?)?(Z?)$/.exec(s);
  if (!m) return null;
  const [y, mo, d, h, mi, se] = [m[1], m[2], m[3], m[4] ?? "0", m[5] ?? "0", m[6] ?? "0"].map(Number) as number[];
  if (mo! < 1 || mo! > 12 || d! < 1 || d! > 31 || h! > 23 || mi! > 59 || se! > 59) return null;
  const ms = m[7] ? Date.UTC(y!, mo! - 1, d!, h, mi, se) : new Date(y!, mo! - 1, d!, h, mi, se).getTime();
  return Math.floor(ms / 1000);
}

const unquote = (v: string) => v.startsWith('"') && v.endsWith('"') && v.length >= 2 ? v.slice(1, -1) : v;

/** Parse an allowed_signers file. Every line that is not a signer, blank or a comment is a problem. */
export function parseAllowedSigners(text: string, file: string): ParsedList<AllowedSigner> {
  const entries: AllowedSigner[] = [], problems: SignersProblem[] = [];
  text.split("\n").forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith("#")) return;
    try {
      entries.push(parseSignerLine(line, `${file}:${i + 1}`));
    } catch (e) {
      problems.push({ file, line: i + 1, message: e instanceof TrustInputError ? e.message : String(e) });
    }
  });
  return { entries, problems };
}

function parseSignerLine(line: string, source: string): AllowedSigner {
  const f = fields(line);
  const principals = unquote(f[0] ?? "").split(",").filter(Boolean);
  if (principals.length === 0) throw new TrustInputError("no principals (expected: PRINCIPALS [OPTIONS] KEYTYPE BASE64-KEY)");
  let i = 1;
  let options: string[] = [];
  if (f[i] && !(KEY_TYPES as readonly string[]).includes(f[i]!) && !/^(ssh|ecdsa|sk)-/.test(f[i]!)) options = splitOptions(f[i++]!);
  const keyType = f[i], key = f[i + 1];
  if (!keyType) throw new TrustInputError(`no key after the principals (expected: PRINCIPALS [OPTIONS] KEYTYPE BASE64-KEY)`);
  if (!(KEY_TYPES as readonly string[]).includes(keyType)) {
    throw new TrustInputError(`unknown key type "${keyType}" (one of ${KEY_TYPES.join(", ")})`);
  }
  if (!key) throw new TrustInputError(`${keyType} without its base64 key`);
  const parsed = parseKeyText(keyType, key);
  const s: AllowedSigner = {
    principals, fingerprint: parsed.fingerprint, keyType, certAuthority: false, namespaces: null, validAfter: null, validBefore: null, source,
  };
  for (const opt of options) {
    const eq = opt.indexOf("=");
    const name = (eq === -1 ? opt : opt.slice(0, eq)).toLowerCase();
    const value = eq === -1 ? null : unquote(opt.slice(eq + 1));
    if (!OPTIONS.includes(name)) {
      const near = closest(name, OPTIONS);
      throw new TrustInputError(`unknown option "${name}"${near ? ` (did you mean ${near}?)` : ""}; options are ${OPTIONS.join(", ")}`);
    }
    if (name === "cert-authority") { s.certAuthority = true; continue; }
    if (value === null || value === "") throw new TrustInputError(`option ${name} needs a value, like ${name}="${name === "namespaces" ? "git" : "20260101"}"`);
    if (name === "namespaces") s.namespaces = value.split(",").map((x) => x.trim()).filter(Boolean);
    else {
      const t = parseSshTime(value);
      if (t === null) throw new TrustInputError(`${name}="${value}" is not a time (YYYYMMDD or YYYYMMDDHHMM[SS], Z for UTC)`);
      if (name === "valid-after") s.validAfter = t; else s.validBefore = t;
    }
  }
  if (s.validAfter !== null && s.validBefore !== null && s.validAfter >= s.validBefore) {
    throw new TrustInputError("valid-after is not before valid-before: the key would never be valid");
  }
  return s;
}

export interface RevokedKey { fingerprint: string; source: string }

/**
 * The revoked-keys file: one key per line, as an SSH public key line ("ssh-ed25519 AAAA… comment"),
 * an SSH certificate line (revokes the certified key), an SSH fingerprint (SHA256:…) or an OpenPGP
 * fingerprint (40 or 64 hex digits).
 */
export function parseRevokedKeys(text: string, file: string): ParsedList<RevokedKey> {
  const entries: RevokedKey[] = [], problems: SignersProblem[] = [];
  text.split("\n").forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith("#")) return;
    const source = `${file}:${i + 1}`;
    const [first, second] = line.split(/\s+/);
    try {
      if (/^SHA256:[A-Za-z0-9+/]{43}$/.test(first!)) entries.push({ fingerprint: first!, source });
      else if (/^([0-9A-Fa-f]{40}|[0-9A-Fa-f]{64})$/.test(first!)) entries.push({ fingerprint: first!.toUpperCase(), source });
      else if (isCertType(first!)) {
        // A certificate line revokes the key it certifies (the CA stays trusted).
        if (!second || !/^[A-Za-z0-9+/]+={0,2}$/.test(second)) throw new TrustInputError(`${first} without its base64 certificate`);
        entries.push({ fingerprint: parseCertificate(new Uint8Array(Buffer.from(second, "base64"))).key.fingerprint, source });
      } else if ((KEY_TYPES as readonly string[]).includes(first!)) {
        if (!second) throw new TrustInputError(`${first} without its base64 key`);
        entries.push({ fingerprint: parseKeyText(first!, second).fingerprint, source });
      } else throw new TrustInputError(`"${first}" is not a key: use an SSH public key line, an SSH fingerprint (SHA256:…) or an OpenPGP fingerprint (40 hex digits)`);
    } catch (e) {
      problems.push({ file, line: i + 1, message: e instanceof TrustInputError ? e.message : String(e) });
    }
  });
  return { entries, problems };
}

export { fingerprintOf };
