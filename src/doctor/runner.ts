/**
 * Runs checks as a dependency graph: each starts as soon as the checks it depends on have finished, so independent
 * ones (the local side, the Secret and the pod) run in parallel, and a check whose prerequisite is broken is skipped
 * with the reason rather than failing again with a less useful message.
 */
import { AccessError, ExitCode } from '../errors.js'
import { redact } from '../redact.js'
import type { CheckId, CheckOutcome, CheckResult, DoctorReport } from './types.js'

export interface CheckDefinition<C> {
  id: CheckId
  title: string
  /** Run only when all of these passed (or warned); skipped otherwise. */
  requires?: CheckId[]
  /** Wait for these, whatever their outcome: the check reads what they found from the context. */
  after?: CheckId[]
  run(context: C): Promise<CheckOutcome>
}

/**
 * Runs every check; never throws. `onResult` sees each result as soon as it is known (not in report order). The
 * results come back in the order of `definitions`.
 */
export async function runChecks<C>(
  definitions: readonly CheckDefinition<C>[],
  context: C,
  onResult?: (result: CheckResult) => void,
): Promise<CheckResult[]> {
  const byId = new Map(definitions.map((definition) => [definition.id, definition]))
  const running = new Map<CheckId, Promise<CheckResult>>()

  const start = (definition: CheckDefinition<C>): Promise<CheckResult> => {
    const existing = running.get(definition.id)
    if (existing) return existing
    const waitFor = [...(definition.requires ?? []), ...(definition.after ?? [])]
    for (const id of waitFor) {
      if (!byId.has(id)) throw new Error(`check ${definition.id} depends on unknown check ${id}`)
    }
    const promise = Promise.all(waitFor.map((id) => start(byId.get(id)!))).then(async (finished) => {
      const required = finished.slice(0, definition.requires?.length ?? 0)
      const broken = required.find((result) => result.status === 'fail' || result.status === 'skip')
      const started = performance.now()
      const outcome = broken ? skippedFor(broken) : await runOne(definition, context)
      const result: CheckResult = {
        id: definition.id,
        title: definition.title,
        ...clean(outcome),
        durationMs: Math.round(performance.now() - started),
      }
      onResult?.(result)
      return result
    })
    running.set(definition.id, promise)
    return promise
  }

  return Promise.all(definitions.map(start))
}

/** The report: exit code 0 only when no check failed; otherwise that of the first failure, in report order. */
export function summarize(results: CheckResult[]): DoctorReport {
  const first = results.find((result) => result.status === 'fail')
  return {
    schemaVersion: 1,
    ok: first === undefined,
    exitCode: first ? (first.exitCode ?? ExitCode.internal) : ExitCode.ok,
    firstFailure: first?.id ?? null,
    checks: results,
  }
}

/** A skip names the root cause: the failed check, not an intermediate one that was itself skipped. */
function skippedFor(broken: CheckResult): CheckOutcome {
  const root = broken.status === 'skip' && broken.skippedBecause ? broken.skippedBecause : broken.id
  const reason = broken.status === 'skip' && broken.skippedBecause ? broken.detail : `skipped: ${broken.title} failed`
  return { status: 'skip', detail: reason, skippedBecause: root }
}

async function runOne<C>(definition: CheckDefinition<C>, context: C): Promise<CheckOutcome> {
  try {
    return await definition.run(context)
  } catch (error) {
    return failedWith(error)
  }
}

/** An error as a failed check: an AccessError keeps its message, hint and exit code; anything else is a bug. */
export function failedWith(error: unknown, prefix?: string): CheckOutcome {
  if (error instanceof AccessError) {
    return {
      status: 'fail',
      detail: prefix ? `${prefix}: ${error.message}` : error.message,
      ...(error.hint ? { hint: error.hint } : {}),
      exitCode: error.exitCode,
    }
  }
  const message = error instanceof Error ? error.message : String(error)
  return {
    status: 'fail',
    detail: `unexpected error: ${message}`,
    hint: 'this looks like a bug in akm-access; rerun with --debug and report the output',
    exitCode: ExitCode.internal,
  }
}

/** Every string that leaves a check passes through redact(), and only the fields of its status remain. */
function clean(outcome: CheckOutcome): CheckOutcome {
  return {
    status: outcome.status,
    detail: redact(outcome.detail),
    ...(outcome.hint !== undefined && outcome.status !== 'pass' ? { hint: redact(outcome.hint) } : {}),
    ...(outcome.status === 'fail' ? { exitCode: outcome.exitCode ?? ExitCode.internal } : {}),
    ...(outcome.status === 'skip' && outcome.skippedBecause ? { skippedBecause: outcome.skippedBecause } : {}),
  }
}
