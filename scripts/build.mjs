#!/usr/bin/env node
/**
 * Builds dist/ as an ES module bundle: one file per command (what oclif.manifest.json points at), the oclif entry
 * bin/run.js imports, and shared chunks. Node's module loader costs ~0.3 ms per file, and oclif alone is ~150 files,
 * so bundling it with our code takes 30–40 ms off every run. The third-party libraries our adapters import lazily
 * (ssh2, ws, inquirer, …) stay outside: bundling them would only move their cost to start-up. Type checking is
 * `npm run lint` (tsc --noEmit over src and test); this only transpiles.
 */
import { readdirSync, readFileSync, rmSync } from 'node:fs'
import { build } from 'esbuild'

const root = new URL('..', import.meta.url)
const pkg = JSON.parse(readFileSync(new URL('package.json', root), 'utf8'))
const commands = readdirSync(new URL('src/commands', root)).filter((name) => name.endsWith('.ts'))

rmSync(new URL('dist', root), { recursive: true, force: true })
await build({
  absWorkingDir: new URL('.', root).pathname,
  entryPoints: [
    ...commands.map((name) => `src/commands/${name}`),
    'src/cli/oclif.ts', // what bin/run.js imports: oclif's execute(), from the same copy of oclif the commands use
    'src/cli/render-error.ts', // bin/run.js's last-resort error handler
    'src/cli/warm-up.ts', // bin/run.js: the API server connections opened while oclif loads
  ],
  outbase: 'src',
  outdir: 'dist',
  chunkNames: 'chunks/[name]-[hash]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: `node${pkg.engines.node.replace(/^>=\s*/, '')}`,
  sourcemap: true,
  // Everything the adapters import lazily, and what oclif only requires to run TypeScript sources in development.
  external: [...Object.keys(pkg.dependencies).filter((name) => name !== '@oclif/core'), 'typescript', 'ts-node'],
  // oclif and its helpers are CommonJS and call require(): give them one in every chunk.
  banner: {
    js: "import { createRequire as __akmCreateRequire } from 'node:module'; const require = __akmCreateRequire(import.meta.url);",
  },
  logLevel: 'warning',
})
