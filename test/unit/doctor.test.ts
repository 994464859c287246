import { mkdtempSync, writeFileSync } from 'node:fs'
import { createConnection, createServer, type Server, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PassThrough, Writable } from 'node:stream'
import type { V1Pod, V1Service } from '@kubernetes/client-node'
import ssh2 from 'ssh2'
import { afterEach, describe, expect, it } from 'vitest'
import {
  analyzeService,
  evaluatePermissions,
  type PermissionAnswer,
  permissionQuestions,
} from '../../src/doctor/checks.js'
import { checkKnownHosts, checkLocalPort, checkNode } from '../../src/doctor/local-checks.js'
import { ReportPrinter, renderCheck, renderSummary, supportsUnicode } from '../../src/doctor/report.js'
import { type CheckDefinition, runChecks, summarize } from '../../src/doctor/runner.js'
import { readSshBanner } from '../../src/doctor/ssh-banner.js'
import type { CheckResult } from '../../src/doctor/types.js'
import { AccessError } from '../../src/errors.js'
import { forgetSecrets, registerSecret } from '../../src/redact.js'
import { fetchHostKey } from '../../src/ssh/ssh-client.js'

afterEach(() => forgetSecrets())

describe('runChecks', () => {
  const definition = (
    id: CheckDefinition<unknown>['id'],
    run: CheckDefinition<unknown>['run'],
    extra: Partial<CheckDefinition<unknown>> = {},
  ): CheckDefinition<unknown> => ({ id, title: id.toUpperCase(), run, ...extra })

  it('skips what depends on a failure, naming the root cause, and exits with the first failure in report order', async () => {
    const started: string[] = []
    const results = await runChecks(
      [
        definition('kubeconfig', async () => {
          started.push('kubeconfig')
          return { status: 'pass', detail: 'ok' }
        }),
        definition(
          'api-server',
          async () => {
            // Finishes last, but comes first in the report: its code wins.
            await new Promise((resolve) => setTimeout(resolve, 30))
            return { status: 'fail', detail: 'down', hint: 'start it', exitCode: 4 }
          },
          { requires: ['kubeconfig'] },
        ),
        definition('namespace', async () => ({ status: 'pass', detail: 'never' }), { requires: ['api-server'] }),
        definition('pod', async () => ({ status: 'pass', detail: 'never' }), { requires: ['namespace'] }),
        definition('node', async () => ({ status: 'fail', detail: 'old', hint: 'upgrade', exitCode: 17 })),
      ],
      undefined,
    )
    expect(results.map((result) => [result.id, result.status])).toEqual([
      ['kubeconfig', 'pass'],
      ['api-server', 'fail'],
      ['namespace', 'skip'],
      ['pod', 'skip'],
      ['node', 'fail'],
    ])
    expect(results[2]).toMatchObject({ detail: 'skipped: API-SERVER failed', skippedBecause: 'api-server' })
    expect(results[3]).toMatchObject({ detail: 'skipped: API-SERVER failed', skippedBecause: 'api-server' })
    expect(summarize(results)).toMatchObject({ ok: false, exitCode: 4, firstFailure: 'api-server' })
    expect(started).toEqual(['kubeconfig'])
  })

  it('keeps a check’s own skip reason for the checks after it', async () => {
    const results = await runChecks(
      [
        definition('permissions', async () => ({ status: 'fail', detail: 'denied', hint: 'ask', exitCode: 7 })),
        definition(
          'pod',
          async () => ({ status: 'skip', detail: 'skipped: you may not list pods', skippedBecause: 'permissions' }),
          {
            after: ['permissions'],
          },
        ),
        definition('sshd', async () => ({ status: 'pass', detail: 'never' }), { requires: ['pod'] }),
      ],
      undefined,
    )
    expect(results[2]).toMatchObject({
      status: 'skip',
      detail: 'skipped: you may not list pods',
      skippedBecause: 'permissions',
    })
  })

  it('turns a thrown AccessError into a failure with its code, anything else into a bug (exit 1)', async () => {
    const results = await runChecks(
      [
        definition('sshd', async () => {
          throw new AccessError('sshd is gone', { exitCode: 16, hint: 'restart the pod' })
        }),
        definition('service', async () => {
          throw new TypeError('boom')
        }),
      ],
      undefined,
    )
    expect(results[0]).toMatchObject({ status: 'fail', detail: 'sshd is gone', hint: 'restart the pod', exitCode: 16 })
    expect(results[1]).toMatchObject({ status: 'fail', detail: 'unexpected error: boom', exitCode: 1 })
  })

  it('redacts every secret seen, and reports results as they come', async () => {
    registerSecret('hunter2-the-password')
    const seen: string[] = []
    const results = await runChecks(
      [
        definition('credentials', async () => ({
          status: 'fail',
          detail: 'sshd said hunter2-the-password is wrong',
          hint: 'not hunter2-the-password',
          exitCode: 15,
        })),
      ],
      undefined,
      (result) => seen.push(result.id),
    )
    expect(results[0]?.detail).toBe('sshd said [redacted] is wrong')
    expect(results[0]?.hint).toBe('not [redacted]')
    expect(seen).toEqual(['credentials'])
  })

  it('exits 0 when nothing failed, warnings included', () => {
    const results: CheckResult[] = [
      { id: 'host-key', title: 'Host key', status: 'warn', detail: 'new', hint: 'trust it', durationMs: 1 },
      { id: 'node', title: 'Node.js', status: 'pass', detail: 'v20', durationMs: 0 },
    ]
    expect(summarize(results)).toMatchObject({ schemaVersion: 1, ok: true, exitCode: 0, firstFailure: null })
  })
})

