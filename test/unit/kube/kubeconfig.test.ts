import { chmodSync, mkdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { AccessError, ExitCode } from '../../../src/errors.js'
import { DEFAULT_NAMESPACE, displayPath, resolveConnection } from '../../../src/kube/kubeconfig.js'
import type { KubeEnvironment } from '../../../src/kube/types.js'
import { forgetSecrets, redact } from '../../../src/redact.js'
import { makePki, type Pki, removeTempDirs, tempDir, writeKubeconfig } from './fixtures.js'

let pki: Pki
beforeAll(() => {
  pki = makePki()
})

let root: string
let home: string
beforeEach(() => {
  forgetSecrets()
  root = tempDir()
  home = path.join(root, 'home')
  mkdirSync(home)
})

function environment(over: Partial<KubeEnvironment> = {}): KubeEnvironment {
  return { env: {}, homeDir: home, cwd: root, serviceAccountDir: path.join(root, 'sa'), ...over }
}

const b64 = (text: string) => Buffer.from(text).toString('base64')

function simpleConfig(name: string, extra: { namespace?: string; server?: string; token?: string } = {}) {
  return {
    apiVersion: 'v1',
    kind: 'Config',
    'current-context': name,
    clusters: [{ name: `${name}-cluster`, cluster: { server: extra.server ?? `https://${name}.example:6443` } }],
    users: [{ name: `${name}-user`, user: { token: extra.token ?? `${name}-token-value` } }],
    contexts: [
      {
        name,
        context: {
          cluster: `${name}-cluster`,
          user: `${name}-user`,
          ...(extra.namespace ? { namespace: extra.namespace } : {}),
        },
      },
    ],
  }
}

async function expectAccessError(promise: Promise<unknown>, exitCode: number): Promise<AccessError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(error).toBeInstanceOf(AccessError)
  expect((error as AccessError).exitCode).toBe(exitCode)
  return error as AccessError
}

