#!/usr/bin/env node
import { execute } from '@oclif/core'

// A bug that escapes every catch (an 'error' event nobody listens to, a throw in a callback) still ends as one line
// and a hint through the one renderer (redacted; the stack only with --debug), not as Node's stack trace. A terminal
// in raw mode is restored by the session's own 'exit' handler.
let crashing = false
const crash = (error) => {
  if (crashing) return
  crashing = true
  import('../dist/cli/render-error.js')
    .then(({ renderError }) => {
      const { text } = renderError(error, { debug: process.argv.includes('--debug'), color: false })
      process.stderr.write(text)
    })
    .catch(() => process.stderr.write('Error: akm-access failed unexpectedly (rerun with --debug)\n'))
    .finally(() => process.exit(1))
}
process.on('uncaughtException', crash)
process.on('unhandledRejection', crash)

await execute({ dir: import.meta.url })