describe('evaluatePermissions', () => {
  const answers = (refused: string[], errors: string[] = []): PermissionAnswer[] =>
    permissionQuestions.map((question) =>
      errors.includes(question.label)
        ? { question, error: new Error('no SSAR here') }
        : { question, answer: { allowed: !refused.includes(question.label), denied: false, reason: undefined } },
    )

  it('passes when everything is allowed', () => {
    expect(evaluatePermissions('akamas', answers([]))).toMatchObject({ status: 'pass' })
  })

  it('fails (exit 7) on a required permission, naming the Role rules and a kubectl auth can-i', () => {
    const outcome = evaluatePermissions('akamas', answers(['get secrets', 'create pods/exec', 'get pods/exec']))
    expect(outcome.status).toBe('fail')
    expect(outcome.exitCode).toBe(7)
    expect(outcome.detail.split('\n')[0]).toBe(
      'you may not get secrets, create pods/exec, get pods/exec in namespace akamas',
    )
    expect(outcome.hint).toBe(
      'ask your cluster administrator for a Role in namespace akamas that allows "get" on "secrets"; "create", "get" on "pods/exec" (check with `kubectl auth can-i get secrets -n akamas`)',
    )
  })

  it('only warns for the optional one (services)', () => {
    expect(evaluatePermissions('akamas', answers(['get services']))).toMatchObject({ status: 'warn' })
  })

  it('warns when the API server cannot be asked at all', () => {
    const all = permissionQuestions.map((question) => question.label)
    const outcome = evaluatePermissions('akamas', answers([], all))
    expect(outcome.status).toBe('warn')
    expect(outcome.detail).toContain('cannot ask the API server about permissions')
  })
})

