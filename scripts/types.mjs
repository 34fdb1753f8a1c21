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
