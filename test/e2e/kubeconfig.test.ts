/**
 * Reaching the cluster as kubectl would, proven with the built CLI against the sandbox: every kubeconfig form the
 * sandbox serves (token, client certificate, basic, exec plugin, CA file and data, insecure, proxy-url,
 * HTTPS_PROXY/NO_PROXY, in-cluster), KUBECONFIG merging, contexts and the namespace precedence, and each way the
 * connection can fail, with its exit code from the README.
 */
import { spawn } from 'node:child_process'
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { ExitCode } from '../../src/errors.js'
import { type CliResult, cliEnv, cliPath, runCli, Terminal } from '../helpers/cli.js'
import { type ConnectProxy, startConnectProxy } from '../helpers/connect-proxy.js'
import { expectCliError, expectNoSecrets, sandboxSecrets } from '../helpers/expect-cli.js'
import { createPki } from '../sandbox/certs.js'
import { Sandbox } from '../sandbox/index.js'

let sandbox: Sandbox
const proxies: ConnectProxy[] = []
const terminals: Terminal[] = []

beforeAll(async () => {
  sandbox = await Sandbox.start({ credentials: 'both' })
})
afterEach(async () => {
  for (const terminal of terminals.splice(0)) terminal.kill()
  for (const proxy of proxies.splice(0)) await proxy.close()
  sandbox.clearFaults()
  sandbox.allowAll()
})
afterAll(async () => {
  await sandbox?.stop()
})

type KubeconfigJson = {
  clusters: { name: string; cluster: Record<string, unknown> }[]
  users: { name: string; user: Record<string, unknown> }[]
  contexts: { name: string; context: Record<string, unknown> }[]
  'current-context'?: string
}

/** A sandbox kubeconfig, edited (the sandbox writes JSON, which is YAML too). */
function kubeconfig(
  options: Parameters<Sandbox['writeKubeconfig']>[0],
  edit: (config: KubeconfigJson) => void = () => {},
): string {
  const path = sandbox.writeKubeconfig(options)
  const config = JSON.parse(readFileSync(path, 'utf8')) as KubeconfigJson
  edit(config)
  writeFileSync(path, JSON.stringify(config, null, 2), { mode: 0o600 })
  return path
}

function password(kubeconfigPath: string | undefined, extraEnv: NodeJS.ProcessEnv = {}, args: string[] = []) {
  return runCli(['password', ...args], { env: cliEnv(kubeconfigPath, extraEnv) })
}

/** The users the sandbox saw since `since`: who we authenticated as. */
function usersSince(since: number): string[] {
  return [...new Set(sandbox.requests.filter((request) => request.at >= since).map((request) => String(request.user)))]
}

function expectPassword(result: CliResult): void {
  expect(result.stdout, result.stderr).toBe(`${sandbox.password}\n`)
  expect(result.code).toBe(0)
}

async function proxy(options: Parameters<typeof startConnectProxy>[0] = {}): Promise<ConnectProxy> {
  const started = await startConnectProxy(options)
  proxies.push(started)
  return started
}

