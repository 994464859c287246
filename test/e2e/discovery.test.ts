/**
 * Finding the management pod without its name, proven with the built CLI against the sandbox: labels, the
 * Deployment fallback, --selector, --pod, --container, readiness and rollouts, pods that are not ready, none at
 * all, several (a prompt in a terminal, a clear failure without one), RBAC and a missing namespace. `shell --
 * hostname` tells which pod was picked (each sandbox pod has its own UTS namespace, named after the pod).
 */
import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { ExitCode } from '../../src/errors.js'
import { cliEnv, cliPath, runCli, Terminal } from '../helpers/cli.js'
import { expectCliError, expectNoSecrets, sandboxSecrets } from '../helpers/expect-cli.js'
import { type ManagementPodOptions, Sandbox } from '../sandbox/index.js'

let sandbox: Sandbox
let env: NodeJS.ProcessEnv
const terminals: Terminal[] = []

beforeAll(async () => {
  sandbox = await Sandbox.start({ credentials: 'both' })
  env = cliEnv(sandbox.kubeconfigPath, { TERM: 'xterm-256color' })
})
afterEach(() => {
  for (const terminal of terminals.splice(0)) terminal.kill()
  sandbox.clearFaults()
  sandbox.allowAll()
})
afterAll(async () => {
  await sandbox?.stop()
})

/** Replaces the namespace's pods with these, created a second apart in the order given (the last is the newest). */
async function onlyPods(...pods: ManagementPodOptions[]): Promise<string[]> {
  for (const name of sandbox.podNames()) await sandbox.deletePod(name)
  const base = Date.now() - pods.length * 1000
  const names: string[] = []
  for (const [index, pod] of pods.entries()) {
    names.push(await sandbox.addPod({ createdAt: new Date(base + index * 1000), ...pod }))
  }
  return names
}

/** The pod a command lands in: its hostname. */
async function podPicked(args: string[] = []): Promise<string> {
  const result = await runCli(['shell', ...args, '--', 'hostname'], { env })
  expect(result.code, result.stderr).toBe(0)
  return result.stdout.trim()
}

function password(args: string[] = []) {
  return runCli(['password', ...args], { env })
}

/** The CLI in a terminal, its stdout going to a file (as in `akm-access password | pbcopy`). */
function inTerminalWithStdoutToFile(args: string[]): { terminal: Terminal; stdout: () => string } {
  const file = join(mkdtempSync(join(tmpdir(), 'akm-stdout-')), 'stdout')
  const command = `'${process.execPath}' '${cliPath}' ${args.map((arg) => `'${arg}'`).join(' ')} > '${file}'; echo "exit=$?"`
  const terminal = new Terminal(['bash', '--norc', '--noprofile', '-c', command], env)
  terminals.push(terminal)
  return { terminal, stdout: () => readFileSync(file, 'utf8') }
}

const down = '\u001b[B'