describe('choosing the kubeconfig', () => {
  it('uses ~/.kube/config by default and says so', async () => {
    writeKubeconfig(path.join(home, '.kube', 'config'), simpleConfig('home', { namespace: 'team' }))
    const connection = await resolveConnection({}, environment())
    expect(connection.origin).toEqual({
      kind: 'kubeconfig',
      files: [path.join(home, '.kube', 'config')],
      source: 'default',
      from: '~/.kube/config',
    })
    expect(connection.context).toEqual({
      value: 'home',
      source: 'kubeconfig',
      from: 'current-context in ~/.kube/config',
    })
    expect(connection.cluster.server).toBe('https://home.example:6443')
    expect(connection.user.token).toBe('home-token-value')
    expect(connection.namespace).toEqual({
      value: 'team',
      source: 'kubeconfig',
      from: 'context "home" in ~/.kube/config',
    })
  })

  it('prefers KUBECONFIG over ~/.kube/config', async () => {
    writeKubeconfig(path.join(home, '.kube', 'config'), simpleConfig('home'))
    const file = writeKubeconfig(path.join(root, 'env.yaml'), simpleConfig('env'))
    const connection = await resolveConnection({}, environment({ env: { KUBECONFIG: file } }))
    expect(connection.context?.value).toBe('env')
    expect(connection.origin).toMatchObject({ source: 'env', from: 'KUBECONFIG', files: [file] })
  })

  it('prefers --kubeconfig over KUBECONFIG, resolving it against the working directory', async () => {
    const envFile = writeKubeconfig(path.join(root, 'env.yaml'), simpleConfig('env'))
    writeKubeconfig(path.join(root, 'dir', 'flag.yaml'), simpleConfig('flag'))
    const connection = await resolveConnection(
      { kubeconfig: 'dir/flag.yaml' },
      environment({ env: { KUBECONFIG: envFile } }),
    )
    expect(connection.context?.value).toBe('flag')
    expect(connection.origin).toMatchObject({
      source: 'flag',
      from: '--kubeconfig',
      files: [path.join(root, 'dir', 'flag.yaml')],
    })
  })

  it('fails when --kubeconfig names a missing file (no fallback)', async () => {
    writeKubeconfig(path.join(home, '.kube', 'config'), simpleConfig('home'))
    const error = await expectAccessError(
      resolveConnection({ kubeconfig: 'nope.yaml' }, environment()),
      ExitCode.config,
    )
    expect(error.message).toBe(`the kubeconfig file ${path.join(root, 'nope.yaml')} (from --kubeconfig) does not exist`)
  })

  it('fails with a clear message and a hint when there is no kubeconfig at all', async () => {
    const error = await expectAccessError(resolveConnection({}, environment()), ExitCode.config)
    expect(error.message).toBe(
      'no kubeconfig found: ~/.kube/config does not exist, KUBECONFIG is not set and this is not a pod in a cluster',
    )
    expect(error.hint).toContain('aws eks update-kubeconfig')
    expect(error.hint).toContain('--kubeconfig')
    expect(error.message).not.toContain('localhost:8080')
  })

  it('fails when none of the KUBECONFIG files exists, even if ~/.kube/config does', async () => {
    writeKubeconfig(path.join(home, '.kube', 'config'), simpleConfig('home'))
    const a = path.join(root, 'a.yaml')
    const b = path.join(root, 'b.yaml')
    const error = await expectAccessError(
      resolveConnection({}, environment({ env: { KUBECONFIG: `${a}${path.delimiter}${b}` } })),
      ExitCode.config,
    )
    expect(error.message).toBe(`no kubeconfig found: none of the files in KUBECONFIG exist (${a}, ${b})`)
  })

  it('treats an empty KUBECONFIG as unset', async () => {
    writeKubeconfig(path.join(home, '.kube', 'config'), simpleConfig('home'))
    const connection = await resolveConnection({}, environment({ env: { KUBECONFIG: '' } }))
    expect(connection.context?.value).toBe('home')
  })

  it('reads JSON kubeconfigs too', async () => {
    writeKubeconfig(path.join(home, '.kube', 'config'), simpleConfig('json'), 'json')
    const connection = await resolveConnection({}, environment())
    expect(connection.cluster.server).toBe('https://json.example:6443')
  })

  it('reports malformed YAML with the file and line, without quoting the content', async () => {
    const file = path.join(home, '.kube', 'config')
    mkdirSync(path.dirname(file), { recursive: true })
    writeFileSync(file, 'clusters: []\nusers:\n- name: u\n  user:\n    token: sup3rs3cr3t-token\n   bad: [\n')
    const error = await expectAccessError(resolveConnection({}, environment()), ExitCode.config)
    expect(error.message).toMatch(/^cannot parse the kubeconfig file ~\/\.kube\/config \(line \d+\): /)
    expect(error.message).not.toContain('sup3rs3cr3t')
  })

  it('shows paths under the home directory with ~', () => {
    expect(displayPath('/home/me/.kube/config', '/home/me')).toBe('~/.kube/config')
    expect(displayPath('/home/meow/x', '/home/me')).toBe('/home/meow/x')
    expect(displayPath('/etc/kube', undefined)).toBe('/etc/kube')
    expect(displayPath('/etc/kube', '/')).toBe('/etc/kube')
    expect(displayPath('/home/me', '/home/me/')).toBe('~')
  })
})

