// Type-checks every dashboard in ../json against types.ts: each JSON file becomes a
// TypeScript module `export const dashboard = <json> satisfies SeismoDashboard`, so tsc
// reports missing fields, misspelt keys (excess property checks) and wrong values with the
// JSON path. Run: `npm ci && node check.mjs` (exits non-zero on any error).
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const source = join(here, '..', 'json');
const generated = join(here, 'generated');
rmSync(generated, { recursive: true, force: true });
mkdirSync(generated);
const files = readdirSync(source).filter((f) => f.endsWith('.json')).sort();
if (files.length === 0) {
  console.error(`no dashboards in ${source}`);
  process.exit(1);
}
for (const file of files) {
  const json = JSON.parse(readFileSync(join(source, file), 'utf8'));
  const module =
    `import type { SeismoDashboard } from '../types.js';\n` +
    `export const dashboard = ${JSON.stringify(json, null, 2)} satisfies SeismoDashboard;\n`;
  writeFileSync(join(generated, file.replace(/\.json$/, '.ts')), module);
}
const tsc = join(here, 'node_modules', 'typescript', 'bin', 'tsc');
try {
  execFileSync(process.execPath, [tsc, '-p', here], { stdio: 'inherit' });
} catch {
  console.error(`dashboards do not type-check against @grafana/schema (see above)`);
  process.exit(1);
}
console.log(`${files.length} dashboards type-check against @grafana/schema: ${files.join(', ')}`);
