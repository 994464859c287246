/**
 * `akm-access doctor` against a sandbox broken one link at a time: each test asserts which check fails, its hint and
 * the exit code, and that the checks behind it are skipped for that reason. One sandbox serves the whole file; every
 * test restores it (afterEach), so the tests stay independent while costing one start.
 */
import { generateKeyPairSync } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:net'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { cliEnv, cliInTerminal, runCli } from '../helpers/cli.js'
import { Sandbox } from '../sandbox/index.js'

interface CheckJson {
  id: string
  title: string
  status: 'pass' | 'warn' | 'fail' | 'skip'
  detail: string
  hint?: string
  exitCode?: number
  skippedBecause?: string
  durationMs: number
}

interface ReportJson {
  schemaVersion: number
  ok: boolean
  exitCode: number
  firstFailure: string | null
  checks: CheckJson[]
}

const checkOrder = [
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
]

let sandbox: Sandbox

beforeAll(async () => {
  sandbox = await Sandbox.start({ credentials: 'both' })
})
afterEach(async () => {
  sandbox.allowAll()
  sandbox.clearFaults()
  sandbox.setCredentials('both')
  sandbox.setService()
  // Exactly one management pod, ready, with sshd running.
  const ready = sandbox.managementPods().filter((entry) => {
    const status = entry.object.status as { conditions: { type: string; status: string }[] }
    return status.conditions.some((condition) => condition.type === 'Ready' && condition.status === 'True')
  })
  if (ready.length === 0) {
    for (const name of sandbox.podNames()) await sandbox.deletePod(name)
    await sandbox.addPod()
  } else {
    await sandbox.startSshd()
  }
})
afterAll(async () => {
  await sandbox?.stop()
})

function secrets(): string[] {
  const keyLines = sandbox.userKey.privateKey
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.length >= 16 && !line.startsWith('-----'))
  return [sandbox.password, sandbox.token, ...keyLines]
}

/** Runs doctor --json and checks what every run must satisfy: the schema, the exit code rule, no secret. */
async function doctor(
  args: string[] = [],
  env: NodeJS.ProcessEnv = cliEnv(sandbox.kubeconfigPath),
): Promise<{ code: number | null; report: ReportJson; check: (id: string) => CheckJson; stderr: string }> {
  // Port 0 (any) unless the test names one: the preferred 2222 may be held by another test file's tunnel.
  const port = args.includes('--port') ? [] : ['--port', '0']
  const result = await runCli(['doctor', '--json', ...port, ...args], { env })
  for (const secret of secrets()) {
    expect(result.stdout.includes(secret), 'a secret was printed').toBe(false)
    expect(result.stderr.includes(secret), 'a secret was printed').toBe(false)
  }
  const report = JSON.parse(result.stdout) as ReportJson
  expect(report.checks.map((check) => check.id)).toEqual(checkOrder)
  const firstFailed = report.checks.find((check) => check.status === 'fail')
  expect(report.firstFailure).toBe(firstFailed?.id ?? null)
  expect(report.ok).toBe(firstFailed === undefined)
  expect(result.code).toBe(report.exitCode)
  expect(report.exitCode).toBe(firstFailed ? firstFailed.exitCode : 0)
  const check = (id: string) => report.checks.find((entry) => entry.id === id)!
  return { code: result.code, report, check, stderr: result.stderr }
}

/** Stores the pod's host key in this HOME's known_hosts, as a first `akm-access ssh` does. */
async function trustHostKey(env: NodeJS.ProcessEnv): Promise<void> {
  const trusted = await runCli(['ssh', '--no-tunnel', '--accept-new-host-key', '--', 'true'], { env })
  expect(trusted.code, trusted.stderr).toBe(0)
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
}

function expectSkipped(check: CheckJson, because: string): void {
  expect(check.status).toBe('skip')
  expect(check.skippedBecause).toBe(because)
  expect(check.detail).toMatch(/^skipped: /)
}