describe('merging several KUBECONFIG files like kubectl', () => {
  function twoFiles() {
    const a = writeKubeconfig(path.join(root, 'a', 'config'), {
      'current-context': 'ctx-a',
      clusters: [{ name: 'shared', cluster: { server: 'https://a.example:6443' } }],
      users: [{ name: 'shared-user', user: { token: 'token-from-a' } }],
      contexts: [{ name: 'ctx-a', context: { cluster: 'shared', user: 'shared-user', namespace: 'from-a' } }],
    })
    const b = writeKubeconfig(path.join(root, 'b', 'config'), {
      'current-context': 'ctx-b',
      clusters: [
        { name: 'shared', cluster: { server: 'https://b.example:6443' } },
        { name: 'only-b', cluster: { server: 'https://only-b.example:6443' } },
      ],
      users: [
        { name: 'shared-user', user: { token: 'token-from-b' } },
        { name: 'b-user', user: { token: 'token-of-b-user' } },
      ],
      contexts: [
        { name: 'ctx-a', context: { cluster: 'only-b', user: 'b-user' } },
        { name: 'ctx-b', context: { cluster: 'only-b', user: 'shared-user' } },
      ],
    })
    return { a, b }
  }

  it('takes the first current-context and the first definition of each name', async () => {
    const { a, b } = twoFiles()
    const connection = await resolveConnection({}, environment({ env: { KUBECONFIG: [a, b].join(path.delimiter) } }))
    expect(connection.context).toEqual({ value: 'ctx-a', source: 'kubeconfig', from: `current-context in ${a}` })
    expect(connection.cluster.server).toBe('https://a.example:6443')
    expect(connection.user.token).toBe('token-from-a')
    expect(connection.namespace.value).toBe('from-a')
    expect(connection.contexts).toEqual(['ctx-a', 'ctx-b'])
    expect(connection.origin).toMatchObject({ files: [a, b] })
  })

  it('mixes entries from different files (context from b, user first defined in a)', async () => {
    const { a, b } = twoFiles()
    const connection = await resolveConnection(
      { context: 'ctx-b' },
      environment({ env: { KUBECONFIG: [a, b].join(path.delimiter) } }),
    )
    expect(connection.context).toEqual({ value: 'ctx-b', source: 'flag', from: '--context' })
    expect(connection.cluster.server).toBe('https://only-b.example:6443')
    expect(connection.user.token).toBe('token-from-a')
    expect(connection.user.definedIn).toBe(a)
    expect(connection.namespace).toEqual({ value: DEFAULT_NAMESPACE, source: 'default', from: 'default' })
  })

  it('lets the later file decide when the earlier one has no current-context', async () => {
    const { a, b } = twoFiles()
    const first = writeKubeconfig(path.join(root, 'first.yaml'), { clusters: [], users: [], contexts: [] })
    const connection = await resolveConnection(
      {},
      environment({ env: { KUBECONFIG: [first, b, a].join(path.delimiter) } }),
    )
    expect(connection.context?.from).toBe(`current-context in ${b}`)
    expect(connection.cluster.server).toBe('https://only-b.example:6443')
    expect(connection.user.token).toBe('token-from-b')
  })

  it('skips missing files and empty entries, and reads each file once', async () => {
    const { a } = twoFiles()
    const missing = path.join(root, 'missing.yaml')
    const connection = await resolveConnection(
      {},
      environment({ env: { KUBECONFIG: ['', missing, a, a, ''].join(path.delimiter) } }),
    )
    expect(connection.origin).toMatchObject({ files: [a] })
    expect(connection.context?.value).toBe('ctx-a')
  })

  it('resolves relative KUBECONFIG entries against the working directory', async () => {
    twoFiles()
    const connection = await resolveConnection({}, environment({ env: { KUBECONFIG: path.join('b', 'config') } }))
    expect(connection.context?.value).toBe('ctx-b')
  })

  it('rejects a duplicate name inside one file, as client-go does', async () => {
    const file = writeKubeconfig(path.join(root, 'dup.yaml'), {
      'current-context': 'c',
      clusters: [
        { name: 'x', cluster: { server: 'https://a.example' } },
        { name: 'x', cluster: { server: 'https://b.example' } },
      ],
      contexts: [{ name: 'c', context: { cluster: 'x' } }],
    })
    const error = await expectAccessError(resolveConnection({ kubeconfig: file }, environment()), ExitCode.config)
    expect(error.message).toBe(`${file} defines cluster "x" twice`)
  })
})

