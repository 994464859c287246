import { createHash } from 'node:crypto'
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { isMissingKubeconfig } from '../../src/backend/choose.js'
import { engineId, parseHost, resolveDockerEndpoint } from '../../src/docker/endpoint.js'
import { StdcopyDemuxer } from '../../src/docker/exec-session.js'
import { AccessError } from '../../src/errors.js'
import { defaultKubeEnvironment, resolveConnection } from '../../src/kube/kubeconfig.js'

/** A docker config folder with contexts, as `docker context create` writes them. */
function configWith(contexts: Record<string, { host: string; skipTls?: boolean; tls?: boolean }>, current?: string) {
  const dir = mkdtempSync(join(tmpdir(), 'akm-docker-config-'))
  for (const [name, context] of Object.entries(contexts)) {
    const digest = createHash('sha256').update(name).digest('hex')
    mkdirSync(join(dir, 'contexts', 'meta', digest), { recursive: true })
    writeFileSync(
      join(dir, 'contexts', 'meta', digest, 'meta.json'),
      JSON.stringify({
        Name: name,
        Endpoints: { docker: { Host: context.host, SkipTLSVerify: context.skipTls ?? false } },
      }),
    )
    if (context.tls) {
      mkdirSync(join(dir, 'contexts', 'tls', digest, 'docker'), { recursive: true })
      writeFileSync(join(dir, 'contexts', 'tls', digest, 'docker', 'ca.pem'), 'CA')
    }
  }
  if (current) writeFileSync(join(dir, 'config.json'), JSON.stringify({ currentContext: current }))
  return dir
}

describe('resolveDockerEndpoint, as the docker CLI', () => {
  const home = mkdtempSync(join(tmpdir(), 'akm-docker-home-'))

  it('defaults to the local socket', () => {
    const endpoint = resolveDockerEndpoint(undefined, { env: {}, homeDir: home })
    expect(endpoint).toMatchObject({
      host: 'unix:///var/run/docker.sock',
      context: 'default',
      transport: { kind: 'unix', socketPath: '/var/run/docker.sock' },
    })
  })

  it('DOCKER_HOST wins over DOCKER_CONTEXT and currentContext; --docker-context over everything', () => {
    const dir = configWith({ a: { host: 'tcp://10.1.1.1:2375' }, b: { host: 'unix:///b.sock' } }, 'a')
    const env = { DOCKER_CONFIG: dir, DOCKER_HOST: 'unix:///x.sock', DOCKER_CONTEXT: 'b' }
    expect(resolveDockerEndpoint(undefined, { env, homeDir: home })).toMatchObject({
      host: 'unix:///x.sock',
      from: 'DOCKER_HOST',
    })
    expect(
      resolveDockerEndpoint(undefined, { env: { DOCKER_CONFIG: dir, DOCKER_CONTEXT: 'b' }, homeDir: home }),
    ).toMatchObject({
      host: 'unix:///b.sock',
      context: 'b',
      from: 'context b (DOCKER_CONTEXT)',
    })
    expect(resolveDockerEndpoint(undefined, { env: { DOCKER_CONFIG: dir }, homeDir: home })).toMatchObject({
      host: 'tcp://10.1.1.1:2375',
      transport: { kind: 'tcp', hostname: '10.1.1.1', port: 2375, tls: undefined },
    })
    expect(resolveDockerEndpoint('b', { env, homeDir: home })).toMatchObject({ host: 'unix:///b.sock' })
    // `default` is DOCKER_HOST or the local socket.
    expect(resolveDockerEndpoint('default', { env: { DOCKER_CONFIG: dir }, homeDir: home }).host).toBe(
      'unix:///var/run/docker.sock',
    )
  })

  it('reads a context’s TLS material and SkipTLSVerify', () => {
    const dir = configWith({
      secure: { host: 'tcp://h:2376', tls: true },
      lax: { host: 'tcp://h:2376', tls: true, skipTls: true },
    })
    const secure = resolveDockerEndpoint('secure', { env: { DOCKER_CONFIG: dir }, homeDir: home })
    expect(secure.transport).toMatchObject({ kind: 'tcp', port: 2376, tls: { verify: true } })
    expect((secure.transport as { tls: { ca: Buffer } }).tls.ca.toString()).toBe('CA')
    const lax = resolveDockerEndpoint('lax', { env: { DOCKER_CONFIG: dir }, homeDir: home })
    expect(lax.transport).toMatchObject({ tls: { verify: false } })
  })

  it('DOCKER_TLS_VERIFY and DOCKER_CERT_PATH for the default context', () => {
    const certs = mkdtempSync(join(tmpdir(), 'akm-docker-certs-'))
    writeFileSync(join(certs, 'ca.pem'), 'CA')
    const endpoint = resolveDockerEndpoint(undefined, {
      env: { DOCKER_HOST: 'tcp://engine:2376', DOCKER_TLS_VERIFY: '1', DOCKER_CERT_PATH: certs },
      homeDir: home,
    })
    expect(endpoint.transport).toMatchObject({ kind: 'tcp', hostname: 'engine', port: 2376, tls: { verify: true } })
  })

  it('refuses an unknown context (exit 3) and hosts it cannot use', () => {
    expect(() => resolveDockerEndpoint('nope', { env: {}, homeDir: home })).toThrow(/Docker context "nope" not found/)
    expect(() => parseHost('npipe:////./pipe/docker_engine', 'DOCKER_HOST', undefined)).toThrow(/named pipes/)
    expect(() => parseHost('fd://', 'DOCKER_HOST', undefined)).toThrow(AccessError)
    expect(parseHost('ssh://me@box:2222', 'x', undefined)).toEqual({
      kind: 'ssh',
      user: 'me',
      hostname: 'box',
      port: 2222,
    })
    expect(parseHost('localhost:2375', 'x', undefined)).toMatchObject({
      kind: 'tcp',
      hostname: 'localhost',
      port: 2375,
    })
  })

  it('names the engine stably for host key aliases', () => {
    expect(engineId({ kind: 'unix', socketPath: '/var/run/docker.sock' })).toBe('unix/var/run/docker.sock')
    expect(engineId({ kind: 'tcp', hostname: '10.0.0.5', port: 2376, tls: undefined })).toBe('10.0.0.5-2376')
  })
})