describe('akm-access doctor on a healthy installation', () => {
  it('passes every check, exits 0, and prints a ✓ report on stdout', async () => {
    const env = cliEnv(sandbox.kubeconfigPath)
    await trustHostKey(env)
    const port = String(await freePort())
    const { code, report } = await doctor(['--port', port], env)
    expect(code).toBe(0)
    expect(report).toMatchObject({ schemaVersion: 1, ok: true, exitCode: 0, firstFailure: null })
    expect(report.checks.filter((check) => check.status !== 'pass')).toEqual([])
    for (const check of report.checks) {
      expect(Object.keys(check).sort()).toEqual(['detail', 'durationMs', 'id', 'status', 'title'])
    }
    const byId = Object.fromEntries(report.checks.map((check) => [check.id, check.detail]))
    expect(byId.kubeconfig).toContain('context sandbox (current-context in ')
    expect(byId.kubeconfig).toContain('namespace akamas (context "sandbox" in ')
    expect(byId['api-server']).toMatch(/^Kubernetes v1\.32\.4 at https:\/\/127\.0\.0\.1:\d+/)
    expect(byId['api-server']).toContain('no proxy')
    expect(byId['api-server']).toContain('request timeout 30s')
    expect(byId.pod).toContain(`${sandbox.currentPodName} is Running and Ready`)
    expect(byId.sshd).toMatch(/^SSH-2\.0-OpenSSH_/)
    expect(byId['host-key']).toMatch(/^ED25519 key SHA256:[A-Za-z0-9+/]{43}\nmatches /)
    expect(byId['ssh-login']).toContain('sshd accepted akamas with the private key or the password')
    expect(byId.service).toContain('exposes sshd as management-pod:22')
    expect(byId['local-port']).toBe(`127.0.0.1:${port} is free for akm-access ssh's tunnel`)

    const text = await runCli(['doctor', '--port', port], { env })
    expect(text.code).toBe(0)
    const marks = text.stdout
      .split('\n')
      .filter((line) => /^\S/.test(line))
      .slice(0, -1)
    expect(marks).toHaveLength(checkOrder.length)
    for (const line of marks) expect(line).toMatch(/^✓ /)
    expect(text.stdout).toMatch(/\nAll 14 checks passed\.\n$/)
    expect(text.stderr).toBe('')
  })

  it('only warns about a new host key (exit 0), with the fingerprint and what to do', async () => {
    const { code, check } = await doctor()
    expect(code).toBe(0)
    expect(check('host-key')).toMatchObject({ status: 'warn' })
    expect(check('host-key').detail).toMatch(/^ED25519 key SHA256:\S+\nnot in ~\/\.config\/akm-access\/known_hosts yet/)
    expect(check('host-key').hint).toContain('--accept-new-host-key')
    // A key signature reveals nothing, so the login is still tried with the key.
    expect(check('ssh-login').status).toBe('pass')
  })
})