describe('which pod is the management pod', () => {
  it("by the Akamas chart's labels, without its name", async () => {
    const [pod] = await onlyPods({})
    expect(await podPicked()).toBe(pod)
  })

  it('by its Deployment when neither labels nor name are the chart’s', async () => {
    const [pod] = await onlyPods({ name: 'akamas-mgmt-7f9c8d-x2x4z', labels: { app: 'akamas-management' } })
    expect(await podPicked()).toBe(pod)
  })

  it('--selector instead of the default matching; a selector that matches nothing or does not parse', async () => {
    const [chart, ops] = await onlyPods({}, { labels: { tier: 'ops' }, deployment: 'ops-toolbox' })
    expect(await podPicked()).toBe(chart)
    expect(await podPicked(['--selector', 'tier=ops'])).toBe(ops)
    expect(await podPicked(['-l', 'app=management-pod'])).toBe(chart)

    expectCliError(await password(['--selector', 'tier=none']), {
      code: ExitCode.podNotFound,
      message: 'no management pod in namespace akamas matches tier=none',
      hint: 'kubectl get pods -n akamas',
    })
    expectCliError(await password(['--selector', 'tier==ops==x']), {
      code: ExitCode.usage,
      message: 'invalid --selector "tier==ops==x"',
      hint: "kubectl's label selector syntax",
    })
  })

  it('--pod pins one, even one the matching would not pick; an unknown one is exit 9', async () => {
    const [, other] = await onlyPods({}, { name: 'debug-toolbox', labels: { app: 'toolbox' }, deployment: 'toolbox' })
    expect(await podPicked(['--pod', other!])).toBe('debug-toolbox')
    expectCliError(await password(['--pod', 'management-pod-gone']), {
      code: ExitCode.podNotFound,
      message: 'pod management-pod-gone not found in namespace akamas',
      hint: 'kubectl get pods -n akamas',
    })
  })

  it('--pod and --selector together are two ways to choose: a usage error, not one silently ignored', async () => {
    const result = await password(['--pod', 'x', '--selector', 'app=management-pod'])
    expect(result.code).toBe(ExitCode.usage)
    expect(result.stderr).toMatch(
      /--selector=app=management-pod cannot also be provided when using --pod|cannot also be provided/,
    )
    expect(result.stdout).toBe('')
  })

  it('--container picks a container; an unknown one lists them (exit 2)', async () => {
    const [pod] = await onlyPods({ containers: ['management-pod', 'log-shipper'] })
    expect(await podPicked(['--container', 'log-shipper'])).toBe(pod)
    const since = Date.now()
    await podPicked(['-c', 'log-shipper'])
    const exec = sandbox.requests.find((request) => request.at >= since && request.path.includes('/exec?'))
    expect(exec?.path).toContain('container=log-shipper')
    expectCliError(await password(['--container', 'sidecar']), {
      code: ExitCode.usage,
      message: `pod ${pod} has no container named sidecar`,
      hint: 'its containers are: management-pod, log-shipper',
    })
  })

  it('prefers a Running pod whose containers are Ready over a newer one that is not', async () => {
    const [ready] = await onlyPods(
      { replicaSetHash: 'aaaaaaaaaa' },
      { replicaSetHash: 'bbbbbbbbbb', phase: 'Pending', waitingReason: 'ContainerCreating' },
      { replicaSetHash: 'cccccccccc', phase: 'Running', ready: false, waitingReason: 'CrashLoopBackOff' },
    )
    expect(await podPicked()).toBe(ready)
  })

  it('during a rollout: the newest ready pod, never one that is terminating', async () => {
    const [old, next] = await onlyPods({ replicaSetHash: 'oldoldoldo' }, { replicaSetHash: 'newnewnewn' })
    expect(await podPicked()).toBe(next)
    // The new pod is on its way out (a rollback): the old one is the one to use.
    sandbox.markTerminating(next!)
    expect(await podPicked()).toBe(old)
    // And the same through the sandbox's own rollout (new ReplicaSet, old pods deleted).
    const { newPod } = await sandbox.rollout()
    expect(await podPicked()).toBe(newPod)
  })
})

describe('a management pod that cannot be used', () => {
  it('still starting: its phase and reason at once (exit 10), not a hang', async () => {
    const [pod] = await onlyPods({ phase: 'Pending', waitingReason: 'ContainerCreating' })
    const started = Date.now()
    const result = await runCli(['shell', '--', 'hostname'], { env })
    expectCliError(result, {
      code: ExitCode.podNotReady,
      message: `management pod ${pod} is not ready: ContainerCreating (phase Pending)`,
      hint: `see why with: kubectl describe pod ${pod} -n akamas`,
    })
    expect(Date.now() - started).toBeLessThan(5000)
  })

  it('crash-looping: the reason, restarts and last exit (exit 10)', async () => {
    const [pod] = await onlyPods({
      phase: 'Running',
      ready: false,
      waitingReason: 'CrashLoopBackOff',
      waitingMessage: 'back-off 5m0s restarting failed container',
      restartCount: 5,
      lastTerminationReason: 'Error',
    })
    expectCliError(await runCli(['shell', '--', 'hostname'], { env }), {
      code: ExitCode.podNotReady,
      message: `management pod ${pod} is not ready: CrashLoopBackOff (phase Running, restarted 5 times, last exit: Error, back-off 5m0s restarting failed container)`,
      hint: `kubectl describe pod ${pod} -n akamas`,
    })
  })

  it('password still answers from the Secret while the pod is not ready, and says so', async () => {
    const [pod] = await onlyPods({ phase: 'Pending', waitingReason: 'ImagePullBackOff' })
    const result = await password()
    expect(result.stdout).toBe(`${sandbox.password}\n`)
    expect(result.code).toBe(0)
    expect(result.stderr).toBe(
      `note: management pod ${pod} is not ready: ImagePullBackOff (phase Pending); the password comes from Secret akamas/management-pod all the same\n`,
    )
    // Without access to the Secret the fallback would exec into the pod, which it cannot: the pod's state is the error.
    sandbox.deny({ verb: 'get', resource: 'secrets' })
    expectCliError(await password(), {
      code: ExitCode.podNotReady,
      message: `management pod ${pod} is not ready: ImagePullBackOff (phase Pending)`,
    })
  })

  it('none at all: exit 9 with the likely cause', async () => {
    await onlyPods()
    const hint = 'is Akamas installed with managementPod.enabled=true in this namespace?'
    expectCliError(await password(), {
      code: ExitCode.podNotFound,
      message: 'no management pod in namespace akamas',
      hint,
    })
    expectCliError(await runCli(['shell', '--', 'true'], { env }), {
      code: ExitCode.podNotFound,
      message: 'no management pod in namespace akamas',
      hint,
    })
  })

  it('pods the user may not list or get: exit 7 naming the verb and resource', async () => {
    const [pod] = await onlyPods({})
    sandbox.deny({ verb: 'list', resource: 'pods' })
    expectCliError(await password(), {
      code: ExitCode.forbidden,
      message: 'you may not list pods in namespace akamas',
      hint: 'kubectl auth can-i list pods -n akamas',
    })
    sandbox.deny({ verb: 'get', resource: 'pods' })
    expectCliError(await password(['--pod', pod!]), {
      code: ExitCode.forbidden,
      message: 'you may not get pods in namespace akamas',
      hint: 'for User "sandbox-admin"',
    })
  })
})

