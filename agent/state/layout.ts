// Where everything lives under stateDir (DESIGN.md "On disk"). The one place that names paths.
import { join } from "node:path";

export interface Layout {
  root: string;
  repo: string;                       // bare git object store
  releases: string;                   // releases/<commit>/
  release(commit: string): string;
  releaseMeta(commit: string): string;  // releases/<commit>/.agent/release.json
  releaseLog(commit: string): string;   // releases/<commit>/.agent/release.log
  releaseGroup(commit: string): string; // releases/<commit>/.agent/running.group: a setup step or hook under way
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
    releaseMeta: (c) => join(root, "releases", c, ".agent", "release.json"),
    releaseLog: (c) => join(root, "releases", c, ".agent", "release.log"),
    releaseGroup: (c) => join(root, "releases", c, ".agent", "running.group"),
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
