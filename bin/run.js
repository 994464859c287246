#!/usr/bin/env node
// Node >= 22.1 keeps compiled code between runs (a no-op on Node 20); then oclif finds the command in
// oclif.manifest.json and imports only that file.
import module from 'node:module'

module.enableCompileCache?.()
const { execute } = await import('@oclif/core/execute')
await execute({ dir: import.meta.url })