describe('StdcopyDemuxer', () => {
  const frame = (stream: number, text: string) => {
    const payload = Buffer.from(text)
    const header = Buffer.alloc(8)
    header[0] = stream
    header.writeUInt32BE(payload.length, 4)
    return Buffer.concat([header, payload])
  }

  it('splits frames across and within chunks, and knows when it stopped in the middle of one', () => {
    const all = Buffer.concat([frame(1, 'out'), frame(2, 'err'), frame(1, 'more')])
    const demux = new StdcopyDemuxer()
    const seen: string[] = []
    for (let i = 0; i < all.length; i += 5) {
      for (const f of demux.push(all.subarray(i, i + 5))) seen.push(`${f.stream}:${f.payload}`)
    }
    expect(seen).toEqual(['1:out', '2:err', '1:more'])
    expect(demux.pending).toBe(false)
    demux.push(frame(1, 'cut').subarray(0, 9))
    expect(demux.pending).toBe(true)
  })
})

describe('detection of a docker-compose installation', () => {
  it('only for the "no kubeconfig at all" error, and never when KUBECONFIG or --kubeconfig was given', async () => {
    const home = mkdtempSync(join(tmpdir(), 'akm-nokube-'))
    const environment = { ...defaultKubeEnvironment({}), homeDir: home, serviceAccountDir: join(home, 'none') }
    const error = await resolveConnection({}, environment).catch((thrown: unknown) => thrown)
    expect(isMissingKubeconfig(error, {}, {})).toBe(true)
    expect(isMissingKubeconfig(error, { kubeconfig: '/x' }, {})).toBe(false)
    expect(isMissingKubeconfig(error, {}, { KUBECONFIG: '/x' })).toBe(false)
    expect(isMissingKubeconfig(new AccessError('other', { exitCode: 3 }), {}, {})).toBe(false)
  })
})
