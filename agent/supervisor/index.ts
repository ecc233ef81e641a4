// The supervisor's public surface: what the loop and the commands import.
export { Supervisor, specHash, type SupervisorDeps } from "./supervisor.ts";
export type { ProcessSpec, SupervisorEvent, SupervisorTuning, AdoptResult, ReplaceResult } from "./types.ts";
export { DEFAULT_BACKOFF, type BackoffPolicy, type RestartPolicy } from "./backoff.ts";
export { DEFAULT_ROTATION, type RotationPolicy } from "./rotate.ts";