describe('contexts', () => {
  it('lists the available contexts when --context names an unknown one', async () => {
    const { a, b } = {
      a: writeKubeconfig(path.join(root, 'a.yaml'), simpleConfig('alpha')),
      b: writeKubeconfig(path.join(root, 'b.yaml'), simpleConfig('beta')),
    }
    const error = await expectAccessError(
      resolveConnection({ context: 'gamma' }, environment({ env: { KUBECONFIG: [a, b].join(path.delimiter) } })),
      ExitCode.config,
    )
    expect(error.message).toBe(`context "gamma" (from --context) not found in the kubeconfig files (${a}, ${b})`)
    expect(error.hint).toBe('available contexts: alpha, beta (see `kubectl config get-contexts`)')
  })

  it('fails when current-context names a missing context', async () => {
    const config = simpleConfig('alpha')
    config['current-context'] = 'ghost'
    writeKubeconfig(path.join(home, '.kube', 'config'), config)
    const error = await expectAccessError(resolveConnection({}, environment()), ExitCode.config)
    expect(error.message).toBe('context "ghost" (from current-context in ~/.kube/config) not found in ~/.kube/config')
    expect(error.hint).toContain('alpha')
  })

  it('fails without a current context, suggesting --context', async () => {
    const config: Record<string, unknown> = simpleConfig('alpha')
    delete config['current-context']
    writeKubeconfig(path.join(home, '.kube', 'config'), config)
    const error = await expectAccessError(resolveConnection({}, environment()), ExitCode.config)
    expect(error.message).toBe('no current context is set in ~/.kube/config')
    expect(error.hint).toContain('--context')
    expect(error.hint).toContain('alpha')
  })

  it('fails when the context refers to a cluster or user that does not exist', async () => {
    writeKubeconfig(path.join(home, '.kube', 'config'), {
      'current-context': 'c',
      clusters: [{ name: 'x', cluster: { server: 'https://a.example' } }],
      contexts: [
        { name: 'c', context: { cluster: 'nope', user: 'u' } },
        { name: 'd', context: { cluster: 'x', user: 'ghost' } },
      ],
    })
    const clusterError = await expectAccessError(resolveConnection({}, environment()), ExitCode.config)
    expect(clusterError.message).toBe(
      'context "c" in ~/.kube/config refers to cluster "nope", which is not defined in ~/.kube/config',
    )
    const userError = await expectAccessError(resolveConnection({ context: 'd' }, environment()), ExitCode.config)
    expect(userError.message).toBe(
      'context "d" in ~/.kube/config refers to user "ghost", which is not defined in ~/.kube/config',
    )
  })

  it('allows a context without a user (no credentials)', async () => {
    writeKubeconfig(path.join(home, '.kube', 'config'), {
      'current-context': 'c',
      clusters: [{ name: 'x', cluster: { server: 'https://a.example' } }],
      contexts: [{ name: 'c', context: { cluster: 'x' } }],
    })
    const connection = await resolveConnection({}, environment())
    expect(connection.user.name).toBe('')
    expect(connection.user.token).toBeUndefined()
  })
})

