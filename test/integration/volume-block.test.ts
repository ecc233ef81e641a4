// host/block.ts on real loop devices: signature probing and the refusal to format anything
// that is not blank. Root only.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { makeFilesystem, probeDevice, readMounts, findMount } from "../../agent/host/block.ts";
import { createLoopDevice, isRoot } from "../servers/loop.ts";

const root = isRoot();
if (!root) console.log("block device tests skipped: they need root for loop devices");
const rt = root ? test : test.skip;
let dir: string;
const loops: { detach(): Promise<void> }[] = [];

beforeAll(() => { dir = mkdtempSync(join(tmpdir(), "agent-block-")); });
afterAll(async () => {
  for (const l of loops) await l.detach();
  rmSync(dir, { recursive: true, force: true });
});

async function loop(name: string) {
  const l = await createLoopDevice(join(dir, name), 32);
  loops.push(l);
  return l;
}

/** An MBR with one Linux partition entry and no filesystem anywhere. */
function writeMbr(file: string) {
  const mbr = Buffer.alloc(512);
  mbr[446 + 4] = 0x83;                       // partition type: Linux
  mbr.writeUInt32LE(2048, 446 + 8);          // first LBA
  mbr.writeUInt32LE(4096, 446 + 12);         // sectors
  mbr[510] = 0x55; mbr[511] = 0xaa;
  const fd = openSync(file, "r+");
  try { writeSync(fd, mbr, 0, 512, 0); } finally { closeSync(fd); }
}

describe("block devices", () => {
  rt("a zeroed device is blank; after mkfs it is ext4 and mkfs refuses to run again", async () => {
    const l = await loop("blank.img");
    expect(await probeDevice(l.device)).toEqual({ blank: true, fsType: null, signatures: [] });
    await makeFilesystem(l.device, "ext4");
    const p = await probeDevice(l.device);
    expect(p).toMatchObject({ blank: false, fsType: "ext4" });
    const err = await makeFilesystem(l.device, "ext4").catch((e) => e);
    expect(err.reason).toBe("DeviceNotBlank");
    expect(err.retry.kind).toBe("terminal");
  });

  rt("SAFETY: a partition table without a filesystem is not blank and is never formatted", async () => {
    const l = await loop("mbr.img");
    writeMbr(l.file);
    const p = await probeDevice(l.device);
    expect(p.blank).toBe(false);
    expect(p.signatures.join(" ")).toContain("dos");
    expect((await makeFilesystem(l.device, "ext4").catch((e) => e)).reason).toBe("DeviceNotBlank");
    expect((await probeDevice(l.device)).fsType).toBeNull();
  });

  test("mountinfo is parsed: / is there, with its device number", () => {
    const m = findMount("/", readMounts());
    expect(m).not.toBeNull();
    expect(m!.devNo).toMatch(/^\d+:\d+$/);
  });
});
