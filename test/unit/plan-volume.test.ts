// planVolume as a table: (desired, observed) -> actions and condition.
import { describe, expect, test } from "bun:test";
import { chooseVolume, freeDevice, planVolume, type VolumeDesired, type VolumeObserved } from "../../agent/plan/volume.ts";

const desired = (over: Partial<VolumeDesired["volume"]> = {}): VolumeDesired => ({
  name: "data", binding: { id: "vol-0abc12345" }, owner: "app",
  volume: { mount: "/data", fs: "ext4", format: "if-blank", options: ["defaults", "nofail"], ...over },
});
const me = "i-0me", zone = "us-east-1a";
const vol = (over: Partial<{ zone: string; state: string; attachments: { instanceId: string; device: string | null; state: string }[] }> = {}) =>
  ({ volumeId: "vol-0abc12345", zone, state: "available", attachments: [], ...over });
const obs = (over: Partial<VolumeObserved> = {}): VolumeObserved => ({
  instanceId: me, zone, mount: null, mountPointEmpty: true, cloud: [vol()], devicesInUse: ["/dev/xvda"], device: null, probe: null,
  owner: null, wantOwner: { uid: 1000, gid: 1000 }, ...over,
});
const kinds = (p: { actions: { kind: string }[] }) => p.actions.map((a) => a.kind);

describe("planVolume", () => {
  test("not attached: attach, wait, format if blank, mount, chown", () => {
    const p = planVolume(desired(), obs());
    expect(kinds(p)).toEqual(["volume.attach", "volume.wait", "volume.format", "volume.mount", "volume.chown"]);
    expect(p.condition).toMatchObject({ ref: "volume/data", ready: false, reason: "NotAttached" });
    expect(p.actions[0]).toMatchObject({ volumeId: "vol-0abc12345", device: "/dev/sdf" });
  });
  test("format: never plans no format", () => {
    expect(kinds(planVolume(desired({ format: "never" }), obs()))).toEqual(["volume.attach", "volume.wait", "volume.mount", "volume.chown"]);
  });
  test("mounted from the right device with the right owner: converged, nothing to do", () => {
    const p = planVolume(desired(), obs({ cloud: null, mount: { device: "/dev/loop3", fsType: "ext4", expected: true }, owner: { uid: 1000, gid: 1000 } }));
    expect(p.actions).toEqual([]);
    expect(p.condition).toMatchObject({ ready: true, reason: "Mounted" });
  });
  test("mounted, wrong owner: chown only", () => {
    const p = planVolume(desired(), obs({ cloud: null, mount: { device: "/dev/loop3", fsType: "ext4", expected: true }, owner: { uid: 0, gid: 0 } }));
    expect(kinds(p)).toEqual(["volume.chown"]);
    expect(p.condition.reason).toBe("WrongOwner");
  });
  test("mounted but the owner does not exist: nothing, says so", () => {
    const p = planVolume(desired(), obs({ cloud: null, mount: { device: "/dev/loop3", fsType: "ext4", expected: true }, wantOwner: null }));
    expect(p).toMatchObject({ actions: [], condition: { reason: "OwnerUnknown" } });
  });
  const blocked: [string, Partial<VolumeObserved>, string][] = [
    ["mount point holds another device", { mount: { device: "/dev/sdz", fsType: "ext4", expected: false } }, "MountPointBusy"],
    ["mount point not empty", { mountPointEmpty: false }, "MountPointNotEmpty"],
    ["held by another instance", { cloud: [vol({ state: "in-use", attachments: [{ instanceId: "i-other", device: "/dev/sdf", state: "attached" }] })] }, "HeldByOtherInstance"],
    ["in another zone", { cloud: [vol({ zone: "us-east-1b" })] }, "WrongZone"],
    ["not found", { cloud: [] }, "VolumeNotFound"],
    ["still creating", { cloud: [vol({ state: "creating" })] }, "VolumeNotAvailable"],
    ["detaching", { cloud: [vol({ state: "in-use", attachments: [{ instanceId: me, device: "/dev/sdf", state: "detaching" }] })] }, "Detaching"],
    ["EC2 not asked and not mounted", { cloud: null }, "ObservationIncomplete"],
  ];
  for (const [name, o, reason] of blocked) {
    test(`${name}: no action, ${reason}`, () => {
      const p = planVolume(desired(), obs(o));
      expect(p.actions).toEqual([]);
      expect(p.condition).toMatchObject({ ready: false, reason });
    });
  }
  test("held by another instance: the message names it", () => {
    const p = planVolume(desired(), obs({ cloud: [vol({ state: "in-use", attachments: [{ instanceId: "i-other", device: null, state: "attached" }] })] }));
    expect(p.condition.message).toContain("i-other");
  });
  const attached = { cloud: [vol({ state: "in-use", attachments: [{ instanceId: me, device: "/dev/sdf", state: "attached" }] })], device: "/dev/loop3" };
  test("attaching: wait then the rest", () => {
    const p = planVolume(desired(), obs({ cloud: [vol({ state: "in-use", attachments: [{ instanceId: me, device: "/dev/sdf", state: "attaching" }] })] }));
    expect(kinds(p)).toEqual(["volume.wait", "volume.format", "volume.mount", "volume.chown"]);
    expect(p.condition.reason).toBe("Attaching");
  });
  test("attached, blank device: format, mount, chown", () => {
    expect(kinds(planVolume(desired(), obs({ ...attached, probe: { blank: true, fsType: null, signatures: [] } }))))
      .toEqual(["volume.format", "volume.mount", "volume.chown"]);
  });
  test("attached, blank device, format: never -> Blank, nothing", () => {
    const p = planVolume(desired({ format: "never" }), obs({ ...attached, probe: { blank: true, fsType: null, signatures: [] } }));
    expect(p).toMatchObject({ actions: [], condition: { reason: "Blank" } });
  });
  test("attached, device already has ext4: mount without format", () => {
    expect(kinds(planVolume(desired(), obs({ ...attached, probe: { blank: false, fsType: "ext4", signatures: ["ext4"] } }))))
      .toEqual(["volume.mount", "volume.chown"]);
  });
  test("SAFETY: another filesystem or a partition table is never formatted nor mounted", () => {
    const xfs = planVolume(desired(), obs({ ...attached, probe: { blank: false, fsType: "xfs", signatures: ["xfs"] } }));
    expect(xfs).toMatchObject({ actions: [], condition: { reason: "FilesystemMismatch" } });
    const pt = planVolume(desired(), obs({ ...attached, probe: { blank: false, fsType: null, signatures: ["PTTYPE=gpt"] } }));
    expect(pt).toMatchObject({ actions: [], condition: { reason: "DeviceNotBlank" } });
  });
});