describe('namespace precedence', () => {
  beforeEach(() => {
    writeKubeconfig(path.join(home, '.kube', 'config'), simpleConfig('ctx', { namespace: 'ctx-ns' }))
  })

  it('flag first', async () => {
    const connection = await resolveConnection(
      { namespace: 'flag-ns' },
      environment({ env: { AKM_NAMESPACE: 'env-ns' } }),
    )
    expect(connection.namespace).toEqual({ value: 'flag-ns', source: 'flag', from: '--namespace' })
  })

  it('then AKM_NAMESPACE', async () => {
    const connection = await resolveConnection({ namespace: '' }, environment({ env: { AKM_NAMESPACE: 'env-ns' } }))
    expect(connection.namespace).toEqual({ value: 'env-ns', source: 'env', from: 'AKM_NAMESPACE' })
  })

  it('then the context namespace', async () => {
    const connection = await resolveConnection({}, environment({ env: { AKM_NAMESPACE: '' } }))
    expect(connection.namespace).toEqual({
      value: 'ctx-ns',
      source: 'kubeconfig',
      from: 'context "ctx" in ~/.kube/config',
    })
  })

  it('then akamas', async () => {
    writeKubeconfig(path.join(home, '.kube', 'config'), simpleConfig('ctx'))
    const connection = await resolveConnection({}, environment())
    expect(connection.namespace).toEqual({ value: 'akamas', source: 'default', from: 'default' })
  })
})