describe('credentials of every kind the sandbox serves', () => {
  it('a bearer token', async () => {
    const since = Date.now()
    const result = await password(kubeconfig({ auth: 'token' }))
    expectPassword(result)
    expect(result.stderr).toBe('')
    expect(usersSince(since)).toEqual(['sandbox-admin'])
  })

  it('a client certificate', async () => {
    const since = Date.now()
    expectPassword(await password(kubeconfig({ auth: 'client-certificate' })))
    expect(usersSince(since)).toEqual([sandbox.pki.clientUser])
  })

  it('basic auth', async () => {
    const since = Date.now()
    expectPassword(await password(kubeconfig({ auth: 'basic' })))
    expect(usersSince(since)).toEqual([sandbox.basicUser.name])
  })

  it('an exec credential plugin: its messages reach stderr, stdout stays the password alone', async () => {
    const since = Date.now()
    const result = await password(kubeconfig({ auth: 'exec' }))
    expectPassword(result)
    expect(result.stderr).toBe('sandbox-exec-plugin: issuing a token\n')
    expect(usersSince(since)).toEqual(['exec-user'])
  })

  it('an exec plugin gets the terminal for its prompt (a device-code login), and only the password is on stdout', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'akm-exec-'))
    const plugin = join(dir, 'device-login.sh')
    writeFileSync(
      plugin,
      [
        '#!/bin/sh',
        'printf "Enter the code shown at https://login.example/device: " >&2',
        'read code',
        'if [ "$code" != "4242" ]; then echo "device-login: wrong code" >&2; exit 1; fi',
        '[ -t 0 ] && echo "device-login: stdin is a terminal" >&2',
        'case "$KUBERNETES_EXEC_INFO" in *\'"interactive":true\'*) echo "device-login: interactive" >&2;; esac',
        `printf '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"%s"}}\\n' '${sandbox.token}'`,
        '',
      ].join('\n'),
    )
    chmodSync(plugin, 0o755)
    const path = kubeconfig({ auth: 'none' }, (config) => {
      config.users[0]!.user.exec = { apiVersion: 'client.authentication.k8s.io/v1', command: plugin }
    })
    const out = join(dir, 'stdout')
    const env = cliEnv(path, { TERM: 'xterm-256color' })
    // stdout to a file, stdin and stderr on the terminal: what `akm-access password | pbcopy` looks like.
    const terminal = new Terminal(
      ['bash', '--norc', '-c', `'${process.execPath}' '${cliPath}' password > '${out}'; echo "exit=$?"`],
      env,
    )
    terminals.push(terminal)
    await terminal.waitFor('Enter the code shown at https://login.example/device: ')
    terminal.type('4242\r')
    await terminal.waitFor(/exit=\d+/)
    expect(terminal.output).toContain('exit=0')
    expect(terminal.output).toContain('device-login: stdin is a terminal')
    expect(terminal.output).toContain('device-login: interactive')
    expect(readFileSync(out, 'utf8')).toBe(`${sandbox.password}\n`)

    // Without a terminal the plugin gets no stdin; its failure is a 401-class error, and its message is shown.
    const piped = await runCli(['password'], { env: cliEnv(path) })
    expectCliError(piped, {
      code: ExitCode.unauthorized,
      message: 'the credential plugin "device-login.sh" failed with exit code 1',
      hint: 'its own messages are above',
    })
    expect(piped.stderr).toContain('device-login: wrong code')
  })

  it('an exec plugin whose cached token the server rejects runs once more (as kubectl after a 401)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'akm-exec-'))
    const plugin = join(dir, 'rotating.sh')
    writeFileSync(
      plugin,
      [
        '#!/bin/sh',
        `count=$(cat '${dir}/count' 2>/dev/null || echo 0)`,
        `echo $((count + 1)) > '${dir}/count'`,
        'echo "rotating: run $((count + 1))" >&2',
        // The first run hands out a token that was revoked in the meantime.
        `if [ "$count" = 0 ]; then token=revoked-token-0123456789; else token='${sandbox.token}'; fi`,
        `printf '{"apiVersion":"client.authentication.k8s.io/v1beta1","kind":"ExecCredential","status":{"token":"%s"}}\n' "$token"`,
        '',
      ].join('\n'),
    )
    chmodSync(plugin, 0o755)
    const path = kubeconfig({ auth: 'none' }, (config) => {
      config.users[0]!.user.exec = { apiVersion: 'client.authentication.k8s.io/v1beta1', command: plugin }
    })
    const result = await password(path)
    expectPassword(result)
    expect(result.stderr).toBe('rotating: run 1\nrotating: run 2\n')
    expect(readFileSync(join(dir, 'count'), 'utf8').trim()).toBe('2')
  })

  it('a token the API server rejects: 401', async () => {
    const path = kubeconfig({ auth: 'token', token: 'expired-token-0123456789' })
    const result = await password(path)
    expectCliError(result, {
      code: ExitCode.unauthorized,
      message: 'the API server rejected the credentials of user "sandbox-user" (context "sandbox") (401 Unauthorized)',
      hint: 'may have expired or been revoked',
    })
    const debug = await password(path, {}, ['--debug'])
    expect(debug.code).toBe(ExitCode.unauthorized)
    expect(debug.stderr).toMatch(/→ 401/)
    for (const output of [result.stderr, debug.stderr]) {
      expectNoSecrets(output, ['expired-token-0123456789', ...sandboxSecrets(sandbox)])
    }
  })

  it('no credentials at all: 401 that says so', async () => {
    const result = await password(kubeconfig({ auth: 'none' }))
    expectCliError(result, {
      code: ExitCode.unauthorized,
      message: 'the API server requires credentials, but user "sandbox-user" has none (401 Unauthorized)',
      hint: 'get a kubeconfig with credentials',
    })
  })
})

