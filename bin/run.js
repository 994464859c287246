#!/usr/bin/env node
// Node >= 22.1 keeps compiled code between runs (a no-op on Node 20); then oclif finds the command in
// oclif.manifest.json and imports only that file (dist/ is a bundle: see scripts/build.mjs).
import module from 'node:module'

// A bug that escapes every catch (an 'error' event nobody listens to, a throw in a callback) still ends as one line
// and a hint through the one renderer (redacted; the stack only with --debug), not as Node's stack trace. A terminal
// in raw mode is restored by the session's own 'exit' handler. (Loaded only then: nothing at start-up.)
let crashing = false
const crash = (error) => {
  if (crashing) return
  crashing = true
  import('../dist/cli/render-error.js')
    .then(({ renderError }) => {
      process.stderr.write(renderError(error, { debug: process.argv.includes('--debug'), color: false }).text)
    })
    .catch(() => process.stderr.write('Error: akm-access failed unexpectedly (rerun with --debug)\n'))
    .finally(() => process.exit(1))
}
process.on('uncaughtException', crash)
process.on('unhandledRejection', crash)

// A command that talks to the API server gets its connections opened now, while oclif loads (best effort, silent).
import('../dist/cli/warm-up.js').then(({ warmUp }) => warmUp(process.argv.slice(2))).catch(() => {})

module.enableCompileCache?.()
// Stack traces (shown only with --debug) name the TypeScript sources, not the bundle.
if (process.argv.includes('--debug')) process.setSourceMapsEnabled(true)
const { execute } = await import('../dist/cli/oclif.js')
await execute({ dir: import.meta.url })