describe('analyzeService', () => {
  const pod: V1Pod = {
    metadata: { name: 'management-pod-abc-12345', namespace: 'akamas', labels: { app: 'management-pod', tier: 'x' } },
    spec: { containers: [{ name: 'management', ports: [{ name: 'ssh', containerPort: 22 }] }] },
  }
  type Ports = NonNullable<NonNullable<V1Service['spec']>['ports']>
  const service = (selector: Record<string, string> | undefined, ports: Ports): V1Service => ({
    metadata: { name: 'management-pod', namespace: 'akamas' },
    spec: { ...(selector ? { selector } : {}), ports },
  })

  it('passes when the selector matches and a port targets sshd, by number or by name', () => {
    expect(
      analyzeService(service({ app: 'management-pod' }, [{ port: 22, targetPort: 22 }]), pod, 'management', 22),
    ).toMatchObject({ status: 'pass' })
    expect(
      analyzeService(service({ app: 'management-pod' }, [{ port: 22, targetPort: 'ssh' }]), pod, 'management', 22),
    ).toMatchObject({ status: 'pass' })
  })

  it('fails (exit 16) when the selector does not match the pod', () => {
    const outcome = analyzeService(service({ app: 'other' }, [{ port: 22 }]), pod, 'management', 22)
    expect(outcome).toMatchObject({ status: 'fail', exitCode: 16 })
    expect(outcome.detail).toContain(
      'selects app=other, which management-pod-abc-12345 does not match (app=management-pod)',
    )
  })

  it('fails when no port leads to sshd', () => {
    const outcome = analyzeService(
      service({ app: 'management-pod' }, [{ port: 80, targetPort: 8080 }]),
      pod,
      'management',
      22,
    )
    expect(outcome).toMatchObject({ status: 'fail', exitCode: 16 })
    expect(outcome.detail).toContain('none of its ports (80→8080) leads to sshd on port 22')
    expect(outcome.hint).toContain('targetPort 22')
  })

  it('warns when sshd is exposed on another port than 22, or there is no selector', () => {
    expect(
      analyzeService(service({ app: 'management-pod' }, [{ port: 2222, targetPort: 22 }]), pod, 'management', 22),
    ).toMatchObject({ status: 'warn' })
    expect(analyzeService(service(undefined, [{ port: 22 }]), pod, 'management', 22)).toMatchObject({ status: 'warn' })
  })
})

describe('readSshBanner', () => {
  it('reads the identification line after other lines, and puts every byte back', async () => {
    const stream = new PassThrough()
    const reading = readSshBanner(stream, { timeoutMs: 1000, where: 'pod:22' })
    stream.write('Welcome\r\nSSH-2.0-OpenSSH_9.6 Ubuntu')
    stream.write('-3\r\n\0\0\0\x14KEXINIT')
    expect(await reading).toEqual({ line: 'SSH-2.0-OpenSSH_9.6 Ubuntu-3', protocol: '2.0', software: 'OpenSSH_9.6' })
    const rest: Buffer[] = []
    // Left paused: the next reader (ssh2) resumes it when it is ready.
    stream.on('data', (chunk: Buffer) => rest.push(chunk))
    expect(rest).toEqual([])
    stream.resume()
    stream.end()
    await new Promise((resolve) => stream.once('end', resolve))
    expect(Buffer.concat(rest).toString('latin1')).toBe('Welcome\r\nSSH-2.0-OpenSSH_9.6 Ubuntu-3\r\n\0\0\0\x14KEXINIT')
  })

  it('fails with exit 16 on silence, on a close without a banner, and on SSH-1', async () => {
    const silent = new PassThrough()
    await expect(readSshBanner(silent, { timeoutMs: 50, where: 'pod:22' })).rejects.toMatchObject({
      exitCode: 16,
      message: 'no SSH banner from pod:22 within 0.05s',
    })
    const closed = new PassThrough()
    const reading = readSshBanner(closed, { timeoutMs: 1000, where: 'pod:22' })
    closed.end('HTTP/1.1 400 Bad Request\r\n')
    await expect(reading).rejects.toMatchObject({
      exitCode: 16,
      message: 'pod:22 closed the connection without an SSH banner (it sent "HTTP/1.1 400 Bad Request??")',
    })
    const old = new PassThrough()
    const oldReading = readSshBanner(old, { timeoutMs: 1000, where: 'pod:22' })
    old.write('SSH-1.5-ancient\r\n')
    await expect(oldReading).rejects.toMatchObject({ exitCode: 16 })
  })

  it('passes a stream error through (the kubelet’s connection refused)', async () => {
    const stream = new PassThrough()
    const reading = readSshBanner(stream, { timeoutMs: 1000, where: 'pod:22' })
    stream.destroy(new AccessError('port-forward to pod:22: connect ECONNREFUSED', { exitCode: 16 }))
    await expect(reading).rejects.toThrow('connect ECONNREFUSED')
  })
})