describe('trusting the API server', () => {
  it('certificate-authority as a file relative to the kubeconfig', async () => {
    const path = kubeconfig({ auth: 'token' }, (config) => {
      delete config.clusters[0]!.cluster['certificate-authority-data']
      config.clusters[0]!.cluster['certificate-authority'] = 'sandbox-ca.crt'
    })
    writeFileSync(join(sandbox.dir, 'sandbox-ca.crt'), sandbox.pki.caCert)
    expectPassword(await password(path))
  })

  it('insecure-skip-tls-verify', async () => {
    expectPassword(await password(kubeconfig({ insecureSkipTlsVerify: true })))
  })

  it('no CA for a private cluster: exit 5, and how to fix it', async () => {
    const result = await password(kubeconfig({ withoutCa: true }))
    expectCliError(result, {
      code: ExitCode.tls,
      message: `the API server at 127.0.0.1:${new URL(sandbox.url).port} presented a certificate that is not trusted (SELF_SIGNED_CERT_IN_CHAIN)`,
      hint: 'cluster "sandbox" has no certificate-authority-data',
    })
  })

  it("another cluster's CA: exit 5, pointing at the kubeconfig's CA", async () => {
    const other = createPki(mkdtempSync(join(tmpdir(), 'akm-other-pki-')))
    const result = await password(
      kubeconfig({}, (config) => {
        config.clusters[0]!.cluster['certificate-authority-data'] = Buffer.from(other.caCert).toString('base64')
      }),
    )
    expectCliError(result, {
      code: ExitCode.tls,
      message: /presented a certificate that is not trusted \([A-Z_]+\)$/,
      hint: 'the certificate-authority-data of cluster "sandbox" does not match the server',
    })
  })
})

describe('proxies', () => {
  it('proxy-url in the kubeconfig: every request goes through the CONNECT tunnel', async () => {
    const corporate = await proxy()
    const result = await password(kubeconfig({ proxyUrl: corporate.url }))
    expectPassword(result)
    expect(corporate.tunnels.length).toBeGreaterThanOrEqual(1)
    expect(new Set(corporate.tunnels)).toEqual(new Set([`127.0.0.1:${new URL(sandbox.url).port}`]))
  })

  it('a proxy that wants credentials: taken from proxy-url, never printed; without them exit 4 (407)', async () => {
    const secretive = await proxy({ credentials: { user: 'alice', password: 'proxy-pass-7f3a9' } })
    const withCredentials = `http://alice:proxy-pass-7f3a9@127.0.0.1:${secretive.port}`
    const ok = await password(kubeconfig({ proxyUrl: withCredentials }), {}, ['--debug'])
    expectPassword(ok)
    expect(ok.stderr).toContain(`via http://127.0.0.1:${secretive.port}`)
    expectNoSecrets(ok.stderr, ['proxy-pass-7f3a9', ...sandboxSecrets(sandbox)])

    const refused = await password(kubeconfig({ proxyUrl: secretive.url }))
    expectCliError(refused, {
      code: ExitCode.unreachable,
      message: `the proxy http://127.0.0.1:${secretive.port} (from proxy-url in the kubeconfig) requires authentication (407)`,
      hint: 'put the credentials in the proxy URL',
    })
  })

  it('HTTPS_PROXY for a server only the proxy can resolve; NO_PROXY bypasses it', async () => {
    const port = new URL(sandbox.url).port
    const corporate = await proxy({ hosts: { 'kube.akm.test': '127.0.0.1' } })
    // The sandbox's certificate is for localhost and 127.0.0.1: tls-server-name checks it against localhost.
    const path = kubeconfig({ server: `https://kube.akm.test:${port}` }, (config) => {
      config.clusters[0]!.cluster['tls-server-name'] = 'localhost'
    })
    expectPassword(await password(path, { HTTPS_PROXY: corporate.url }))
    expect(new Set(corporate.tunnels)).toEqual(new Set([`kube.akm.test:${port}`]))

    const tunnels = corporate.tunnels.length
    const bypassed = await password(path, { HTTPS_PROXY: corporate.url, NO_PROXY: 'localhost,.akm.test' })
    expectCliError(bypassed, {
      code: ExitCode.unreachable,
      message: 'cannot resolve kube.akm.test, the host of the API server (no proxy)',
      hint: 'if you need a proxy, set HTTPS_PROXY',
    })
    expect(corporate.tunnels.length).toBe(tunnels)
  })

  it('HTTPS_PROXY is not used for a loopback server, as in kubectl', async () => {
    const corporate = await proxy()
    expectPassword(await password(kubeconfig({}), { HTTPS_PROXY: corporate.url, https_proxy: corporate.url }))
    expect(corporate.tunnels).toEqual([])
  })

  it('a proxy that is down: exit 4, naming the proxy and where it came from', async () => {
    const port = await closedPort()
    const result = await password(kubeconfig({ proxyUrl: `http://127.0.0.1:${port}` }))
    expectCliError(result, {
      code: ExitCode.unreachable,
      message: `cannot reach the proxy http://127.0.0.1:${port} (from proxy-url in the kubeconfig): connection refused`,
      hint: 'check proxy-url in the kubeconfig',
    })
  })
})

