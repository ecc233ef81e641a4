// Where everything lives under stateDir (DESIGN.md "On disk"). The one place that names paths.
import { join } from "node:path";

export interface Layout {
  root: string;
  repo: string;                       // bare git object store
  releases: string;                   // releases/<commit>/
  release(commit: string): string;
  // The agent's own record of each release lives outside the tree (which the repository and the
  // role's user control): meta/ is root's, mode 0700, never chowned.
  meta: string;                       // meta/
  releaseMetaDir(commit: string): string; // meta/<commit>/
  releaseMeta(commit: string): string;  // meta/<commit>/release.json
  releaseLog(commit: string): string;   // meta/<commit>/release.log
  releaseGroup(commit: string): string; // meta/<commit>/running.group: a setup step or hook under way
  history: string;                    // meta/history.jsonl: outlives pruned releases
  current: string;                    // symlink -> releases/<commit>
  shared: string;
  bin: string;                        // the `bun` shim (host/runtime.ts)
  logs: string;
  processLog(name: string): string;
  stateFile: string;
  statusFile: string;
  socket: string;
  lock: string;
}

export function layout(root: string): Layout {
  return {
    root,
    repo: join(root, "repo"),
    releases: join(root, "releases"),
    release: (c) => join(root, "releases", c),
    meta: join(root, "meta"),
    releaseMetaDir: (c) => join(root, "meta", c),
    releaseMeta: (c) => join(root, "meta", c, "release.json"),
    releaseLog: (c) => join(root, "meta", c, "release.log"),
    releaseGroup: (c) => join(root, "meta", c, "running.group"),
    history: join(root, "meta", "history.jsonl"),
    current: join(root, "current"),
    shared: join(root, "shared"),
    bin: join(root, "bin"),
    logs: join(root, "logs"),
    processLog: (n) => join(root, "logs", `${n}.log`),
    stateFile: join(root, "state.json"),
    statusFile: join(root, "status.json"),
    socket: join(root, "agent.sock"),
    lock: join(root, "agent.lock"),
  };
}