describe('fetchHostKey', () => {
  let server: Server | undefined
  afterEach(() => server?.close())

  it('returns the host key after a full key exchange, without ever authenticating; the banner read first is kept', async () => {
    const { utils, Server: SshServer } = ssh2
    const hostKey = utils.generateKeyPairSync('ed25519')
    let authenticated = false
    const sshServer = new SshServer({ hostKeys: [hostKey.private] }, (client) => {
      client.on('authentication', () => {
        authenticated = true
      })
      client.on('error', () => {})
    })
    server = sshServer as unknown as Server
    await new Promise<void>((resolve) => sshServer.listen(0, '127.0.0.1', () => resolve()))
    const { port } = sshServer.address() as { port: number }
    const socket: Socket = createConnection({ port, host: '127.0.0.1' })
    const banner = await readSshBanner(socket, { timeoutMs: 2000, where: 'test' })
    expect(banner.line).toMatch(/^SSH-2\.0-/)
    const blob = await fetchHostKey(socket, { timeoutMs: 5000 })
    const expected = utils.parseKey(hostKey.public)
    if (expected instanceof Error) throw expected
    expect(blob.equals(expected.getPublicSSH())).toBe(true)
    await new Promise((resolve) => (socket.closed ? resolve(undefined) : socket.once('close', resolve)))
    expect(authenticated).toBe(false)
  })

  it('fails with exit 16 when the other side is not an SSH server', async () => {
    const silent = createServer((socket) => socket.end('hello\r\n'))
    server = silent
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', () => resolve()))
    const socket = createConnection({ port: (silent.address() as { port: number }).port, host: '127.0.0.1' })
    await expect(fetchHostKey(socket, { timeoutMs: 2000 })).rejects.toMatchObject({ exitCode: 16 })
  })
})