describe('which kubeconfig', () => {
  const yamlConfig = (options: {
    currentContext?: string
    server: string
    token: string
    namespace: string
    extraContext?: boolean
  }) =>
    [
      'apiVersion: v1',
      'kind: Config',
      ...(options.currentContext ? [`current-context: ${options.currentContext}`] : []),
      'clusters:',
      '- name: sandbox',
      '  cluster:',
      `    server: ${options.server}`,
      `    certificate-authority-data: ${Buffer.from(sandbox.pki.caCert).toString('base64')}`,
      'users:',
      '- name: admin',
      '  user:',
      `    token: ${options.token}`,
      'contexts:',
      '- name: work',
      '  context:',
      '    cluster: sandbox',
      '    user: admin',
      `    namespace: ${options.namespace}`,
      ...(options.extraContext
        ? ['- name: other', '  context:', '    cluster: sandbox', '    user: admin', '    namespace: akamas']
        : []),
      '',
    ].join('\n')

  it('KUBECONFIG with several files: merged first-wins, a missing file is no error', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'akm-kubeconfigs-'))
    const good = join(dir, 'good.yaml')
    const bad = join(dir, 'bad.yaml')
    // good.yaml sets no current-context; bad.yaml does, and redefines the same cluster, user and context badly.
    writeFileSync(good, yamlConfig({ server: sandbox.url, token: sandbox.token, namespace: 'akamas' }))
    writeFileSync(
      bad,
      yamlConfig({
        currentContext: 'work',
        server: 'https://127.0.0.1:1',
        token: 'bad-token-0123456789',
        namespace: 'elsewhere',
        extraContext: true,
      }),
    )
    const missing = join(dir, 'missing.yaml')
    // current-context comes from bad.yaml (the first file that sets it); every entry from good.yaml (first wins).
    expectPassword(await runCli(['password'], { env: cliEnv(`${missing}:${good}:${bad}`) }))
    // A context defined only in the second file, using the first file's cluster and user.
    expectPassword(await runCli(['password', '--context', 'other'], { env: cliEnv(`${good}:${bad}`) }))
    // The other order: bad.yaml's entries win.
    const reversed = await runCli(['password'], { env: cliEnv(`${bad}:${good}`) })
    expectCliError(reversed, {
      code: ExitCode.unreachable,
      message: 'cannot connect to the API server at 127.0.0.1:1 (no proxy): connection refused',
      hint: `server of cluster "sandbox" in ${bad}`,
    })
    expectNoSecrets(reversed.stderr, ['bad-token-0123456789'])
  })

  it('KUBECONFIG whose files are all missing: exit 3', async () => {
    const result = await runCli(['password'], { env: cliEnv('/nonexistent/a:/nonexistent/b') })
    expectCliError(result, {
      code: ExitCode.config,
      message: 'no kubeconfig found: none of the files in KUBECONFIG exist (/nonexistent/a, /nonexistent/b)',
      hint: 'fix KUBECONFIG, or unset it to use ~/.kube/config',
    })
  })

  it('--kubeconfig wins over KUBECONFIG; a missing --kubeconfig is exit 3', async () => {
    expectPassword(await runCli(['password', '--kubeconfig', kubeconfig({})], { env: cliEnv('/nonexistent/a') }))
    const result = await runCli(['password', '--kubeconfig', '/nonexistent/config'], { env: cliEnv(undefined) })
    expectCliError(result, {
      code: ExitCode.config,
      message: 'the kubeconfig file /nonexistent/config (from --kubeconfig) does not exist',
      hint: 'check the path given to --kubeconfig',
    })
  })

  it('~/.kube/config when KUBECONFIG is not set', async () => {
    const env = cliEnv(undefined)
    mkdirSync(join(env.HOME!, '.kube'))
    copyFileSync(kubeconfig({}), join(env.HOME!, '.kube', 'config'))
    expectPassword(await runCli(['password'], { env }))
  })

  it('nothing configured: exit 3, and no silent fallback to localhost:8080', async () => {
    const listener = await listenIfFree(8080)
    try {
      const result = await runCli(['password'], { env: cliEnv(undefined) })
      expectCliError(result, {
        code: ExitCode.config,
        message:
          'no kubeconfig found: ~/.kube/config does not exist, KUBECONFIG is not set and this is not a pod in a cluster',
        hint: 'aws eks update-kubeconfig',
      })
      if (listener) expect(listener.connections).toBe(0)
    } finally {
      listener?.server.close()
    }
  })

  it('in-cluster: the service account of the pod akm-access runs in', async () => {
    // A private mount namespace with a tmpfs on /run gives this one process its own
    // /var/run/secrets/kubernetes.io/serviceaccount, as a pod has, without touching the machine's.
    const account = mkdtempSync(join(tmpdir(), 'akm-serviceaccount-'))
    writeFileSync(join(account, 'token'), sandbox.token)
    writeFileSync(join(account, 'ca.crt'), sandbox.pki.caCert)
    writeFileSync(join(account, 'namespace'), 'akamas')
    const env = cliEnv(undefined, {
      KUBERNETES_SERVICE_HOST: '127.0.0.1',
      KUBERNETES_SERVICE_PORT: new URL(sandbox.url).port,
    })
    const script = [
      'set -e',
      'mount -t tmpfs tmpfs /run',
      'mkdir -p /run/secrets/kubernetes.io/serviceaccount',
      `cp '${account}'/* /run/secrets/kubernetes.io/serviceaccount/`,
      `exec '${process.execPath}' '${cliPath}' password`,
    ].join('\n')
    const since = Date.now()
    const result = await run(['unshare', '--mount', '--propagation', 'private', 'sh', '-c', script], env)
    expectPassword(result)
    expect(usersSince(since)).toEqual(['sandbox-admin'])
  })
})

