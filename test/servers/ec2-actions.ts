// The EC2 stand-in's actions: each reads form parameters, checks them as EC2 does (NotFound,
// ZoneMismatch, VolumeInUse, Resource.AlreadyAssociated...), changes the state and returns the
// children of the <XResponse> element. Errors are thrown as Ec2Fault.
import { symlinkSync, rmSync } from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import type { Ec2Address, Ec2Context, Ec2Instance, Ec2Volume } from "./ec2.ts";
import { attachLoop, byIdLinkName, detachLoop } from "./loop.ts";
import { Ec2Fault, filters, list, matches, missing, required, tagParams, tagSet, type Params, type XmlValue } from "./ec2-wire.ts";

/** `caller`: the access key id that signed the request (whose own tag writes it sees at once). */
type Handler = (ctx: Ec2Context, p: Params, caller: string) => { [k: string]: XmlValue } | Promise<{ [k: string]: XmlValue }>;

const notFound = (code: string, what: string, id: string) => new Ec2Fault(400, code, `The ${what} '${id}' does not exist`);
const hex = (n: number) => randomBytes(Math.ceil(n / 2)).toString("hex").slice(0, n);

function instance(ctx: Ec2Context, id: string): Ec2Instance {
  const i = ctx.server.instances.get(id);
  if (!i) throw notFound("InvalidInstanceID.NotFound", "instance ID", id);
  return i;
}
function volume(ctx: Ec2Context, id: string): Ec2Volume {
  const v = ctx.server.volumes.get(id);
  if (!v) throw notFound("InvalidVolume.NotFound", "volume", id);
  return v;
}
function address(ctx: Ec2Context, allocationId: string): Ec2Address {
  const a = ctx.server.addresses.get(allocationId);
  if (!a) throw notFound("InvalidAllocationID.NotFound", "allocation ID", allocationId);
  return a;
}

/** A resource of any kind CreateTags accepts, by id; its tags object is changed in place. */
function taggable(ctx: Ec2Context, id: string): { tags: Record<string, string> } {
  if (id.startsWith("i-")) return instance(ctx, id);
  if (id.startsWith("vol-")) return volume(ctx, id);
  if (id.startsWith("eipalloc-")) {
    const a = address(ctx, id);
    a.tags ??= {};
    return a as { tags: Record<string, string> };
  }
  throw new Ec2Fault(400, "InvalidID", `The ID '${id}' is not valid`);
}

const sizeGiB = (v: Ec2Volume) => Math.max(1, Math.ceil(v.sizeMiB / 1024));

const STATE_CODES: Record<string, number> = { pending: 0, running: 16, "shutting-down": 32, terminated: 48, stopping: 64, stopped: 80 };

function instanceXml(ctx: Ec2Context, i: Ec2Instance, tags: Record<string, string>): XmlValue {
  const state = i.state ?? "running";
  return {
    instanceId: i.id,
    imageId: "ami-0standin0000000",
    instanceState: { code: STATE_CODES[state] ?? 16, name: state },
    launchTime: i.launchTime ?? ctx.startedAt,
    privateIpAddress: i.privateIp,
    instanceType: "t3.micro",
    placement: { availabilityZone: i.zone, tenancy: "default" },
    tagSet: tagSet(tags),
  };
}

function volumeXml(ctx: Ec2Context, v: Ec2Volume): XmlValue {
  const a = v.attachment;
  return {
    volumeId: v.id,
    size: sizeGiB(v),
    snapshotId: "",
    availabilityZone: v.zone,
    status: v.state,
    createTime: ctx.startedAt,
    attachmentSet: a
      ? [{ volumeId: v.id, instanceId: a.instanceId, device: a.device, status: a.state, attachTime: ctx.startedAt, deleteOnTermination: false }]
      : [],
    tagSet: tagSet(v.tags),
    volumeType: "gp3",
    encrypted: false,
    multiAttachEnabled: false,
  };
}

function addressXml(a: Ec2Address): XmlValue {
  return {
    publicIp: a.publicIp,
    allocationId: a.allocationId,
    domain: "vpc",
    instanceId: a.instanceId,
    associationId: a.associationId,
    tagSet: tagSet(a.tags),
  };
}

const describeInstances: Handler = (ctx, p, caller) => {
  const ids = list(p, "InstanceId");
  const fs = filters(p);
  const max = p.MaxResults === undefined ? undefined : Number(p.MaxResults);
  if (max !== undefined) {
    if (ids.length) throw new Ec2Fault(400, "InvalidParameterCombination", "The parameter instancesSet cannot be used with the parameter maxResults");
    if (!Number.isInteger(max) || max < 5 || max > 1000) throw new Ec2Fault(400, "InvalidParameterValue", `Value ( ${p.MaxResults} ) for parameter maxResults is invalid. Expecting a value between 5 and 1000.`);
  }
  const chosen = ids.length ? ids.map((id) => instance(ctx, id)) : [...ctx.server.instances.values()];
  const seen = new Map(chosen.map((i) => [i.id, ctx.tagViews.seen(i.id, i.tags, caller)]));
  const found = chosen.filter((i) => matches(fs, seen.get(i.id)!, (name) => ({
    "instance-id": [i.id],
    "availability-zone": [i.zone],
    "instance-state-name": [i.state ?? "running"],
    "private-ip-address": i.privateIp ? [i.privateIp] : [],
  })[name]));
  const start = p.NextToken ? pageStart(p.NextToken, found.length) : 0;
  const page = max === undefined ? found.slice(start) : found.slice(start, start + max);
  const next = max !== undefined && start + max < found.length ? pageToken(start + max) : undefined;
  return {
    reservationSet: page.map((i) => ({
      reservationId: `r-${i.id.replace(/^i-/, "")}`,
      ownerId: "123456789012",
      groupSet: [],
      instancesSet: [instanceXml(ctx, i, seen.get(i.id)!)],
    })),
    nextToken: next,
  };
};

