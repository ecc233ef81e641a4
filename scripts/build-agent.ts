// The compile step of scripts/build: agent/main.ts into dist/agent, one self-contained binary,
// with isomorphic-git patched to inflate natively (scripts/native-inflate.ts).
//   bun scripts/build-agent.ts <version> <commit>
import { nativeInflatePlugin } from "./native-inflate.ts";

const [version, commit] = process.argv.slice(2);
const inflate = nativeInflatePlugin();
const result = await Bun.build({
  entrypoints: ["agent/main.ts"],
  compile: { outfile: "dist/agent", autoloadDotenv: false, autoloadBunfig: false },
  splitting: true,
  minify: true,
  bytecode: true,
  format: "esm",
  define: { AGENT_VERSION: JSON.stringify(version), AGENT_COMMIT: JSON.stringify(commit) },
  plugins: [inflate],
  throw: false,
});
for (const log of result.logs) console.error(log);
if (!result.success) process.exit(1);
if (inflate.patched() !== 1) {
  console.error(`build: isomorphic-git was patched ${inflate.patched()} times, not once (scripts/native-inflate.ts); the bundle no longer loads its index.cjs as the patch expects`);
  process.exit(1);
}
