// bin/run.js imports oclif's execute() from here, so that the entry point and every command share one bundled copy
// of @oclif/core (see scripts/build.mjs).
export { execute } from '@oclif/core/execute'