describe('contexts and namespaces', () => {
  it('--context picks a context; an unknown one is exit 3 with the list', async () => {
    const path = kubeconfig({ contextName: 'prod' })
    expectPassword(await runCli(['password', '--context', 'prod'], { env: cliEnv(path) }))
    const result = await runCli(['password', '--context', 'staging'], { env: cliEnv(path) })
    expectCliError(result, {
      code: ExitCode.config,
      message: `context "staging" (from --context) not found in ${path}`,
      hint: 'available contexts: prod',
    })
  })

  it('the namespace: -n, else AKM_NAMESPACE, else the context namespace, else akamas', async () => {
    const noNamespace = kubeconfig({ namespace: null })
    const elsewhere = kubeconfig({ namespace: 'elsewhere' })
    // No namespace anywhere: akamas.
    expectPassword(await password(noNamespace))
    // The context's namespace is used (and does not exist)...
    expectCliError(await password(elsewhere), {
      code: ExitCode.namespaceNotFound,
      message: 'namespace elsewhere not found',
      hint: 'pass the namespace of the Akamas installation with -n (or set AKM_NAMESPACE)',
    })
    // ...unless AKM_NAMESPACE says otherwise...
    expectPassword(await password(elsewhere, { AKM_NAMESPACE: 'akamas' }))
    expectCliError(await password(noNamespace, { AKM_NAMESPACE: 'nowhere' }), {
      code: ExitCode.namespaceNotFound,
      message: 'namespace nowhere not found',
    })
    // ...and -n beats both.
    expectPassword(await password(elsewhere, { AKM_NAMESPACE: 'nowhere' }, ['-n', 'akamas']))
    expectCliError(await password(noNamespace, { AKM_NAMESPACE: 'akamas' }, ['--namespace', 'missing']), {
      code: ExitCode.namespaceNotFound,
      message: 'namespace missing not found',
    })
  })
})

