// The facts a signature check needs from a raw commit object: the signature in its `gpgsig`
// header, the payload that was signed (the object without that header and its continuation
// lines), and the committer. Pure. isomorphic-git's `payload` assumes PGP armor: not used.
import { MAX_SIGNATURE_BYTES } from "./sshsig.ts";

export interface CommitFacts {
  oid: string;
  /** The bytes that were signed: the commit object with the signature header removed. */
  payload: Uint8Array;
  signature: { kind: "ssh" | "openpgp" | "unknown"; text: string } | null;
  /** Why the signature header cannot be a signature at all (too large), else null. */
  malformed: string | null;
  committer: string;
  /** Committer time, seconds since the epoch: what valid-after/valid-before are checked against. */
  committerTime: number;
  subject: string;
}

const SIG_HEADERS = new Set(["gpgsig", "gpgsig-sha256"]);

/** Split the raw commit object (content, no "commit <size>\0" header). */
export function commitFacts(oid: string, object: Uint8Array): CommitFacts {
  // latin1 maps every byte to one char and back: the payload stays byte-exact whatever the encoding.
  const text = Buffer.from(object).toString("latin1");
  const end = text.indexOf("\n\n");
  const headerText = end === -1 ? text : text.slice(0, end);
  const lines = headerText.split("\n");
  const kept: string[] = [];
  let sig: string[] | null = null, skipping = false, committer = "", committerTime = 0;
  for (const line of lines) {
    if (line.startsWith(" ")) {
      if (skipping) { if (sig) sig.push(line.slice(1)); continue; }
      kept.push(line);
      continue;
    }
    const name = line.slice(0, line.indexOf(" ") === -1 ? line.length : line.indexOf(" "));
    skipping = SIG_HEADERS.has(name);
    if (skipping) {
      // git signs SHA-1 objects in `gpgsig`; a `gpgsig-sha256` beside it is removed from the payload too.
      if (name === "gpgsig") sig = [line.slice(name.length + 1)];
      continue;
    }
    if (name === "committer") {
      const m = /^committer (.*) (\d+) ([+-]\d{4})$/.exec(line);
      if (m) { committer = m[1]!; committerTime = Number(m[2]); }
    }
    kept.push(line);
  }
  const body = end === -1 ? "" : text.slice(end);
  const payload = new Uint8Array(Buffer.from(kept.join("\n") + body, "latin1"));
  const utf8 = (s: string) => Buffer.from(s, "latin1").toString("utf8");
  const sigText = sig ? sig.join("\n") + "\n" : null;
  const message = end === -1 ? "" : text.slice(end + 2);
  let malformed: string | null = null;
  let signature: CommitFacts["signature"] = null;
  if (sigText !== null) {
    if (sigText.length > MAX_SIGNATURE_BYTES) {
      malformed = `its signature header is ${sigText.length} bytes, far more than any real signature (${MAX_SIGNATURE_BYTES})`;
    }
    const kind = sigText.startsWith("-----BEGIN SSH SIGNATURE-----") ? "ssh"
      : sigText.startsWith("-----BEGIN PGP SIGNATURE-----") ? "openpgp" : "unknown";
    signature = { kind, text: malformed ? "" : sigText };
  }
  return { oid, payload, signature, malformed, committer: utf8(committer), committerTime, subject: utf8(message.split("\n")[0] ?? "") };
}