/** NextToken: an opaque string to the client; here the offset of the next page, which EC2 checks. */
const pageToken = (offset: number) => Buffer.from(`page:${offset}`).toString("base64url");
function pageStart(token: string, total: number): number {
  const m = /^page:(\d+)$/.exec(Buffer.from(token, "base64url").toString());
  const n = m ? Number(m[1]) : NaN;
  if (!(n >= 0 && n <= total)) throw new Ec2Fault(400, "InvalidParameterValue", `The NextToken '${token}' is not valid`);
  return n;
}

const describeTags: Handler = (ctx, p, caller) => {
  const fs = filters(p);
  const s = ctx.server;
  const all: { resourceId: string; resourceType: string; tags: Record<string, string> }[] = [
    ...[...s.instances.values()].map((i) => ({ resourceId: i.id, resourceType: "instance", tags: ctx.tagViews.seen(i.id, i.tags, caller) })),
    ...[...s.volumes.values()].map((v) => ({ resourceId: v.id, resourceType: "volume", tags: v.tags })),
    ...[...s.addresses.values()].map((a) => ({ resourceId: a.allocationId, resourceType: "elastic-ip", tags: a.tags ?? {} })),
  ];
  const rows = all.flatMap((r) => Object.entries(r.tags).map(([key, value]) => ({ ...r, key, value })));
  const found = rows.filter((t) => matches(fs, {}, (name) => ({
    "resource-id": [t.resourceId],
    "resource-type": [t.resourceType],
    key: [t.key],
    value: [t.value],
  })[name]));
  return { tagSet: found.map((t) => ({ resourceId: t.resourceId, resourceType: t.resourceType, key: t.key, value: t.value })) };
};

const createTags: Handler = (ctx, p, caller) => {
  const ids = list(p, "ResourceId");
  if (ids.length === 0) throw missing("ResourceId.1");
  const tags = tagParams(p);
  if (Object.keys(tags).length === 0) throw missing("Tag.1.Key");
  const resources = ids.map((id) => taggable(ctx, id)); // all exist, or nothing changes
  for (const [n, r] of resources.entries()) {
    const before = { ...r.tags };
    Object.assign(r.tags, tags);
    ctx.tagViews.wrote(ids[n]!, before, r.tags, caller, ctx.server.staleTagsMs);
  }
  return { return: true };
};

const deleteTags: Handler = (ctx, p) => {
  const ids = list(p, "ResourceId");
  if (ids.length === 0) throw missing("ResourceId.1");
  const keys = Object.keys(tagParams(p));
  for (const r of ids.map((id) => taggable(ctx, id))) for (const k of keys) delete r.tags[k];
  return { return: true };
};

const describeAddresses: Handler = (ctx, p) => {
  const s = ctx.server;
  const byAlloc = list(p, "AllocationId").map((id) => address(ctx, id));
  const byIp = list(p, "PublicIp").map((ip) => {
    const a = [...s.addresses.values()].find((x) => x.publicIp === ip);
    if (!a) throw new Ec2Fault(400, "InvalidAddress.NotFound", `Address '${ip}' not found.`);
    return a;
  });
  const chosen = byAlloc.length || byIp.length ? [...new Set([...byAlloc, ...byIp])] : [...s.addresses.values()];
  const fs = filters(p);
  const found = chosen.filter((a) => matches(fs, a.tags ?? {}, (name) => ({
    "allocation-id": [a.allocationId],
    "public-ip": [a.publicIp],
    "instance-id": a.instanceId ? [a.instanceId] : [],
    "association-id": a.associationId ? [a.associationId] : [],
    domain: ["vpc"],
  })[name]));
  return { addressesSet: found.map(addressXml) };
};