describe('several candidates', () => {
  let candidates: string[]
  beforeAll(async () => {
    candidates = await onlyPods({}, { labels: { app: 'management-pod' }, deployment: 'management-pod-canary' })
  })

  it('without a terminal: fails, lists them and names the flag (exit 2)', async () => {
    const [first, second] = candidates
    const result = await password()
    // Newest first.
    expectCliError(result, {
      code: ExitCode.usage,
      message: `several pods look like the management pod in namespace akamas: ${second} (Deployment/management-pod-canary), ${first} (Deployment/management-pod)`,
      hint: `choose one with --pod ${second}`,
    })
    // The flag answers the question.
    expect(await podPicked(['--pod', first!])).toBe(first)
  })

  it('in a terminal: asks with a list; arrow keys and Enter choose', async () => {
    const [first] = candidates
    const { terminal, stdout } = inTerminalWithStdoutToFile(['shell', '--', 'hostname'])
    await terminal.waitFor('Several pods look like the management pod. Which one?')
    await terminal.waitFor(first!)
    terminal.type(down)
    terminal.type('\r')
    await terminal.waitFor(/exit=\d+/)
    expect(terminal.output).toContain('exit=0')
    expect(stdout()).toBe(`${first}\n`)

    const chosen = inTerminalWithStdoutToFile(['password'])
    await chosen.terminal.waitFor('Which one?')
    chosen.terminal.type('\r')
    await chosen.terminal.waitFor(/exit=\d+/)
    expect(chosen.terminal.output).toContain('exit=0')
    expect(chosen.stdout()).toBe(`${sandbox.password}\n`)
  })

  it('Ctrl-C at the question: exit 130, quietly, nothing on stdout', async () => {
    const { terminal, stdout } = inTerminalWithStdoutToFile(['password'])
    await terminal.waitFor('Which one?')
    const mark = terminal.output.length
    terminal.type('\u0003')
    await terminal.waitFor(/exit=\d+/)
    expect(terminal.output).toContain('exit=130')
    expect(stdout()).toBe('')
    expect(terminal.output.slice(mark)).not.toContain('Error')
    expectNoSecrets(terminal.output, sandboxSecrets(sandbox))
  })
})

describe('the namespace', () => {
  it('deleted under our feet: exit 8, for the pod lookup and for --pod', async () => {
    const [pod] = await onlyPods({})
    await sandbox.deleteNamespace('akamas')
    const hint = 'pass the namespace of the Akamas installation with -n (or set AKM_NAMESPACE)'
    expectCliError(await password(), { code: ExitCode.namespaceNotFound, message: 'namespace akamas not found', hint })
    expectCliError(await password(['--pod', pod!]), {
      code: ExitCode.namespaceNotFound,
      message: 'namespace akamas not found',
      hint,
    })
  })
})
