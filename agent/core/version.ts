// Filled in by scripts/build with --define; "dev" when run from source.
declare const AGENT_VERSION: string | undefined;
declare const AGENT_COMMIT: string | undefined;

export const VERSION: string = typeof AGENT_VERSION === "string" ? AGENT_VERSION : "0.1.0-dev";
export const BUILD_COMMIT: string = typeof AGENT_COMMIT === "string" ? AGENT_COMMIT : "unknown";
