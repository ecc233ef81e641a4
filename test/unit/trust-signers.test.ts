// git's allowed_signers and the revoked-keys list: every entry keeps its file:line, every typo is
// a problem at its file:line with what is wrong.
import { describe, expect, test } from "bun:test";
import { parseAllowedSigners, parseRevokedKeys, parseSshTime } from "../../agent/trust/signers.ts";
import { commitFacts } from "../../agent/trust/commit.ts";

// An ed25519 public key in the wire format (any 32 bytes make one).
const KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOZ1Gv1EZ8PCpI0mHbYQ/ezc0z8nzYq2kOQ5VZ3pG+P4";

describe("parseAllowedSigners", () => {
  test("principals, options and the key; comments and blank lines skipped", () => {
    const r = parseAllowedSigners([
      "# ops keys", "",
      `ops@example.com ${KEY} laptop`,
      `"a@x,b@x" namespaces="git,file",valid-after="20260101",valid-before="20270101Z" ${KEY}`,
      `ca@x cert-authority ${KEY}`,
    ].join("\n"), "/etc/agent/allowed_signers");
    expect(r.problems).toEqual([]);
    expect(r.entries).toHaveLength(3);
    expect(r.entries[0]).toMatchObject({ principals: ["ops@example.com"], keyType: "ssh-ed25519", source: "/etc/agent/allowed_signers:3", namespaces: null });
    expect(r.entries[0]!.fingerprint).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
    expect(r.entries[1]).toMatchObject({ principals: ["a@x", "b@x"], namespaces: ["git", "file"], validBefore: Date.UTC(2027, 0, 1) / 1000, source: "/etc/agent/allowed_signers:4" });
    expect(r.entries[2]!.certAuthority).toBe(true);
  });

  const typo: [string, string, RegExp][] = [
    ["misspelt option", `ops@x namespace="git" ${KEY}`, /unknown option "namespace" \(did you mean namespaces\?\)/],
    ["misspelt key type", `ops@x ssh-ed2559 AAAAC3NzaC1lZDI1NTE5AAAAIOZ1`, /unknown option "ssh-ed2559"|unknown key type "ssh-ed2559"/],
    ["key type without key", "ops@x ssh-ed25519", /ssh-ed25519 without its base64 key/],
    ["truncated key", "ops@x ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOZ1", /truncated|32 bytes/],
    ["key of another type", `ops@x ecdsa-sha2-nistp256 ${KEY.split(" ")[1]}`, /says ecdsa-sha2-nistp256 but its data is a ssh-ed25519 key/],
    ["not base64", "ops@x ssh-ed25519 not*base64", /not base64/],
    ["a bad time", `ops@x valid-before="2026-01-01" ${KEY}`, /valid-before="2026-01-01" is not a time/],
    ["an empty window", `ops@x valid-after="20270101",valid-before="20260101" ${KEY}`, /never be valid/],
    ["principals only", "ops@example.com", /no key after the principals/],
    ["an open quote", `"ops@x ${KEY}`, /quote is not closed/],
  ];
  for (const [name, line, message] of typo) {
    test(`${name}: a problem at file:line`, () => {
      const r = parseAllowedSigners(`# keys\n${KEY.replace(/^/, "ok@x ")}\n${line}\n`, "/etc/agent/allowed_signers");
      expect(r.entries).toHaveLength(1);
      expect(r.problems).toHaveLength(1);
      expect(r.problems[0]).toMatchObject({ file: "/etc/agent/allowed_signers", line: 3 });
      expect(r.problems[0]!.message).toMatch(message);
    });
  }
});

test("ssh-keygen timestamps: date, minutes, seconds, Z for UTC", () => {
  expect(parseSshTime("20260102Z")).toBe(Date.UTC(2026, 0, 2) / 1000);
  expect(parseSshTime("202601021530Z")).toBe(Date.UTC(2026, 0, 2, 15, 30) / 1000);
  expect(parseSshTime("20260102153045Z")).toBe(Date.UTC(2026, 0, 2, 15, 30, 45) / 1000);
  expect(parseSshTime("20261302")).toBeNull();
  expect(parseSshTime("yesterday")).toBeNull();
});

test("revoked keys: a key line, an SSH fingerprint, an OpenPGP fingerprint; anything else at file:line", () => {
  const r = parseRevokedKeys(`${KEY} old laptop\nSHA256:${"A".repeat(43)}\ne98dffd488c470869ea5156aea8dcd1a4c04f9ee\n\nops@example.com\n`, "/etc/agent/revoked_keys");
  expect(r.entries.map((e) => e.source)).toEqual(["/etc/agent/revoked_keys:1", "/etc/agent/revoked_keys:2", "/etc/agent/revoked_keys:3"]);
  expect(r.entries[2]!.fingerprint).toBe("E98DFFD488C470869EA5156AEA8DCD1A4C04F9EE");
  expect(r.problems).toEqual([{ file: "/etc/agent/revoked_keys", line: 5, message: expect.stringContaining('"ops@example.com" is not a key') }]);
});

describe("commitFacts", () => {
  const raw = (s: string) => new Uint8Array(Buffer.from(s, "latin1"));
  const signed = "tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\nauthor A <a@x> 1700000000 +0000\ncommitter C <c@x> 1700000001 +0100\n"
    + "gpgsig -----BEGIN SSH SIGNATURE-----\n U1NIU0lH\n -----END SSH SIGNATURE-----\nencoding ISO-8859-1\n\nsubject \xe9\n\nbody\n";
  test("the payload is the object without the gpgsig header and its continuation lines", () => {
    const f = commitFacts("c".repeat(40), raw(signed));
    expect(Buffer.from(f.payload).toString("latin1")).toBe("tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\nauthor A <a@x> 1700000000 +0000\ncommitter C <c@x> 1700000001 +0100\nencoding ISO-8859-1\n\nsubject \xe9\n\nbody\n");
    expect(f.signature).toEqual({ kind: "ssh", text: "-----BEGIN SSH SIGNATURE-----\nU1NIU0lH\n-----END SSH SIGNATURE-----\n" });
    expect(f.committerTime).toBe(1700000001);
    expect(f.committer).toBe("C <c@x>");
  });
  test("an unsigned commit has no signature; its payload is the object", () => {
    const text = "tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\ncommitter C <c@x> 1 +0000\n\nm\n";
    const f = commitFacts("c".repeat(40), raw(text));
    expect(f.signature).toBeNull();
    expect(Buffer.from(f.payload).toString("latin1")).toBe(text);
  });
  test("a 1 MB signature header is malformed, not parsed", () => {
    const big = "tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\ncommitter C <c@x> 1 +0000\ngpgsig -----BEGIN SSH SIGNATURE-----\n" + " QUFB\n".repeat(200_000) + " -----END SSH SIGNATURE-----\n\nm\n";
    const f = commitFacts("c".repeat(40), raw(big));
    expect(f.malformed).toMatch(/signature header is \d+ bytes, far more than any real signature/);
    expect(f.signature!.text).toBe("");
  });
});
