// Type declarations of the library (dist/types), emitted by tsc from index.ts. The sources import without file
// extensions (bundler resolution); consumers on Node16/NodeNext resolution need them, so relative specifiers in the
// emitted .d.ts files get the ".js" of the module they name.
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const out = path.join(root, "dist/types");
rmSync(out, { recursive: true, force: true });
execFileSync(process.execPath, [path.join(root, "node_modules/typescript/bin/tsc"), "-p", path.join(root, "tsconfig.types.json")], { stdio: "inherit" });

for (const entry of readdirSync(out, { recursive: true })) {
  if (!entry.endsWith(".d.ts")) continue;
  const file = path.join(out, entry);
  const dir = path.dirname(file);
  const text = readFileSync(file, "utf8").replace(/(from |import\()"(\.\.?\/[^"]*)"/g, (m, head, spec) => {
    if (existsSync(path.join(dir, `${spec}.d.ts`))) return `${head}"${spec}.js"`;
    if (existsSync(path.join(dir, spec, "index.d.ts"))) return `${head}"${spec}/index.js"`;
    return m;
  });
  writeFileSync(file, text);
}

// WebAssembly's types are in TypeScript's DOM lib only (@types/node has none), and the engine's memory and module
// appear in these declarations: a Node program compiled without "DOM" in its lib (and without skipLibCheck) failed
// on them ("Cannot find namespace 'WebAssembly'"). Declared here as opaque interfaces, which merge with the DOM
// lib's where a program has it; index.d.ts references them, so every program that imports dynact sees them.
writeFileSync(path.join(out, "wasm.d.ts"), `// For programs compiled without TypeScript's DOM lib: the WebAssembly types dynact's declarations name.
declare namespace WebAssembly {
  interface Memory {}
  interface Module {}
}
`);
const index = path.join(out, "index.d.ts");
writeFileSync(index, `/// <reference path="./wasm.d.ts" />\n${readFileSync(index, "utf8")}`);