describe('in-cluster', () => {
  function serviceAccount(files: Record<string, string>) {
    const dir = path.join(root, 'sa')
    mkdirSync(dir, { recursive: true })
    for (const [name, text] of Object.entries(files)) writeFileSync(path.join(dir, name), text)
  }
  const inClusterEnv = { KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' }

  it('uses the service account when there is no kubeconfig', async () => {
    serviceAccount({ token: 'sa-token-value\n', 'ca.crt': pki.caCert, namespace: 'akamas-prod' })
    const connection = await resolveConnection({}, environment({ env: inClusterEnv }))
    expect(connection.origin).toEqual({ kind: 'in-cluster', serviceAccountDir: path.join(root, 'sa') })
    expect(connection.context).toBeUndefined()
    expect(connection.cluster.server).toBe('https://10.96.0.1:443')
    expect(connection.cluster.certificateAuthorityData).toBe(pki.caCert)
    expect(connection.user.token).toBe('sa-token-value')
    expect(connection.namespace).toEqual({
      value: 'akamas-prod',
      source: 'in-cluster',
      from: `the service account (${path.join(root, 'sa', 'namespace')})`,
    })
    expect(redact('Bearer sa-token-value')).toBe('Bearer [redacted]')
  })

  it('brackets an IPv6 service host, and lets POD_NAMESPACE, AKM_NAMESPACE and the flag override the namespace', async () => {
    serviceAccount({ token: 'sa-token-value', namespace: 'from-file' })
    const env = { KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '6443', POD_NAMESPACE: 'from-pod-env' }
    const connection = await resolveConnection({}, environment({ env }))
    expect(connection.cluster.server).toBe('https://[fd00::1]:6443')
    expect(connection.namespace).toEqual({ value: 'from-pod-env', source: 'in-cluster', from: 'POD_NAMESPACE' })
    const withEnv = await resolveConnection({}, environment({ env: { ...env, AKM_NAMESPACE: 'mine' } }))
    expect(withEnv.namespace.value).toBe('mine')
    const withFlag = await resolveConnection(
      { namespace: 'flag' },
      environment({ env: { ...env, AKM_NAMESPACE: 'mine' } }),
    )
    expect(withFlag.namespace.value).toBe('flag')
  })

  it('prefers ~/.kube/config over the service account', async () => {
    serviceAccount({ token: 'sa-token-value' })
    writeKubeconfig(path.join(home, '.kube', 'config'), simpleConfig('home'))
    const connection = await resolveConnection({}, environment({ env: inClusterEnv }))
    expect(connection.origin.kind).toBe('kubeconfig')
  })

  it('is not possible without the token file or the service variables', async () => {
    serviceAccount({ namespace: 'x' })
    await expectAccessError(resolveConnection({}, environment({ env: inClusterEnv })), ExitCode.config)
    serviceAccount({ token: 't0ken-value' })
    await expectAccessError(
      resolveConnection({}, environment({ env: { KUBERNETES_SERVICE_HOST: '10.0.0.1' } })),
      ExitCode.config,
    )
  })

  it('rejects --context in-cluster', async () => {
    serviceAccount({ token: 'sa-token-value' })
    const error = await expectAccessError(
      resolveConnection({ context: 'prod' }, environment({ env: inClusterEnv })),
      ExitCode.config,
    )
    expect(error.message).toContain('context "prod"')
  })
})

describe('cluster and user entries', () => {
  it('resolves relative paths against the directory of the file that defines the entry', async () => {
    const dir = path.join(root, 'elsewhere')
    mkdirSync(path.join(dir, 'certs'), { recursive: true })
    writeFileSync(path.join(dir, 'certs', 'ca.crt'), pki.caCert)
    writeFileSync(path.join(dir, 'certs', 'client.crt'), pki.clientCert)
    writeFileSync(path.join(dir, 'certs', 'client.key'), pki.clientKey)
    writeFileSync(path.join(dir, 'token'), 'file-token-value\n')
    const defs = writeKubeconfig(path.join(dir, 'defs.yaml'), {
      clusters: [{ name: 'c', cluster: { server: 'https://1.2.3.4:6443', 'certificate-authority': 'certs/ca.crt' } }],
      users: [
        { name: 'cert-user', user: { 'client-certificate': 'certs/client.crt', 'client-key': './certs/client.key' } },
        { name: 'file-user', user: { tokenFile: 'token' } },
        {
          name: 'exec-user',
          user: { exec: { apiVersion: 'client.authentication.k8s.io/v1beta1', command: './bin/plugin' } },
        },
        { name: 'path-user', user: { exec: { apiVersion: 'client.authentication.k8s.io/v1beta1', command: 'aws' } } },
      ],
    })
    const main = writeKubeconfig(path.join(root, 'main.yaml'), {
      'current-context': 'cert',
      contexts: [
        { name: 'cert', context: { cluster: 'c', user: 'cert-user' } },
        { name: 'file', context: { cluster: 'c', user: 'file-user' } },
        { name: 'exec', context: { cluster: 'c', user: 'exec-user' } },
        { name: 'path', context: { cluster: 'c', user: 'path-user' } },
      ],
    })
    const env = environment({ env: { KUBECONFIG: [main, defs].join(path.delimiter) } })
    const cert = await resolveConnection({}, env)
    expect(cert.cluster.certificateAuthorityData).toBe(pki.caCert)
    expect(cert.cluster.certificateAuthorityFile).toBe(path.join(dir, 'certs', 'ca.crt'))
    expect(cert.user.clientCertificateData).toBe(pki.clientCert)
    expect(cert.user.clientKeyData).toBe(pki.clientKey)
    const file = await resolveConnection({ context: 'file' }, env)
    expect(file.user.token).toBe('file-token-value')
    expect(file.user.tokenSource).toBe(`tokenFile ${path.join(dir, 'token')}`)
    const exec = await resolveConnection({ context: 'exec' }, env)
    expect(exec.user.exec?.command).toBe(path.join(dir, 'bin', 'plugin'))
    const onPath = await resolveConnection({ context: 'path' }, env)
    expect(onPath.user.exec?.command).toBe('aws')
  })

  it('decodes -data fields and registers every secret for redaction', async () => {
    writeKubeconfig(path.join(home, '.kube', 'config'), {
      'current-context': 'c',
      clusters: [
        {
          name: 'x',
          cluster: {
            server: 'https://kube.example:6443/',
            'certificate-authority-data': b64(pki.caCert),
            'tls-server-name': 'api.internal',
            'proxy-url': 'http://proxy.corp:3128',
            extensions: [{ name: 'client.authentication.k8s.io/exec', extension: { audience: 'kube' } }],
          },
        },
      ],
      users: [
        {
          name: 'u',
          user: {
            'client-certificate-data': b64(pki.clientCert),
            'client-key-data': b64(pki.clientKey),
            token: 'static-bearer-token',
            as: 'bob',
            'as-groups': ['admins', 'devs'],
            'as-uid': '1234',
            'as-user-extra': { scopes: ['view'] },
          },
        },
      ],
      contexts: [{ name: 'c', context: { cluster: 'x', user: 'u' } }],
    })
    const connection = await resolveConnection({}, environment())
    expect(connection.cluster).toMatchObject({
      server: 'https://kube.example:6443',
      certificateAuthorityData: pki.caCert,
      certificateAuthorityFile: undefined,
      tlsServerName: 'api.internal',
      proxyUrl: 'http://proxy.corp:3128',
      execExtension: { audience: 'kube' },
    })
    expect(connection.user.clientKeyData).toBe(pki.clientKey)
    expect(connection.user.impersonate).toEqual({
      user: 'bob',
      uid: '1234',
      groups: ['admins', 'devs'],
      extra: { scopes: ['view'] },
    })
    expect(redact('token static-bearer-token')).toBe('token [redacted]')
    const keyLine = pki.clientKey.split('\n')[1]!
    expect(redact(`oops ${keyLine}`)).toBe('oops [redacted]')
  })

  it('accepts a server without a scheme as https', async () => {
    writeKubeconfig(path.join(home, '.kube', 'config'), simpleConfig('c', { server: '10.0.0.1:6443' }))
    expect((await resolveConnection({}, environment())).cluster.server).toBe('https://10.0.0.1:6443')
  })

  it.each([
    [
      'token and basic auth together',
      { token: 'abcdef', username: 'a', password: 'bbbbbb' },
      'has more than one authentication method (token and basic auth); only one is allowed',
    ],
    [
      'a certificate without its key',
      { 'client-certificate-data': b64('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n') },
      'has a client certificate but no client-key(-data)',
    ],
    [
      'a key that is not base64 PEM',
      { 'client-certificate-data': 'Zm9v', 'client-key-data': 'Zm9v' },
      'does not hold a PEM certificate',
    ],
    ['an unreadable tokenFile', { tokenFile: 'missing-token' }, 'cannot read the tokenFile of user "u"'],
    [
      'an exec plugin with v1alpha1',
      { exec: { apiVersion: 'client.authentication.k8s.io/v1alpha1', command: 'x' } },
      'which kubectl no longer supports',
    ],
    ['an exec plugin without command', { exec: { apiVersion: 'client.authentication.k8s.io/v1' } }, 'has no command'],
    [
      'a legacy gcp auth-provider',
      { 'auth-provider': { name: 'gcp', config: {} } },
      'uses the legacy auth-provider "gcp"',
    ],
  ])('rejects %s', async (_title, user, message) => {
    writeKubeconfig(path.join(home, '.kube', 'config'), {
      'current-context': 'c',
      clusters: [{ name: 'x', cluster: { server: 'https://a.example' } }],
      users: [{ name: 'u', user }],
      contexts: [{ name: 'c', context: { cluster: 'x', user: 'u' } }],
    })
    const error = await expectAccessError(resolveConnection({}, environment()), ExitCode.config)
    expect(error.message).toContain(message)
  })

  it('rejects a CA together with insecure-skip-tls-verify, and a missing server', async () => {
    writeKubeconfig(path.join(home, '.kube', 'config'), {
      'current-context': 'c',
      clusters: [
        {
          name: 'x',
          cluster: {
            server: 'https://a.example',
            'insecure-skip-tls-verify': true,
            'certificate-authority-data': b64(pki.caCert),
          },
        },
        { name: 'y', cluster: {} },
      ],
      contexts: [
        { name: 'c', context: { cluster: 'x' } },
        { name: 'd', context: { cluster: 'y' } },
      ],
    })
    const both = await expectAccessError(resolveConnection({}, environment()), ExitCode.config)
    expect(both.message).toBe(
      'cluster "x" in ~/.kube/config sets both a certificate-authority and insecure-skip-tls-verify',
    )
    const noServer = await expectAccessError(resolveConnection({ context: 'd' }, environment()), ExitCode.config)
    expect(noServer.message).toBe('cluster "y" in ~/.kube/config has no server')
  })

  it('gives the gcp auth-provider a migration hint', async () => {
    writeKubeconfig(path.join(home, '.kube', 'config'), {
      'current-context': 'c',
      clusters: [{ name: 'x', cluster: { server: 'https://a.example' } }],
      users: [{ name: 'u', user: { 'auth-provider': { name: 'gcp' } } }],
      contexts: [{ name: 'c', context: { cluster: 'x', user: 'u' } }],
    })
    const error = await expectAccessError(resolveConnection({}, environment()), ExitCode.config)
    expect(error.hint).toContain('gke-gcloud-auth-plugin')
  })

  it('uses a still-valid oidc id-token, and explains how to refresh an expired one', async () => {
    const jwt = (exp: number) =>
      `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(JSON.stringify({ exp })).toString('base64url')}.sig`
    const now = Date.parse('2030-01-01T00:00:00Z')
    const write = (idToken: string) =>
      writeKubeconfig(path.join(home, '.kube', 'config'), {
        'current-context': 'c',
        clusters: [{ name: 'x', cluster: { server: 'https://a.example' } }],
        users: [
          {
            name: 'u',
            user: {
              'auth-provider': { name: 'oidc', config: { 'id-token': idToken, 'refresh-token': 'refresh-secret-1' } },
            },
          },
        ],
        contexts: [{ name: 'c', context: { cluster: 'x', user: 'u' } }],
      })
    const valid = jwt(now / 1000 + 3600)
    write(valid)
    const connection = await resolveConnection({}, environment({ now: () => now }))
    expect(connection.user.token).toBe(valid)
    expect(connection.user.tokenSource).toBe('auth-provider oidc')
    write(jwt(now / 1000 - 60))
    const error = await expectAccessError(resolveConnection({}, environment({ now: () => now })), ExitCode.unauthorized)
    expect(error.message).toContain('has expired')
    expect(error.hint).toContain('kubectl get ns')
    expect(redact('refresh-secret-1')).toBe('[redacted]')
  })

  it('parses exec plugin settings with defaults', async () => {
    writeKubeconfig(path.join(home, '.kube', 'config'), {
      'current-context': 'c',
      clusters: [{ name: 'x', cluster: { server: 'https://a.example' } }],
      users: [
        {
          name: 'u',
          user: {
            exec: {
              apiVersion: 'client.authentication.k8s.io/v1',
              command: 'aws',
              args: ['eks', 'get-token', '--cluster-name', 'prod'],
              env: [{ name: 'AWS_PROFILE', value: 'prod' }],
              installHint: 'install the AWS CLI',
              provideClusterInfo: true,
            },
          },
        },
      ],
      contexts: [{ name: 'c', context: { cluster: 'x', user: 'u' } }],
    })
    const connection = await resolveConnection({}, environment())
    expect(connection.user.exec).toEqual({
      command: 'aws',
      args: ['eks', 'get-token', '--cluster-name', 'prod'],
      env: [{ name: 'AWS_PROFILE', value: 'prod' }],
      apiVersion: 'client.authentication.k8s.io/v1',
      installHint: 'install the AWS CLI',
      provideClusterInfo: true,
      interactiveMode: 'IfAvailable',
    })
  })

  it('reports an unreadable kubeconfig file (not just a missing one)', async () => {
    const file = writeKubeconfig(path.join(home, '.kube', 'config'), simpleConfig('c'))
    const readFile = (p: string) => {
      if (p === file) throw Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES' })
      throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' })
    }
    const error = await expectAccessError(resolveConnection({}, environment({ readFile })), ExitCode.config)
    expect(error.message).toBe('cannot read the kubeconfig file ~/.kube/config: permission denied')
    chmodSync(file, 0o600)
  })
})

afterAll(() => {
  removeTempDirs()
})