describe('an API server that cannot be reached', () => {
  it('connection refused: exit 4', async () => {
    const port = await closedPort()
    const result = await password(kubeconfig({ server: `https://127.0.0.1:${port}` }))
    expectCliError(result, {
      code: ExitCode.unreachable,
      message: `cannot connect to the API server at 127.0.0.1:${port} (no proxy): connection refused`,
      hint: 'check that the cluster is running and that you are on the right network or VPN',
    })
  })

  it('a host name that does not resolve: exit 4', async () => {
    const result = await password(kubeconfig({ server: 'https://api.akamas-cluster.invalid:6443' }))
    expectCliError(result, {
      code: ExitCode.unreachable,
      message: 'cannot resolve api.akamas-cluster.invalid, the host of the API server (no proxy)',
      hint: 'check that the cluster is running',
    })
  })

  it('a server that does not answer: bounded by --request-timeout, exit 4', async () => {
    sandbox.apiFaults.delayMs = 10_000
    const started = Date.now()
    const result = await runCli(['password', '--request-timeout', '1s'], { env: cliEnv(kubeconfig({})) })
    const elapsed = Date.now() - started
    expectCliError(result, {
      code: ExitCode.unreachable,
      message: `the API server at 127.0.0.1:${new URL(sandbox.url).port} did not answer within 1s (no proxy)`,
      hint: 'if the server is just slow, raise --request-timeout',
    })
    expect(elapsed).toBeLessThan(5000)
  })

  it('a server that accepts the connection but never speaks TLS: bounded by --request-timeout, exit 4', async () => {
    const silent = createServer(() => {})
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve))
    const { port } = silent.address() as { port: number }
    try {
      const started = Date.now()
      const result = await runCli(['password', '--request-timeout', '1s'], {
        env: cliEnv(kubeconfig({ server: `https://127.0.0.1:${port}` })),
      })
      expectCliError(result, {
        code: ExitCode.unreachable,
        message: `the API server at 127.0.0.1:${port} did not answer within 1s (no proxy)`,
        hint: 'raise --request-timeout',
      })
      expect(Date.now() - started).toBeLessThan(5000)
    } finally {
      silent.close()
    }
  })

  it('a malformed --request-timeout: exit 2', async () => {
    const result = await runCli(['password', '--request-timeout', 'soon'], { env: cliEnv(kubeconfig({})) })
    expectCliError(result, {
      code: ExitCode.usage,
      message: 'invalid --request-timeout value "soon"',
      hint: 'e.g. 30s, 2m, 1h',
    })
  })

  it('--debug adds diagnostics and a stack, never a secret', async () => {
    const port = await closedPort()
    const result = await password(kubeconfig({ server: `https://127.0.0.1:${port}` }), {}, ['--debug'])
    expect(result.code).toBe(ExitCode.unreachable)
    expect(result.stderr).toMatch(/^debug +\d+ms context sandbox/m)
    expect(result.stderr).toMatch(/^\s+at .+:\d+:\d+\)?$/m)
    expectNoSecrets(result.stderr, sandboxSecrets(sandbox))
  })
})

// ---- helpers ----

function closedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
}

/** Listens on a port if nobody else does, counting connections; undefined when it is taken. */
function listenIfFree(port: number): Promise<{ server: Server; connections: number } | undefined> {
  return new Promise((resolve) => {
    const state = { server: createServer(), connections: 0 }
    state.server.on('connection', (socket) => {
      state.connections += 1
      socket.destroy()
    })
    state.server.once('error', () => resolve(undefined))
    state.server.listen(port, '127.0.0.1', () => resolve(state))
  })
}

/** Runs any command on pipes, like runCli. */
function run(argv: string[], env: NodeJS.ProcessEnv): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { env, stdio: ['ignore', 'pipe', 'pipe'] })
    const out: Buffer[] = []
    const err: Buffer[] = []
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk))
    child.stderr.on('data', (chunk: Buffer) => err.push(chunk))
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000)
    child.on('error', reject)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      const stdoutBuffer = Buffer.concat(out)
      resolve({
        code,
        signal,
        stdout: stdoutBuffer.toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        stdoutBuffer,
      })
    })
  })
}
