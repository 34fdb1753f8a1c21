// Bundle the CLI and the library with esbuild; the kernels (dist/kernels.wasm) are built by asc beforehand.
import { build } from "esbuild";

const common = { bundle: true, platform: "node", format: "esm", target: "node20", sourcemap: true, logLevel: "warning" };
await build({ ...common, entryPoints: ["cli/main.ts"], outfile: "dist/cli.js", banner: { js: "#!/usr/bin/env node" } });
await build({ ...common, entryPoints: ["index.ts"], outfile: "dist/index.js" });