describe('akm-access doctor names the broken link', () => {
  it('the API server is down: exit 4, everything after it skipped', async () => {
    const down = sandbox.writeKubeconfig({ server: `https://127.0.0.1:${await freePort()}` })
    const { code, check, report } = await doctor([], cliEnv(down))
    expect(code).toBe(4)
    expect(report.firstFailure).toBe('api-server')
    expect(check('api-server').detail).toMatch(
      /cannot connect to the API server at 127\.0\.0\.1:\d+ \(no proxy\): connection refused/,
    )
    expect(check('api-server').hint).toContain('check that the cluster is running')
    for (const id of ['namespace', 'permissions', 'pod', 'credentials', 'sshd', 'host-key', 'ssh-login', 'service']) {
      expectSkipped(check(id), 'api-server')
    }
    // The local side does not depend on the cluster.
    expect(check('node').status).toBe('pass')
  })

  it('no kubeconfig: exit 3', async () => {
    const { code, check, report } = await doctor([], cliEnv(join(sandbox.dir, 'no-such-kubeconfig')))
    expect(code).toBe(3)
    expect(report.firstFailure).toBe('kubeconfig')
    expect(check('kubeconfig').detail).toContain('no kubeconfig found')
    expect(check('kubeconfig').hint).toContain('fix KUBECONFIG')
    expectSkipped(check('api-server'), 'kubeconfig')
  })

  it('rejected credentials: exit 6; an untrusted certificate: exit 5', async () => {
    const badToken = await doctor([], cliEnv(sandbox.writeKubeconfig({ token: 'not-a-valid-token' })))
    expect(badToken.code).toBe(6)
    expect(badToken.report.firstFailure).toBe('api-server')
    expect(badToken.check('api-server').detail).toContain('401 Unauthorized')
    expect(badToken.check('api-server').hint).toContain('may have expired or been revoked')

    const noCa = await doctor([], cliEnv(sandbox.writeKubeconfig({ withoutCa: true })))
    expect(noCa.code).toBe(5)
    expect(noCa.report.firstFailure).toBe('api-server')
    expect(noCa.check('api-server').detail).toContain('presented a certificate that is not trusted')
    expect(noCa.check('api-server').hint).toContain('certificate-authority-data')
  })

  it('the namespace does not exist: exit 8, and says where it came from', async () => {
    const { code, check, report } = await doctor(['-n', 'no-such-namespace'])
    expect(code).toBe(8)
    expect(report.firstFailure).toBe('namespace')
    expect(check('namespace').detail).toBe('namespace no-such-namespace (--namespace) does not exist')
    expect(check('namespace').hint).toContain('kubectl get namespaces')
    expectSkipped(check('pod'), 'namespace')
  })

  const denials = [
    { verb: 'list', resource: 'pods', canI: 'kubectl auth can-i list pods -n akamas', skipped: ['pod', 'sshd'] },
    { verb: 'get', resource: 'pods', canI: 'kubectl auth can-i get pods -n akamas', skipped: [] },
    {
      verb: 'get',
      resource: 'secrets',
      canI: 'kubectl auth can-i get secrets -n akamas',
      skipped: ['credentials', 'ssh-login'],
    },
    {
      verb: 'create',
      resource: 'pods/exec',
      canI: 'kubectl auth can-i create pods --subresource=exec -n akamas',
      skipped: [],
    },
    {
      verb: 'get',
      resource: 'pods/exec',
      canI: 'kubectl auth can-i get pods --subresource=exec -n akamas',
      skipped: [],
    },
    {
      verb: 'create',
      resource: 'pods/portforward',
      canI: 'kubectl auth can-i create pods --subresource=portforward -n akamas',
      skipped: [],
    },
    {
      verb: 'get',
      resource: 'pods/portforward',
      canI: 'kubectl auth can-i get pods --subresource=portforward -n akamas',
      skipped: ['sshd', 'host-key', 'ssh-login'],
    },
  ]
  for (const denial of denials) {
    it(`RBAC denies "${denial.verb} ${denial.resource}": exit 7, with the Role to ask for`, async () => {
      sandbox.deny({ verb: denial.verb, resource: denial.resource })
      const { code, check, report } = await doctor()
      expect(code).toBe(7)
      expect(report.firstFailure).toBe('permissions')
      const permissions = check('permissions')
      expect(permissions.detail.split('\n')[0]).toBe(
        `you may not ${denial.verb} ${denial.resource} in namespace akamas`,
      )
      expect(permissions.hint).toBe(
        `ask your cluster administrator for a Role in namespace akamas that allows "${denial.verb}" on "${denial.resource}" (check with \`${denial.canI}\`)`,
      )
      for (const id of denial.skipped) expectSkipped(check(id), 'permissions')
      // Only the permissions check fails: what is denied is not reported twice.
      expect(report.checks.filter((entry) => entry.status === 'fail').map((entry) => entry.id)).toEqual(['permissions'])
    })
  }

  it('RBAC denies "get services": only warnings, exit 0', async () => {
    sandbox.deny({ verb: 'get', resource: 'services' })
    const { code, check } = await doctor()
    expect(code).toBe(0)
    expect(check('permissions').status).toBe('warn')
    expect(check('permissions').detail).toContain('you may not get services in namespace akamas')
    expect(check('service')).toMatchObject({
      status: 'warn',
      detail: 'not checked: you may not get services in namespace akamas',
    })
  })

  it('no management pod: exit 9', async () => {
    await sandbox.deletePod(sandbox.currentPodName)
    const { code, check, report } = await doctor()
    expect(code).toBe(9)
    expect(report.firstFailure).toBe('pod')
    expect(check('pod').detail).toBe('no management pod in namespace akamas')
    expect(check('pod').hint).toContain('managementPod.enabled=true')
    for (const id of ['sshd', 'host-key', 'ssh-login', 'service']) expectSkipped(check(id), 'pod')
    // The Secret does not depend on the pod: it is still checked.
    expect(check('credentials').status).toBe('pass')
  })

  it('the management pod is not ready: exit 10, with its restarts and last termination reason', async () => {
    await sandbox.deletePod(sandbox.currentPodName)
    const name = await sandbox.addPod({
      phase: 'Running',
      ready: false,
      waitingReason: 'CrashLoopBackOff',
      restartCount: 5,
      lastTerminationReason: 'OOMKilled',
    })
    const { code, check, report } = await doctor()
    expect(code).toBe(10)
    expect(report.firstFailure).toBe('pod')
    expect(check('pod').detail.split('\n')[0]).toBe(
      `${name} is not ready: CrashLoopBackOff (phase Running, restarted 5 times, last exit: OOMKilled)`,
    )
    expect(check('pod').hint).toBe(
      `see why with: kubectl describe pod ${name} -n akamas and kubectl logs ${name} -n akamas --previous`,
    )
    expectSkipped(check('sshd'), 'pod')
  })

  it('no Secret: exit 11', async () => {
    sandbox.deleteSecret()
    const { code, check, report } = await doctor()
    expect(code).toBe(11)
    expect(report.firstFailure).toBe('credentials')
    expect(check('credentials').detail).toBe("no Secret with the management pod's SSH credentials in namespace akamas")
    expect(check('credentials').hint).toContain('name it with --secret (tried: management-pod,')
    expectSkipped(check('ssh-login'), 'credentials')
  })

  it('a malformed key (and an empty password): exit 12', async () => {
    sandbox.setCredentials('malformed')
    const { code, check, report } = await doctor()
    expect(code).toBe(12)
    expect(report.firstFailure).toBe('credentials')
    expect(check('credentials').detail).toMatch(/^Secret akamas\/management-pod holds .* a malformed private key/)
    expect(check('credentials').hint).toMatch(/^the Secret must hold an OpenSSH, PEM \(RSA\/EC\) or PKCS#8 private key/)
    expectSkipped(check('ssh-login'), 'credentials')
  })

  it('sshd is down: exit 16, the host key and the login skipped', async () => {
    await sandbox.stopSshd()
    const { code, check, report } = await doctor()
    expect(code).toBe(16)
    expect(report.firstFailure).toBe('sshd')
    const pod = sandbox.currentPodName
    expect(check('sshd').detail).toContain(`nothing answers as sshd on ${pod}:22`)
    expect(check('sshd').detail).toContain('connect ECONNREFUSED')
    expect(check('sshd').hint).toContain(`kubectl logs ${pod} -n akamas`)
    expectSkipped(check('host-key'), 'sshd')
    expectSkipped(check('ssh-login'), 'sshd')
  })

  it('sshd rejects the credentials in the Secret: exit 15', async () => {
    const stranger = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
    sandbox.setSecret('management-pod', { 'ssh-privatekey': stranger }, { type: 'kubernetes.io/ssh-auth' })
    const { code, check, report } = await doctor()
    expect(code).toBe(15)
    expect(report.firstFailure).toBe('ssh-login')
    expect(check('credentials').status).toBe('pass')
    expect(check('ssh-login').detail).toBe('sshd in the management pod rejected the credentials (tried publickey)')
    expect(check('ssh-login').hint).toContain('the Secret may be out of date with the pod')
  })

  it('the host key changed: exit 14, with OpenSSH’s way out', async () => {
    const env = cliEnv(sandbox.kubeconfigPath)
    await trustHostKey(env)
    await sandbox.rollout({ newHostKey: true })
    const { code, check, report } = await doctor([], env)
    expect(code).toBe(14)
    expect(report.firstFailure).toBe('host-key')
    expect(check('host-key').detail).toMatch(/^the host key has CHANGED: the pod sent the ED25519 key SHA256:/)
    const knownHosts = join(env.HOME!, '.config', 'akm-access', 'known_hosts')
    expect(check('host-key').hint).toMatch(
      new RegExp(`ssh-keygen -f '${knownHosts}' -R 'akm/127\\.0\\.0\\.1-\\d+/akamas/management-pod'`),
    )
    expect(check('host-key').hint).toContain('akm-access ssh --forget-host-key')
    expectSkipped(check('ssh-login'), 'host-key')
  })

  it('no management-pod Service: exit 16, with the command that creates it', async () => {
    sandbox.deleteService()
    const { code, check, report } = await doctor()
    expect(code).toBe(16)
    expect(report.firstFailure).toBe('service')
    expect(check('service').detail).toMatch(/^no Service named management-pod in namespace akamas: workflows/)
    expect(check('service').hint).toContain(
      'kubectl expose deployment management-pod -n akamas --name management-pod --port 22 --target-port 22',
    )
  })

  it('a Service that selects nothing: exit 16', async () => {
    sandbox.setService({ selector: { app: 'nothing' } })
    const { code, check, report } = await doctor()
    expect(code).toBe(16)
    expect(report.firstFailure).toBe('service')
    expect(check('service').detail).toBe(
      `Service management-pod selects app=nothing, which ${sandbox.currentPodName} does not match (app=management-pod): in-cluster clients reach no pod by this name`,
    )
    expect(check('service').hint).toContain('kubectl edit service management-pod -n akamas')
  })
})

describe('akm-access doctor on the local side', () => {
  it('warns about a busy preferred port (ssh falls back), exit 0', async () => {
    const blocker: Server = createServer()
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', () => resolve()))
    const port = (blocker.address() as { port: number }).port
    try {
      const { code, check } = await doctor(['--port', String(port)])
      expect(code).toBe(0)
      expect(check('local-port')).toMatchObject({ status: 'warn' })
      expect(check('local-port').detail).toContain(`127.0.0.1:${port} is in use`)
      expect(check('local-port').hint).toContain(`lsof -nP -iTCP:${port} -sTCP:LISTEN`)
    } finally {
      blocker.close()
    }
  })

  it('fails on a known_hosts that cannot be created: exit 17', async () => {
    const env = cliEnv(sandbox.kubeconfigPath)
    const notAFolder = join(env.HOME!, 'config-file')
    writeFileSync(notAFolder, '')
    const { code, check, report } = await doctor([], { ...env, XDG_CONFIG_HOME: notAFolder })
    expect(code).toBe(17)
    expect(report.firstFailure).toBe('known-hosts')
    expect(check('known-hosts').detail).toContain(`cannot exist: ${notAFolder} is a file`)
    expect(check('known-hosts').hint).toContain('--known-hosts FILE')
    // The host key is fetched all the same, but cannot be compared.
    expect(check('host-key').status).toBe('warn')
  })

  it('on a terminal: colored symbols (NO_COLOR unset), and the terminal described', async () => {
    const env = cliEnv(sandbox.kubeconfigPath, { TERM: 'xterm-256color' })
    delete env.NO_COLOR
    const terminal = cliInTerminal(['doctor', '--port', '0'], env, { cols: 120, rows: 40 })
    try {
      await terminal.waitFor(/checks passed/)
      expect((await terminal.exit()).code).toBe(0)
    } finally {
      terminal.kill()
    }
    expect(terminal.output).toContain('\u001b[32m✓\u001b[0m Kubeconfig')
    expect(terminal.output).toContain('\u001b[33m!\u001b[0m Host key')
    expect(terminal.output).toContain('stdin is a terminal, stdout is a terminal')
    expect(terminal.output).toContain('120x40, TERM=xterm-256color')
  })

  it('prints a plain-ASCII report without a UTF-8 locale, with the hint and the first broken link', async () => {
    await sandbox.stopSshd()
    const env = cliEnv(sandbox.kubeconfigPath, { LANG: 'C', TERM: 'dumb' })
    const result = await runCli(['doctor', '--port', '0'], { env })
    expect(result.code).toBe(16)
    const lines = result.stdout.split('\n')
    expect(lines.find((line) => line.startsWith('FAIL sshd'))).toContain('nothing answers as sshd on ')
    expect(lines.find((line) => line.trim().startsWith('hint: sshd does not answer in the pod'))).toBeDefined()
    expect(lines.find((line) => line.startsWith('SKIP Host key'))).toContain('skipped: sshd failed')
    expect(lines.filter((line) => line.startsWith('PASS ')).length).toBeGreaterThan(5)
    expect(result.stdout).not.toMatch(/[✓✗–]/)
    expect(result.stdout).toMatch(/\n1 check failed, 2 skipped\. The first broken link: sshd \(exit 16\)\.\n$/)
  })
})