const associateAddress: Handler = (ctx, p) => {
  const s = ctx.server;
  let a: Ec2Address;
  if (p.AllocationId) a = address(ctx, p.AllocationId);
  else if (p.PublicIp) {
    const found = [...s.addresses.values()].find((x) => x.publicIp === p.PublicIp);
    if (!found) throw new Ec2Fault(400, "InvalidAddress.NotFound", `Address '${p.PublicIp}' not found.`);
    a = found;
  } else throw missing("AllocationId");
  const i = instance(ctx, required(p, "InstanceId"));
  if (a.instanceId === i.id && a.associationId) return { return: true, associationId: a.associationId };
  // As in a VPC: reassociation is automatic unless the caller says AllowReassociation=false.
  if (a.instanceId && p.AllowReassociation === "false") {
    throw new Ec2Fault(400, "Resource.AlreadyAssociated", `resource ${a.allocationId} is already associated with associate-id ${a.associationId}`);
  }
  // An instance's primary private address holds one Elastic IP: the previous one is let go.
  for (const other of s.addresses.values()) {
    if (other !== a && other.instanceId === i.id) { delete other.instanceId; delete other.associationId; }
  }
  a.instanceId = i.id;
  a.associationId = `eipassoc-${hex(17)}`;
  return { return: true, associationId: a.associationId };
};

const disassociateAddress: Handler = (ctx, p) => {
  const s = ctx.server;
  const id = p.AssociationId ?? p.PublicIp;
  if (!id) throw missing("AssociationId");
  const a = [...s.addresses.values()].find((x) => x.associationId === id || x.publicIp === id);
  if (!a || !a.associationId) throw new Ec2Fault(400, "InvalidAssociationID.NotFound", `The association ID '${id}' does not exist`);
  delete a.instanceId;
  delete a.associationId;
  return { return: true };
};

const describeVolumes: Handler = (ctx, p) => {
  const ids = list(p, "VolumeId");
  const chosen = ids.length ? ids.map((id) => volume(ctx, id)) : [...ctx.server.volumes.values()];
  const fs = filters(p);
  const found = chosen.filter((v) => matches(fs, v.tags, (name) => ({
    "volume-id": [v.id],
    "availability-zone": [v.zone],
    status: [v.state],
    size: [String(sizeGiB(v))],
    "volume-type": ["gp3"],
    "attachment.instance-id": v.attachment ? [v.attachment.instanceId] : [],
    "attachment.device": v.attachment ? [v.attachment.device] : [],
    "attachment.status": v.attachment ? [v.attachment.state] : [],
  })[name]));
  return { volumeSet: found.map((v) => volumeXml(ctx, v)) };
};

const attachVolume: Handler = (ctx, p) => {
  const v = volume(ctx, required(p, "VolumeId"));
  const i = instance(ctx, required(p, "InstanceId"));
  const device = required(p, "Device");
  if (v.zone !== i.zone) {
    throw new Ec2Fault(400, "InvalidVolume.ZoneMismatch", `The volume '${v.id}' is not in the same availability zone as instance '${i.id}'`);
  }
  if (v.state === "in-use" || v.attachment) throw new Ec2Fault(400, "VolumeInUse", `${v.id} is already attached to an instance`);
  if (v.state !== "available") throw new Ec2Fault(400, "IncorrectState", `The volume '${v.id}' is '${v.state}'; it must be 'available' to attach`);
  for (const other of ctx.server.volumes.values()) {
    if (other.attachment?.instanceId === i.id && other.attachment.device === device) {
      throw new Ec2Fault(400, "InvalidParameterValue", `Attachment point ${device} is already in use`);
    }
  }
  const attachment: NonNullable<Ec2Volume["attachment"]> = { instanceId: i.id, device, state: "attaching" };
  v.state = "in-use";
  v.attachment = attachment;
  ctx.later(ctx.server.faults.attachDelayMs, async () => {
    if (v.attachment !== attachment) return; // detached meanwhile
    if (ctx.server.loopDevices) {
      const loop = await attachLoop(ctx.server.backingFile(v.id));
      if (v.attachment !== attachment) return void (await detachLoop(loop)); // detached while we worked
      attachment.loop = loop;
      const link = join(ctx.byIdDir, byIdLinkName(v.id));
      rmSync(link, { force: true });
      symlinkSync(loop, link);
    }
    attachment.state = "attached"; // attached => the by-id link is there (as root)
  });
  return { volumeId: v.id, instanceId: i.id, device, status: "attaching", attachTime: ctx.startedAt };
};

const detachVolume: Handler = async (ctx, p) => {
  const v = volume(ctx, required(p, "VolumeId"));
  const a = v.attachment;
  if (!a) throw new Ec2Fault(400, "IncorrectState", `Volume '${v.id}' is in the 'available' state.`);
  if (p.InstanceId && p.InstanceId !== a.instanceId) {
    throw new Ec2Fault(400, "InvalidAttachment.NotFound", `The volume '${v.id}' is not attached to instance '${p.InstanceId}'`);
  }
  await ctx.release(v);
  delete v.attachment;
  v.state = "available";
  return { volumeId: v.id, instanceId: a.instanceId, device: a.device, status: "detaching", attachTime: ctx.startedAt };
};

/** Every action the stand-in answers; anything else is InvalidAction. */
export const ACTIONS: Record<string, Handler> = {
  DescribeInstances: describeInstances,
  DescribeTags: describeTags,
  CreateTags: createTags,
  DeleteTags: deleteTags,
  DescribeAddresses: describeAddresses,
  AssociateAddress: associateAddress,
  DisassociateAddress: disassociateAddress,
  DescribeVolumes: describeVolumes,
  AttachVolume: attachVolume,
  DetachVolume: detachVolume,
};