describe('the report', () => {
  const results: CheckResult[] = [
    { id: 'kubeconfig', title: 'Kubeconfig', status: 'pass', detail: '~/.kube/config\ncontext prod', durationMs: 1 },
    {
      id: 'permissions',
      title: 'Permissions',
      status: 'fail',
      detail: 'you may not get secrets',
      hint: 'ask for a Role',
      exitCode: 7,
      durationMs: 3,
    },
    {
      id: 'credentials',
      title: 'SSH credentials',
      status: 'skip',
      detail: 'skipped: no',
      skippedBecause: 'permissions',
      durationMs: 0,
    },
    { id: 'local-port', title: 'Local port', status: 'warn', detail: 'busy', hint: '--port', durationMs: 0 },
  ]

  it('uses ✓ ✗ – ! with a UTF-8 locale, and words otherwise; facts and hints are indented under the title', () => {
    const unicode = results.map((result) => renderCheck(result, { unicode: true, color: false }, 15)).join('')
    expect(unicode).toBe(
      [
        '✓ Kubeconfig       ~/.kube/config',
        '                   context prod',
        '✗ Permissions      you may not get secrets',
        '                   hint: ask for a Role',
        '– SSH credentials  skipped: no',
        '! Local port       busy',
        '                   hint: --port',
        '',
      ].join('\n'),
    )
    const ascii = renderCheck(results[1]!, { unicode: false, color: false }, 15)
    expect(ascii).toBe('FAIL Permissions      you may not get secrets\n                      hint: ask for a Role\n')
  })

  it('paints only when asked', () => {
    expect(renderCheck(results[0]!, { unicode: true, color: true }, 10)).toContain('\u001b[32m✓\u001b[0m')
    expect(renderCheck(results[0]!, { unicode: true, color: false }, 10)).not.toContain('\u001b[')
  })

  it('names the first broken link in the summary', () => {
    const report = summarize(results)
    expect(renderSummary(report, { unicode: true, color: false })).toBe(
      '\n1 check failed, 1 skipped. The first broken link: Permissions (exit 7).\n',
    )
  })

  it('prints in report order as results arrive out of order', () => {
    let text = ''
    const out = new Writable({
      write(chunk, _encoding, callback) {
        text += chunk.toString()
        callback()
      },
    })
    const printer = new ReportPrinter(out, { unicode: false, color: false }, results)
    printer.add(results[2]!)
    expect(text).toBe('')
    printer.add(results[0]!)
    expect(text).toMatch(/^PASS Kubeconfig/)
    printer.add(results[1]!)
    expect(
      text
        .split('\n')
        .filter((line) => /^\S/.test(line))
        .map((line) => line.slice(0, 4)),
    ).toEqual(['PASS', 'FAIL', 'SKIP'])
    printer.finish(summarize(results))
    expect(text).toMatch(/WARN Local port/)
    expect(text).toMatch(/The first broken link: Permissions \(exit 7\)\.\n$/)
  })

  it('knows when the terminal can show the symbols', () => {
    expect(supportsUnicode({ LANG: 'en_US.UTF-8' })).toBe(true)
    expect(supportsUnicode({ LANG: 'C.utf8' })).toBe(true)
    expect(supportsUnicode({ LC_ALL: 'C', LANG: 'en_US.UTF-8' })).toBe(false)
    expect(supportsUnicode({ LANG: 'en_US.UTF-8', TERM: 'dumb' })).toBe(false)
  })
})

describe('local checks', () => {
  it('known_hosts: missing but creatable passes; under a file fails with exit 17; counts keys', () => {
    const home = mkdtempSync(join(tmpdir(), 'akm-doctor-'))
    expect(checkKnownHosts(join(home, '.config', 'akm-access', 'known_hosts'), home)).toEqual({
      status: 'pass',
      detail: '~/.config/akm-access/known_hosts does not exist yet; the first host key you trust creates it',
    })
    writeFileSync(join(home, 'file'), '')
    expect(checkKnownHosts(join(home, 'file', 'known_hosts'), home)).toMatchObject({ status: 'fail', exitCode: 17 })
    const file = join(home, 'known_hosts')
    writeFileSync(file, '# comment\nakm/a ssh-ed25519 AAAA\nakm/b ssh-ed25519 BBBB\n')
    expect(checkKnownHosts(file, home)).toEqual({ status: 'pass', detail: '~/known_hosts: 2 host keys' })
  })

  it('local port: free passes, busy warns, 0 passes', async () => {
    const holder = createServer()
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', () => resolve()))
    const port = (holder.address() as { port: number }).port
    try {
      expect(await checkLocalPort(port)).toMatchObject({ status: 'warn' })
    } finally {
      await new Promise((resolve) => holder.close(resolve))
    }
    expect(await checkLocalPort(port)).toMatchObject({ status: 'pass' })
    expect(await checkLocalPort(0)).toMatchObject({ status: 'pass' })
  })

  it('Node.js: 20.17 and later pass, older fails with exit 17', () => {
    expect(checkNode('20.17.0').status).toBe('pass')
    expect(checkNode('22.1.0').status).toBe('pass')
    expect(checkNode('20.16.9')).toMatchObject({ status: 'fail', exitCode: 17 })
    expect(checkNode('18.20.0')).toMatchObject({ status: 'fail', exitCode: 17 })
  })
})
