/**
 * What `akm-access doctor` reports: one result per link of the chain between the user and the management pod. These
 * shapes are the `--json` output, so they are a contract: fields may be added, never renamed or removed without a new
 * `schemaVersion` (README.md, "akm-access doctor").
 */

/** The checks, in the order they are reported (the order of the chain, then the local side). */
export const checkIds = [
  'kubeconfig',
  'api-server',
  'namespace',
  'permissions',
  'pod',
  'credentials',
  'sshd',
  'host-key',
  'ssh-login',
  'service',
  'terminal',
  'known-hosts',
  'local-port',
  'node',
] as const

/** With --docker (the docker-compose management container): the engine and the container replace the cluster's. */
export const dockerCheckIds = [
  'docker-engine',
  'container',
  'credentials',
  'sshd',
  'host-key',
  'ssh-login',
  'terminal',
  'known-hosts',
  'local-port',
  'node',
] as const

export type CheckId = (typeof checkIds)[number] | (typeof dockerCheckIds)[number]

/**
 * pass: this link works. warn: it works, with something worth knowing (an unknown host key, a busy port). fail: this
 * link is broken; `hint` says what to do. skip: not checked, because a link it depends on is broken.
 */
export type CheckStatus = 'pass' | 'warn' | 'fail' | 'skip'

/** What a check function returns. */
export interface CheckOutcome {
  status: CheckStatus
  /** What was found. The first line is the summary; further lines add facts. Never holds a secret. */
  detail: string
  /** What to do about it: on fail, and on warn when there is something to do. */
  hint?: string
  /** On fail: the exit code of this failure's category (README.md's table). */
  exitCode?: number
  /** On skip: the check whose failure made this one impossible. */
  skippedBecause?: CheckId
}

export interface CheckResult extends CheckOutcome {
  id: CheckId
  title: string
  durationMs: number
}

export interface DoctorReport {
  schemaVersion: 1
  /** True when no check failed (warnings do not count). */
  ok: boolean
  /** 0 when ok; otherwise the exit code of the first failed check, in report order. */
  exitCode: number
  /** The id of the first failed check, in report order: the broken link closest to the user. */
  firstFailure: CheckId | null
  checks: CheckResult[]
}