describe("chooseVolume (tag bindings may match several)", () => {
  test("prefers the one attached to us, then a free one in our zone", () => {
    const a = vol({ zone: "us-east-1b" }), b = { ...vol(), volumeId: "vol-0bbb00000" };
    const c = { ...vol({ state: "in-use", attachments: [{ instanceId: me, device: null, state: "attached" }] }), volumeId: "vol-0ccc00000" };
    expect(chooseVolume([a, b, c], me, zone)).toMatchObject({ ok: true, volume: { volumeId: "vol-0ccc00000" } });
    expect(chooseVolume([a, b], me, zone)).toMatchObject({ ok: true, volume: { volumeId: "vol-0bbb00000" } });
  });
});

describe("the device name asked for at attach: the first one no attachment of the instance holds", () => {
  const table: [string, string[], string | null][] = [
    ["nothing attached but the root volume", ["/dev/xvda"], "/dev/sdf"],
    ["/dev/sdf held by a volume attached earlier (a new one sorts before it)", ["/dev/xvda", "/dev/sdf"], "/dev/sdg"],
    ["a gap is reused", ["/dev/sdf", "/dev/sdh"], "/dev/sdg"],
    ["Xen names hold the same letter", ["/dev/xvdf", "xvdg"], "/dev/sdh"],
    ["a partition name holds its disk's letter", ["/dev/sdf1"], "/dev/sdg"],
    ["names outside f-p do not matter", ["/dev/sda1", "/dev/sdz", "/dev/nvme1n1"], "/dev/sdf"],
    ["f to p all taken", [..."fghijklmnop"].map((l) => `/dev/sd${l}`), null],
  ];
  for (const [name, inUse, want] of table) test(`${name}: ${want ?? "none"}`, () => expect(freeDevice(inUse)).toBe(want));

  test("planVolume attaches as the free name, never one in use", () => {
    const p = planVolume(desired(), obs({ devicesInUse: ["/dev/xvda", "/dev/sdf", "/dev/sdg"] }));
    expect(p.actions[0]).toMatchObject({ kind: "volume.attach", device: "/dev/sdh" });
    expect(p.actions[0]!.description).toContain("/dev/sdh");
  });
  test("every name taken: NoFreeDevice, nothing attached", () => {
    const p = planVolume(desired(), obs({ devicesInUse: [..."fghijklmnop"].map((l) => `/dev/sd${l}`) }));
    expect(p).toMatchObject({ actions: [], condition: { ready: false, reason: "NoFreeDevice" } });
  });
  test("an attach is due but the instance's attachments were not listed: blocked, not guessed", () => {
    const p = planVolume(desired(), obs({ devicesInUse: null }));
    expect(p).toMatchObject({ actions: [], condition: { reason: "ObservationIncomplete" } });
  });
});
